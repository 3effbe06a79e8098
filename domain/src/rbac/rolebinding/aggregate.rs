use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::{RoleBindingCommand, RoleBindingEvent};
use crate::rbac::BINDING_AGGREGATE_TYPE;
use crate::rbac::error::{RbacError, check};

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RoleBinding {
    version: u64,
    live: bool,
    /// The current content: an update that changes nothing records nothing.
    spec: Option<crate::rbac::RoleBindingSpec>,
}

impl Aggregate for RoleBinding {
    const TYPE: &'static str = BINDING_AGGREGATE_TYPE;
    type Command = RoleBindingCommand;
    type Event = RoleBindingEvent;
    type Error = RbacError;
    type Services = ();

    async fn handle(&mut self, command: RoleBindingCommand, _: &(), sink: &EventSink<Self>) -> Result<(), RbacError> {
        let event = match command {
            RoleBindingCommand::Create { name, spec } => {
                if self.live {
                    return Err(RbacError::AlreadyExists { kind: "rolebinding", name: name.to_string() });
                }
                RoleBindingEvent::RoleBindingCreated { spec }
            }
            RoleBindingCommand::Update { name, spec, expected_version } => {
                check("rolebinding", &name, self.live, self.version, expected_version)?;
                if self.spec.as_ref() == Some(&spec) {
                    return Ok(());
                }
                RoleBindingEvent::RoleBindingUpdated { spec }
            }
            RoleBindingCommand::Delete { name, expected_version } => {
                check("rolebinding", &name, self.live, self.version, expected_version)?;
                RoleBindingEvent::RoleBindingDeleted {}
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: RoleBindingEvent) {
        self.version += 1;
        self.live = !matches!(event, RoleBindingEvent::RoleBindingDeleted {});
        self.spec = match event {
            RoleBindingEvent::RoleBindingCreated { spec } | RoleBindingEvent::RoleBindingUpdated { spec } => Some(spec),
            RoleBindingEvent::RoleBindingDeleted {} => None,
        };
    }
}

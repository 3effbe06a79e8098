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
                match &self.spec {
                    Some(old) if *old == spec => return Ok(()),
                    Some(old) if old.role != spec.role || old.users.iter().any(|u| !spec.users.contains(u)) => {
                        RoleBindingEvent::RoleBindingNarrowed { spec }
                    }
                    _ => RoleBindingEvent::RoleBindingUpdated { spec },
                }
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
            RoleBindingEvent::RoleBindingCreated { spec }
            | RoleBindingEvent::RoleBindingUpdated { spec }
            | RoleBindingEvent::RoleBindingNarrowed { spec } => Some(spec),
            RoleBindingEvent::RoleBindingDeleted {} => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::name::ResourceName;
    use crate::rbac::RoleBindingSpec;

    type Given = TestFramework<RoleBinding>;

    fn spec(role: &str, users: &[&str]) -> RoleBindingSpec {
        RoleBindingSpec {
            description: String::new(),
            role: role.into(),
            users: users.iter().map(|u| u.to_string()).collect(),
        }
    }

    fn update(role: &str, users: &[&str]) -> RoleBindingCommand {
        RoleBindingCommand::Update {
            name: ResourceName::parse("b").unwrap(),
            spec: spec(role, users),
            expected_version: None,
        }
    }

    fn created() -> RoleBindingEvent {
        RoleBindingEvent::RoleBindingCreated { spec: spec("viewer", &["alice", "bob"]) }
    }

    #[test]
    fn an_update_that_only_adds_is_an_update() {
        Given::with(()).given(vec![created()]).when(update("viewer", &["alice", "bob", "carol"])).then_expect_events(
            vec![RoleBindingEvent::RoleBindingUpdated { spec: spec("viewer", &["alice", "bob", "carol"]) }],
        );
    }

    #[test]
    fn an_update_that_drops_a_user_or_changes_the_role_is_a_narrowing() {
        Given::with(()).given(vec![created()]).when(update("viewer", &["alice", "carol"])).then_expect_events(vec![
            RoleBindingEvent::RoleBindingNarrowed { spec: spec("viewer", &["alice", "carol"]) },
        ]);
        Given::with(()).given(vec![created()]).when(update("editor", &["alice", "bob"])).then_expect_events(vec![
            RoleBindingEvent::RoleBindingNarrowed { spec: spec("editor", &["alice", "bob"]) },
        ]);
    }
}

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::{DefaultBackendCommand, DefaultBackendEvent};
use crate::error::{Classified, ErrorClass};
use crate::name::ResourceName;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct DefaultBackend {
    current: Option<ResourceName>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefaultBackendError {
    #[error("secretbackend {0:?} not found")]
    BackendNotFound(ResourceName),
    #[error("secretbackend {0:?} is the default and stays so until another backend becomes the default")]
    DefaultRequired(ResourceName),
}

impl Classified for DefaultBackendError {
    fn class(&self) -> ErrorClass {
        match self {
            DefaultBackendError::BackendNotFound(_) => ErrorClass::NotFound,
            DefaultBackendError::DefaultRequired(_) => ErrorClass::Conflict,
        }
    }
}

impl Aggregate for DefaultBackend {
    const TYPE: &'static str = super::AGGREGATE_TYPE;
    type Command = DefaultBackendCommand;
    type Event = DefaultBackendEvent;
    type Error = DefaultBackendError;
    type Services = ();

    async fn handle(
        &mut self,
        command: DefaultBackendCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DefaultBackendError> {
        match command {
            DefaultBackendCommand::SetDefaultBackend { to, to_exists } => {
                if !to_exists {
                    return Err(DefaultBackendError::BackendNotFound(to));
                }
                if self.current.as_ref() == Some(&to) {
                    return Ok(());
                }
                let event = DefaultBackendEvent::DefaultBackendSet { from: self.current.clone(), to };
                sink.write(event, self).await;
                Ok(())
            }
            DefaultBackendCommand::KeepNotDefault { name } => {
                if self.current.as_ref() == Some(&name) {
                    return Err(DefaultBackendError::DefaultRequired(name));
                }
                Ok(())
            }
        }
    }

    fn apply(&mut self, event: DefaultBackendEvent) {
        let DefaultBackendEvent::DefaultBackendSet { to, .. } = event;
        self.current = Some(to);
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    type Given = TestFramework<DefaultBackend>;

    fn n(s: &str) -> ResourceName {
        ResourceName::parse(s).unwrap()
    }

    fn set(to: &str) -> DefaultBackendCommand {
        DefaultBackendCommand::SetDefaultBackend { to: n(to), to_exists: true }
    }

    fn moved(from: Option<&str>, to: &str) -> DefaultBackendEvent {
        DefaultBackendEvent::DefaultBackendSet { from: from.map(n), to: n(to) }
    }

    #[test]
    fn the_first_default_is_set() {
        Given::with(())
            .given_no_previous_events()
            .when(set("default"))
            .then_expect_events(vec![moved(None, "default")]);
    }

    #[test]
    fn moving_the_default_names_both_ends() {
        Given::with(())
            .given(vec![moved(None, "default")])
            .when(set("bao"))
            .then_expect_events(vec![moved(Some("default"), "bao")]);
    }

    #[test]
    fn setting_the_current_default_records_nothing() {
        Given::with(()).given(vec![moved(None, "default")]).when(set("default")).then_expect_events(vec![]);
    }

    #[test]
    fn a_missing_backend_cannot_be_the_default() {
        Given::with(())
            .given(vec![moved(None, "default")])
            .when(DefaultBackendCommand::SetDefaultBackend { to: n("nope"), to_exists: false })
            .then_expect_error(DefaultBackendError::BackendNotFound(n("nope")));
    }

    #[test]
    fn the_default_cannot_be_unset_but_others_are_not_default_already() {
        Given::with(())
            .given(vec![moved(None, "default")])
            .when(DefaultBackendCommand::KeepNotDefault { name: n("default") })
            .then_expect_error(DefaultBackendError::DefaultRequired(n("default")));
        Given::with(())
            .given(vec![moved(None, "default")])
            .when(DefaultBackendCommand::KeepNotDefault { name: n("archive") })
            .then_expect_events(vec![]);
    }
}

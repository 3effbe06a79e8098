use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::{MigrationCommand, MigrationEvent};
use crate::error::{Classified, ErrorClass};
use crate::name::ResourceName;
pub use wire::migration::MigrationStatus;

/// One run's state: enough to enforce its lifecycle.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct MigrationRun {
    status: MigrationStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MigrationError {
    #[error("migration {0:?} already exists")]
    AlreadyExists(ResourceName),
    #[error("migration {0:?} not found")]
    NotFound(ResourceName),
    #[error("migration {id:?} is {status} and cannot change any more")]
    Finished { id: ResourceName, status: &'static str },
    #[error("a migration needs two different backends, not {0:?} twice")]
    SameBackend(ResourceName),
}

impl Classified for MigrationError {
    fn class(&self) -> ErrorClass {
        match self {
            MigrationError::NotFound(_) => ErrorClass::NotFound,
            _ => ErrorClass::Conflict,
        }
    }

    fn field(&self) -> Option<&'static str> {
        matches!(self, MigrationError::SameBackend(_)).then_some("to")
    }
}

impl MigrationRun {
    fn running(&self, id: &ResourceName) -> Result<(), MigrationError> {
        match self.status {
            MigrationStatus::New => Err(MigrationError::NotFound(id.clone())),
            MigrationStatus::Running => Ok(()),
            status => Err(MigrationError::Finished { id: id.clone(), status: status.as_str() }),
        }
    }
}

impl Aggregate for MigrationRun {
    const TYPE: &'static str = super::AGGREGATE_TYPE;
    type Command = MigrationCommand;
    type Event = MigrationEvent;
    type Error = MigrationError;
    type Services = ();

    async fn handle(
        &mut self,
        command: MigrationCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), MigrationError> {
        let event = match command {
            MigrationCommand::StartMigration { id, from, to, names, keep_source } => {
                if self.status != MigrationStatus::New {
                    return Err(MigrationError::AlreadyExists(id));
                }
                if from == to {
                    return Err(MigrationError::SameBackend(from));
                }
                MigrationEvent::MigrationStarted { from, to, names, keep_source }
            }
            MigrationCommand::RecordProgress { id, moved, skipped } => {
                self.running(&id)?;
                if moved.is_empty() && skipped.is_empty() {
                    return Ok(());
                }
                MigrationEvent::MigrationProgressed { moved, skipped }
            }
            MigrationCommand::ResumeMigration { id, reason } => {
                self.running(&id)?;
                MigrationEvent::MigrationResumed { reason }
            }
            MigrationCommand::CompleteMigration { id, moved, skipped, failed } => {
                self.running(&id)?;
                MigrationEvent::MigrationCompleted { moved, skipped, failed }
            }
            MigrationCommand::FailMigration { id, secret, reason } => {
                self.running(&id)?;
                MigrationEvent::MigrationFailed { secret, reason }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: MigrationEvent) {
        self.status = match event {
            MigrationEvent::MigrationStarted { .. }
            | MigrationEvent::MigrationProgressed { .. }
            | MigrationEvent::MigrationResumed { .. } => MigrationStatus::Running,
            MigrationEvent::MigrationCompleted { .. } => MigrationStatus::Completed,
            MigrationEvent::MigrationFailed { .. } => MigrationStatus::Failed,
        };
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::migration::SkippedSecret;

    type Given = TestFramework<MigrationRun>;

    fn n(s: &str) -> ResourceName {
        ResourceName::parse(s).unwrap()
    }

    fn started() -> MigrationEvent {
        MigrationEvent::MigrationStarted { from: n("default"), to: n("bao"), names: None, keep_source: false }
    }

    #[test]
    fn a_run_starts_once() {
        let start = || MigrationCommand::StartMigration {
            id: n("run-1"),
            from: n("default"),
            to: n("bao"),
            names: None,
            keep_source: false,
        };
        Given::with(()).given_no_previous_events().when(start()).then_expect_events(vec![started()]);
        Given::with(())
            .given(vec![started()])
            .when(start())
            .then_expect_error(MigrationError::AlreadyExists(n("run-1")));
    }

    #[test]
    fn a_run_needs_two_backends() {
        let command = MigrationCommand::StartMigration {
            id: n("run-1"),
            from: n("bao"),
            to: n("bao"),
            names: None,
            keep_source: false,
        };
        Given::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(MigrationError::SameBackend(n("bao")));
    }

    #[test]
    fn progress_and_resumption_are_recorded_while_running() {
        let progress = MigrationCommand::RecordProgress {
            id: n("run-1"),
            moved: vec!["a".into()],
            skipped: vec![SkippedSecret { secret: "b".into(), reason: "already on bao".into() }],
        };
        Given::with(()).given(vec![started()]).when(progress).then_expect_events(vec![
            MigrationEvent::MigrationProgressed {
                moved: vec!["a".into()],
                skipped: vec![SkippedSecret { secret: "b".into(), reason: "already on bao".into() }],
            },
        ]);
        Given::with(())
            .given(vec![started()])
            .when(MigrationCommand::ResumeMigration { id: n("run-1"), reason: "mcpd restarted".into() })
            .then_expect_events(vec![MigrationEvent::MigrationResumed { reason: "mcpd restarted".into() }]);
    }

    #[test]
    fn a_finished_run_changes_no_more() {
        let done = MigrationEvent::MigrationCompleted { moved: 1, skipped: 0, failed: 0 };
        Given::with(())
            .given(vec![started(), done])
            .when(MigrationCommand::ResumeMigration { id: n("run-1"), reason: "x".into() })
            .then_expect_error(MigrationError::Finished { id: n("run-1"), status: "completed" });
        Given::with(())
            .given(vec![started(), MigrationEvent::MigrationFailed { secret: Some("a".into()), reason: "down".into() }])
            .when(MigrationCommand::CompleteMigration { id: n("run-1"), moved: 0, skipped: 0, failed: 0 })
            .then_expect_error(MigrationError::Finished { id: n("run-1"), status: "failed" });
    }

    #[test]
    fn nothing_happens_to_a_run_that_never_started() {
        Given::with(())
            .given_no_previous_events()
            .when(MigrationCommand::CompleteMigration { id: n("run-9"), moved: 0, skipped: 0, failed: 0 })
            .then_expect_error(MigrationError::NotFound(n("run-9")));
    }
}

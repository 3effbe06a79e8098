use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::name::ResourceName;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedSecret {
    pub secret: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum MigrationEvent {
    MigrationStarted { from: ResourceName, to: ResourceName, names: Option<Vec<String>>, keep_source: bool },
    MigrationProgressed { moved: Vec<String>, skipped: Vec<SkippedSecret> },
    MigrationResumed { reason: String },
    MigrationCompleted { moved: u64, skipped: u64, failed: u64 },
    MigrationFailed { secret: Option<String>, reason: String },
}

impl DomainEvent for MigrationEvent {
    fn event_type(&self) -> String {
        match self {
            MigrationEvent::MigrationStarted { .. } => "MigrationStarted",
            MigrationEvent::MigrationProgressed { .. } => "MigrationProgressed",
            MigrationEvent::MigrationResumed { .. } => "MigrationResumed",
            MigrationEvent::MigrationCompleted { .. } => "MigrationCompleted",
            MigrationEvent::MigrationFailed { .. } => "MigrationFailed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

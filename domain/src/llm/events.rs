use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::llm::LlmSpec;

/// What happened to an Llm. Who and when live in the event metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LlmEvent {
    LlmCreated {
        spec: LlmSpec,
    },
    /// The spec was replaced as a whole.
    LlmUpdated {
        spec: LlmSpec,
    },
    LlmDeleted {},
}

impl DomainEvent for LlmEvent {
    fn event_type(&self) -> String {
        match self {
            LlmEvent::LlmCreated { .. } => "LlmCreated",
            LlmEvent::LlmUpdated { .. } => "LlmUpdated",
            LlmEvent::LlmDeleted { .. } => "LlmDeleted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

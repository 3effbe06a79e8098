use cqrs_es::DomainEvent;
use cqrs_es::persist::{EventUpcaster, SemanticVersionEventUpcaster};
use serde_json::Value;
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

    /// 2: `LlmCreated` and `LlmUpdated` always carry `spec.extra`. Version 1 (before `extra`
    /// existed) omitted it; [`upcasters`] adds it as empty.
    fn event_version(&self) -> String {
        "2".to_owned()
    }
}

/// Version 1 → 2 of `LlmCreated` and `LlmUpdated`: add `spec.extra: {}` where it is missing.
pub fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
    ["LlmCreated", "LlmUpdated"]
        .into_iter()
        .map(|event_type| {
            Box::new(SemanticVersionEventUpcaster::new(event_type, "2", Box::new(add_extra))) as Box<dyn EventUpcaster>
        })
        .collect()
}

fn add_extra(mut payload: Value) -> Value {
    for variant in ["LlmCreated", "LlmUpdated"] {
        if let Some(spec) = payload.pointer_mut(&format!("/{variant}/spec")).and_then(Value::as_object_mut) {
            spec.entry("extra").or_insert_with(|| Value::Object(Default::default()));
        }
    }
    payload
}

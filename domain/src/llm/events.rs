use cqrs_es::DomainEvent;
use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    vec![Box::new(AddExtra)]
}

struct AddExtra;

impl EventUpcaster for AddExtra {
    fn can_upcast(&self, event_type: &str, event_version: &str) -> bool {
        matches!(event_type, "LlmCreated" | "LlmUpdated") && event_version == "1"
    }

    fn upcast(&self, mut event: SerializedEvent) -> SerializedEvent {
        if let Some(spec) =
            event.payload.pointer_mut(&format!("/{}/spec", event.event_type)).and_then(Value::as_object_mut)
        {
            spec.entry("extra").or_insert_with(|| Value::Object(Default::default()));
        }
        event.event_version = "2".to_owned();
        event
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn v1() -> Value {
        json!({"LlmCreated": {"spec": {"type": "anthropic", "model": "claude-haiku-4-5", "tier": "fast"}}})
    }

    #[test]
    fn a_v1_payload_needs_the_upcaster_and_reads_with_it() {
        assert!(serde_json::from_value::<LlmEvent>(v1()).is_err(), "v2 requires extra");
        let (version, payload) = crate::upcast::upcast("LlmCreated", "1", v1());
        assert_eq!(version, "2");
        let LlmEvent::LlmCreated { spec } = serde_json::from_value(payload).unwrap() else { panic!("not created") };
        assert!(spec.extra.is_empty());
        assert_eq!(spec.model, "claude-haiku-4-5");
    }

    #[test]
    fn current_payloads_and_other_events_pass_through() {
        let v2 =
            json!({"LlmUpdated": {"spec": {"type": "anthropic", "model": "m", "tier": "fast", "extra": {"a": "b"}}}});
        assert_eq!(crate::upcast::upcast("LlmUpdated", "2", v2.clone()), ("2".to_owned(), v2.clone()));
        // A v1 payload that already had extra keeps it.
        let (_, kept) = crate::upcast::upcast("LlmUpdated", "1", v2.clone());
        assert_eq!(kept, v2);
        assert_eq!(crate::upcast::upcast("LlmDeleted", "1", json!({"LlmDeleted": {}})).1, json!({"LlmDeleted": {}}));
        assert!(crate::upcast::is_current("SecretCreated", "1"));
        assert!(!crate::upcast::is_current("LlmCreated", "1"));
    }
}

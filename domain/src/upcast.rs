//! Event schema evolution. Stored events are never rewritten: each carries the version of the
//! shape it was written in, and an upcaster turns an old shape into the current one whenever it
//! is read — by the aggregates (the write path upcasts through [`upcast`] when it loads a stream), by the
//! projector and rebuilds, and by the audit log (through [`upcast`]).
//!
//! To change an event's shape: bump its kind's `event_version`, and add an upcaster here that
//! rewrites payloads of the older versions. `docs/operations.md` walks through it.

use std::sync::LazyLock;

use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use serde_json::Value;

/// Every upcaster, oldest change first.
pub fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
    crate::llm::upcasters()
}

static ALL: LazyLock<Vec<Box<dyn EventUpcaster>>> = LazyLock::new(upcasters);

/// `payload`, written as `event_type` at `event_version`, in the current shape, with the
/// version it now has. Current events pass through untouched.
pub fn upcast(event_type: &str, event_version: &str, payload: Value) -> (String, Value) {
    if !ALL.iter().any(|u| u.can_upcast(event_type, event_version)) {
        return (event_version.to_owned(), payload);
    }
    let mut event = SerializedEvent::new(
        String::new(),
        0,
        String::new(),
        event_type.to_owned(),
        event_version.to_owned(),
        payload,
        Value::Null,
    );
    for upcaster in ALL.iter() {
        if upcaster.can_upcast(&event.event_type, &event.event_version) {
            event = upcaster.upcast(event);
        }
    }
    (event.event_version, event.payload)
}

/// Whether an event written as `event_type` at `event_version` needs upcasting.
pub fn is_current(event_type: &str, event_version: &str) -> bool {
    !ALL.iter().any(|u| u.can_upcast(event_type, event_version))
}

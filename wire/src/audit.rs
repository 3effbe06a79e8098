//! The audit log as `GET /api/v1/audit` sends it: one entry per event, newest first, and the
//! cursor of the next (older) page.

use serde::{Deserialize, Serialize};

/// One event of the log, as a person reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// The event's place in the log: an opaque cursor for `after`, `newer`.
    pub position: String,
    pub time: String,
    pub actor: String,
    pub token_id: String,
    /// The aggregate type (`llm`, `secret`, `defaultbackend`, …).
    pub kind: String,
    pub name: String,
    pub event_type: String,
    /// What changed, with secret values never shown.
    pub summary: String,
    pub request_id: String,
    pub source: String,
    pub source_address: String,
}

/// One page of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    /// The cursor of the next (older) page, when there may be one.
    pub next: Option<String>,
}

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

/// A request mcpd refused (401 or 403), as `GET /api/v1/audit/denials` sends it. Never holds a
/// token or a value: the token's id at most.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DenialEntry {
    /// Its place in the stream: an opaque cursor for `after`.
    pub id: String,
    pub time: String,
    pub request_id: String,
    /// The authenticated user; null for a refused authentication.
    pub actor: Option<String>,
    /// The id of the token presented (never the token), when it named one.
    pub token_id: Option<String>,
    /// The peer's address (host:port).
    pub source_address: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// Why it was refused.
    pub reason: String,
    /// Above 0: this row stands for that many refusals not recorded one by one (more came
    /// than the recording rate allows).
    pub suppressed: u64,
}

/// One page of refusals, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DenialPage {
    pub items: Vec<DenialEntry>,
    /// The cursor of the next (older) page, when there may be one.
    pub next: Option<String>,
}

//! The metadata every event carries: who, when, which request, through which entry point.
//! It is stored in the event log's `metadata` column and is the audit trail; it never holds a
//! secret value.

use std::collections::HashMap;

pub const ACTOR: &str = "actor";
pub const REQUEST_ID: &str = "request_id";
pub const RECORDED_AT: &str = "recorded_at";
pub const SOURCE: &str = "source";
pub const TOKEN_ID: &str = "token_id";
pub const SOURCE_ADDRESS: &str = "source_address";
pub const USER_AGENT: &str = "user_agent";
/// The client's `Idempotency-Key`, and the hash of the request it came with: a retry with the
/// same key finds the change it already made (the append claims the key in its transaction).
pub const IDEMPOTENCY_KEY: &str = "idempotency_key";
pub const REQUEST_HASH: &str = "request_hash";

/// The actor recorded until authentication exists.
pub const ANONYMOUS: &str = "anonymous";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMetadata {
    pub actor: String,
    pub request_id: String,
    /// RFC 3339, UTC.
    pub recorded_at: String,
    /// The entry point: `api`, `startup`, …
    pub source: String,
    /// The token the actor authenticated with, by id; empty for mcpd's own actions.
    pub token_id: String,
    /// The client's address and `User-Agent`, when the request came over HTTP.
    pub source_address: String,
    pub user_agent: String,
    /// The request's `Idempotency-Key` and the hash of the request, when it sent one.
    pub idempotency: Option<(String, String)>,
}

impl EventMetadata {
    pub fn into_map(self) -> HashMap<String, String> {
        let mut map = HashMap::from([
            (ACTOR.to_owned(), self.actor),
            (REQUEST_ID.to_owned(), self.request_id),
            (RECORDED_AT.to_owned(), self.recorded_at),
            (SOURCE.to_owned(), self.source),
            (TOKEN_ID.to_owned(), self.token_id),
            (SOURCE_ADDRESS.to_owned(), self.source_address),
            (USER_AGENT.to_owned(), self.user_agent),
        ]);
        if let Some((key, hash)) = self.idempotency {
            map.insert(IDEMPOTENCY_KEY.to_owned(), key);
            map.insert(REQUEST_HASH.to_owned(), hash);
        }
        map
    }
}

//! An Llm's health as the serving mcpd replica last saw it: a leaf, so that every document's
//! envelope can carry it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An Llm's health as the serving mcpd replica last saw it (from a warmup or a proxied call).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LlmHealth {
    pub status: LlmStatus,
    #[serde(default)]
    pub message: String,
    pub checked_at: String,
}

/// What the last look at an Llm found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum LlmStatus {
    /// It answered (a warmup, or a call the provider served or refused for its content).
    Ready,
    /// Its endpoint could not be reached.
    Unreachable,
    /// It did not answer in time.
    TimedOut,
    /// The provider refused the key (401 or 403).
    KeyRejected,
    /// The provider answered with an error of its own, or the Llm cannot be called as written.
    Failing,
    /// It runs on the client (gemini-cli); mcpd does not call it.
    ClientSide,
}

impl LlmStatus {
    /// The name shown (the STATUS column, `health.status`).
    pub fn as_str(self) -> &'static str {
        match self {
            LlmStatus::Ready => "Ready",
            LlmStatus::Unreachable => "Unreachable",
            LlmStatus::TimedOut => "TimedOut",
            LlmStatus::KeyRejected => "KeyRejected",
            LlmStatus::Failing => "Failing",
            LlmStatus::ClientSide => "ClientSide",
        }
    }
}

impl std::fmt::Display for LlmStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_travels_as_the_name_shown() {
        for status in [
            LlmStatus::Ready,
            LlmStatus::Unreachable,
            LlmStatus::TimedOut,
            LlmStatus::KeyRejected,
            LlmStatus::Failing,
            LlmStatus::ClientSide,
        ] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
    }
}

//! The `Llm` resource: which provider, model and tier a client should use, and which secret key
//! authenticates it.

/// The aggregate type in the event log.
pub const AGGREGATE_TYPE: &str = wire::Kind::Llm.info().aggregate_type;

mod aggregate;
mod commands;
mod events;
mod spec;

pub use aggregate::{Llm, LlmError};
pub use commands::LlmCommand;
pub use events::{LlmEvent, upcasters};
pub use spec::{LlmInput, LlmSpec, LlmType, SecretKeyRef, SecretKeyRefInput, TIMEOUT_KEY, Tier};

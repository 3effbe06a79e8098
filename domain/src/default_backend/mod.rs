//! Which SecretBackend is the default: one singleton aggregate holding one name. Every change of
//! the default is an event in this one stream, so optimistic concurrency on the stream keeps
//! exactly one default however many requests (or mcpd processes) race to move it.

mod aggregate;
mod commands;
mod events;

pub use aggregate::{DefaultBackend, DefaultBackendError};
pub use commands::DefaultBackendCommand;
pub use events::DefaultBackendEvent;

/// The aggregate type in the event log.
pub const AGGREGATE_TYPE: &str = "defaultbackend";
/// The one aggregate's id.
pub const AGGREGATE_ID: &str = "default";

//! The `Secret` resource: a named set of keys whose values live on a SecretBackend. Events and
//! this aggregate know the key names, the data version and where the values are (`valueRef`);
//! never the values themselves.

/// The aggregate type in the event log.
pub const AGGREGATE_TYPE: &str = wire::Kind::Secret.info().aggregate_type;

mod aggregate;
mod commands;
mod events;
mod spec;

pub use aggregate::{Secret, SecretError};
pub use commands::{KeyUse, NewSecretData, SecretCommand};
pub use events::SecretEvent;
pub use spec::{SecretData, SecretInput, SecretSpec, check_key_name};

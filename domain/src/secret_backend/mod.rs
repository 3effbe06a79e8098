//! The `SecretBackend` resource: where Secret values are stored. `plaintext` keeps them in
//! mcpd's own database; `openbao` (OpenBao / Vault KV v2) is shaped here and gets its driver in
//! the backends work. Exactly one backend is the default for new secrets.

/// The aggregate type in the event log.
pub const AGGREGATE_TYPE: &str = "secretbackend";

mod aggregate;
mod commands;
mod events;
mod spec;

pub use aggregate::{SecretBackend, SecretBackendError};
pub use commands::SecretBackendCommand;
pub use events::SecretBackendEvent;
pub use spec::{BackendType, OpenBaoConfig, OpenBaoConfigInput, SecretBackendInput, SecretBackendSpec};

/// The backend seeded at first start.
pub const DEFAULT_BACKEND: &str = "default";

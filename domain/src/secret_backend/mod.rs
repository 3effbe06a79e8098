//! The `SecretBackend` resource: where Secret values are stored. `plaintext` keeps them in
//! mcpd's own database; `openbao` in an OpenBao / Vault KV v2 server, authenticating with a
//! token kept in a plaintext secret. Which backend is the default lives in `default_backend`.

/// The aggregate type in the event log.
pub const AGGREGATE_TYPE: &str = wire::Kind::SecretBackend.info().aggregate_type;

mod aggregate;
mod commands;
mod events;
mod spec;

pub use aggregate::{SecretBackend, SecretBackendError};
pub use commands::SecretBackendCommand;
pub use commands::TokenSecret;
pub use events::SecretBackendEvent;
pub use spec::{
    BackendType, OpenBaoConfig, OpenBaoConfigInput, SecretBackendInput, SecretBackendRequest, SecretBackendSpec, url_ip,
};

/// The backend seeded at first start.
pub const DEFAULT_BACKEND: &str = "default";

//! Secret backend drivers: where a Secret's values are written, read and removed. One trait,
//! one implementation per backend type, picked per backend row in [`driver`]; a new kind of
//! store (a cloud KMS, say) is one new module and one match arm there.
//!
//! Every write creates a new version and returns a reference to exactly that version; the
//! event that records the write names it, so reads always see what the event log says, and a
//! write whose event was never recorded (a crash, a refused command) is at worst an orphaned
//! version.

pub mod openbao;
pub mod plaintext;

use domain::secret::SecretData;
use domain::secret_backend::BackendType;
use futures::FutureExt;
use futures::future::BoxFuture;
use projections::Database;
use projections::read_models::Record;
use projections::read_models::secret_backends::BackendState;
use serde::Serialize;

/// A version of a secret's values, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Reads this version back.
    pub value_ref: String,
    /// Where an external store keeps the values, for the Secret document.
    pub external_ref: Option<String>,
}

/// Why a backend call failed. Messages name the backend and the cause, never a token or a value.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("secretbackend {backend:?} is unreachable: {cause}")]
    Unreachable { backend: String, cause: String },
    #[error("secretbackend {backend:?} did not answer within {seconds}s")]
    TimedOut { backend: String, seconds: u64 },
    #[error("secretbackend {backend:?} is sealed")]
    Sealed { backend: String },
    #[error("secretbackend {backend:?} denied access to {path} (permission denied; check the token's policy)")]
    PermissionDenied { backend: String, path: String },
    #[error("secretbackend {backend:?} answered {status} for {path}: {message}")]
    Failed { backend: String, path: String, status: u16, message: String },
    #[error("secretbackend {backend:?}: {path} was changed by another writer at the same time; retry")]
    Conflict { backend: String, path: String },
    #[error("secretbackend {backend:?}: {path} holds data mcpd did not write; refusing to overwrite it")]
    Foreign { backend: String, path: String },
    #[error("secretbackend {backend:?} cannot authenticate: {reason}")]
    Token { backend: String, reason: String },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// What a backend answers to a health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub status: HealthStatus,
    pub message: String,
}

/// How a backend's health check went, as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HealthStatus {
    #[serde(rename = "ok")]
    Ok,
    #[serde(rename = "unreachable")]
    Unreachable,
    #[serde(rename = "sealed")]
    Sealed,
    #[serde(rename = "permission denied")]
    PermissionDenied,
    #[serde(rename = "error")]
    Error,
}

impl HealthStatus {
    /// As a metrics label (no spaces).
    pub const fn label(self) -> &'static str {
        match self {
            HealthStatus::Ok => "ok",
            HealthStatus::Unreachable => "unreachable",
            HealthStatus::Sealed => "sealed",
            HealthStatus::PermissionDenied => "permission_denied",
            HealthStatus::Error => "error",
        }
    }
}

impl Health {
    pub fn ok(message: impl Into<String>) -> Health {
        Health { status: HealthStatus::Ok, message: message.into() }
    }

    pub fn from_error(error: &BackendError) -> Health {
        Health { status: HealthStatus::of(error), message: error.to_string() }
    }
}

impl HealthStatus {
    pub fn of(error: &BackendError) -> HealthStatus {
        match error {
            BackendError::Unreachable { .. } | BackendError::TimedOut { .. } => HealthStatus::Unreachable,
            BackendError::Sealed { .. } => HealthStatus::Sealed,
            BackendError::PermissionDenied { .. } | BackendError::Token { .. } => HealthStatus::PermissionDenied,
            _ => HealthStatus::Error,
        }
    }
}

pub type BackendResult<T> = Result<T, BackendError>;

/// One backend's store of secret values.
pub trait SecretBackendDriver: Send + Sync {
    /// Stores a new version of `secret`'s values. `current` is the version mcpd last recorded
    /// for it on this backend, if any.
    fn put<'a>(
        &'a self,
        secret: &'a str,
        data: &'a SecretData,
        current: Option<&'a str>,
    ) -> BoxFuture<'a, BackendResult<Written>>;
    /// Gets ready to write new versions of several secrets (a migration's batch): a driver with
    /// per-secret set-up does it for all of them at once, so each `put` is cheaper.
    fn prepare<'a>(&'a self, secrets: &'a [String]) -> BoxFuture<'a, BackendResult<()>> {
        let _ = secrets;
        async { Ok(()) }.boxed()
    }
    /// Gives up what `prepare` set up for those of `secrets` that were not written after all
    /// (a migration's batch that stopped part-way), so nothing prepared outlives the batch.
    fn release<'a>(&'a self, secrets: &'a [String]) -> BoxFuture<'a, BackendResult<()>> {
        let _ = secrets;
        async { Ok(()) }.boxed()
    }
    /// Reads the version `value_ref` names; `None` when it is gone.
    fn get<'a>(&'a self, secret: &'a str, value_ref: &'a str) -> BoxFuture<'a, BackendResult<Option<SecretData>>>;
    /// Reads several versions (name, value_ref), one outcome each. Drivers that can do it in one
    /// round trip override this.
    fn get_many<'a>(&'a self, items: &'a [(String, String)]) -> BoxFuture<'a, Vec<BackendResult<Option<SecretData>>>> {
        async move {
            let mut outcomes = Vec::with_capacity(items.len());
            for (secret, value_ref) in items {
                outcomes.push(self.get(secret, value_ref).await);
            }
            outcomes
        }
        .boxed()
    }
    /// Removes one version no event refers to any longer (superseded, or written for a
    /// refused command).
    fn discard<'a>(&'a self, secret: &'a str, value_ref: &'a str) -> BoxFuture<'a, BackendResult<()>>;
    /// Removes what is stored for a deleted secret.
    fn delete<'a>(&'a self, secret: &'a str, value_ref: &'a str) -> BoxFuture<'a, BackendResult<()>>;
    /// Removes what is stored for several deleted or migrated secrets (name, value_ref); one
    /// outcome each. Drivers that can do it in one round trip override this.
    fn delete_many<'a>(&'a self, items: &'a [(String, String)]) -> BoxFuture<'a, Vec<BackendResult<()>>> {
        async move {
            let mut outcomes = Vec::with_capacity(items.len());
            for (secret, value_ref) in items {
                outcomes.push(self.delete(secret, value_ref).await);
            }
            outcomes
        }
        .boxed()
    }
    /// Whether the backend is reachable and lets mcpd in.
    fn health(&self) -> BoxFuture<'_, Health>;
}

/// The driver for one backend row: openbao for an openbao backend with its config, else mcpd's
/// own store.
pub fn driver(db: &Database, http: &reqwest::Client, backend: &Record<BackendState>) -> Box<dyn SecretBackendDriver> {
    match (backend.spec.spec.backend_type, &backend.spec.spec.config) {
        (BackendType::Openbao, Some(config)) => {
            Box::new(openbao::OpenBaoDriver::new(&backend.name, config.clone(), http.clone(), db.clone()))
        }
        _ => Box::new(plaintext::PlaintextDriver::new(db.clone())),
    }
}

use crate::name::ResourceName;
use crate::secret_backend::SecretBackendSpec;

/// What the write side found for an openbao backend's `tokenSecretRef`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSecret {
    /// The spec names no token secret (plaintext backends).
    NotNeeded,
    Missing,
    /// The secret exists, but on a backend that is not plaintext: it cannot be the trust root.
    NotPlaintext {
        backend: String,
    },
    /// The secret exists on plaintext and has these keys.
    Keys(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum SecretBackendCommand {
    CreateSecretBackend {
        name: ResourceName,
        spec: SecretBackendSpec,
        token_secret: TokenSecret,
    },
    UpdateSecretBackend {
        name: ResourceName,
        spec: SecretBackendSpec,
        token_secret: TokenSecret,
        expected_version: Option<u64>,
    },
    DeleteSecretBackend {
        name: ResourceName,
        /// Whether it is the default backend now.
        is_default: bool,
        /// Secrets stored on this backend.
        secrets_held: Vec<String>,
        expected_version: Option<u64>,
    },
}

impl crate::Creates for SecretBackendCommand {
    fn creates(&self) -> bool {
        match self {
            SecretBackendCommand::CreateSecretBackend { .. } => true,
            SecretBackendCommand::UpdateSecretBackend { .. } | SecretBackendCommand::DeleteSecretBackend { .. } => {
                false
            }
        }
    }
}

use crate::name::ResourceName;
use crate::secret_backend::SecretBackendSpec;

#[derive(Debug, Clone, PartialEq)]
pub enum SecretBackendCommand {
    CreateSecretBackend {
        name: ResourceName,
        spec: SecretBackendSpec,
        /// The backend that is the default now, if any.
        current_default: Option<String>,
    },
    UpdateSecretBackend {
        name: ResourceName,
        spec: SecretBackendSpec,
        current_default: Option<String>,
        expected_version: Option<u64>,
    },
    DeleteSecretBackend {
        name: ResourceName,
        /// Secrets stored on this backend.
        secrets_held: Vec<String>,
        expected_version: Option<u64>,
    },
}

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::secret_backend::SecretBackendSpec;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SecretBackendEvent {
    SecretBackendCreated { spec: SecretBackendSpec },
    SecretBackendUpdated { spec: SecretBackendSpec },
    SecretBackendDeleted {},
}

impl DomainEvent for SecretBackendEvent {
    fn event_type(&self) -> String {
        match self {
            SecretBackendEvent::SecretBackendCreated { .. } => "SecretBackendCreated",
            SecretBackendEvent::SecretBackendUpdated { .. } => "SecretBackendUpdated",
            SecretBackendEvent::SecretBackendDeleted { .. } => "SecretBackendDeleted",
        }
        .to_owned()
    }

    /// 2: the spec no longer carries `isDefault` (the `defaultbackend` aggregate does). A
    /// version-1 payload with `isDefault: true` still marks its backend the default when
    /// projected.
    fn event_version(&self) -> String {
        "2".to_owned()
    }
}

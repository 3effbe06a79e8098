use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::name::ResourceName;

/// What happened to a Secret. No value is ever part of an event: only key names, the data
/// version and the backend's reference to where the values are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum SecretEvent {
    SecretCreated {
        backend: ResourceName,
        description: String,
        keys: Vec<String>,
        data_version: u64,
        value_ref: String,
        /// Where an external backend keeps the values; absent for plaintext.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        external_ref: Option<String>,
    },
    SecretUpdated {
        description: String,
        keys: Vec<String>,
        /// Keys added, removed or changed; empty when only the description changed.
        changed_keys: Vec<String>,
        data_version: u64,
        value_ref: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        external_ref: Option<String>,
    },
    SecretDeleted {},
    /// The values were copied to `to` and reads go there from now on. `sourceValueRef` is what
    /// is left on `from` until `SecretSourceDeleted`.
    SecretMigrated {
        from: ResourceName,
        to: ResourceName,
        source_value_ref: String,
        value_ref: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        external_ref: Option<String>,
        run: String,
    },
    /// The values were removed from the source backend after a migration.
    SecretSourceDeleted {
        backend: ResourceName,
        run: String,
    },
    /// Removing them failed; the secret is fully usable on its new backend, the source copy
    /// remains and a re-run of the migration tries again.
    SecretSourceDeleteFailed {
        backend: ResourceName,
        reason: String,
        run: String,
    },
}

impl DomainEvent for SecretEvent {
    fn event_type(&self) -> String {
        match self {
            SecretEvent::SecretCreated { .. } => "SecretCreated",
            SecretEvent::SecretUpdated { .. } => "SecretUpdated",
            SecretEvent::SecretDeleted { .. } => "SecretDeleted",
            SecretEvent::SecretMigrated { .. } => "SecretMigrated",
            SecretEvent::SecretSourceDeleted { .. } => "SecretSourceDeleted",
            SecretEvent::SecretSourceDeleteFailed { .. } => "SecretSourceDeleteFailed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

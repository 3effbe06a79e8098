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
}

impl DomainEvent for SecretEvent {
    fn event_type(&self) -> String {
        match self {
            SecretEvent::SecretCreated { .. } => "SecretCreated",
            SecretEvent::SecretUpdated { .. } => "SecretUpdated",
            SecretEvent::SecretDeleted { .. } => "SecretDeleted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

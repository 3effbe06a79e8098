use crate::name::ResourceName;

/// Where a new version of a secret's data was written, and what changed. The values are
/// already on the backend when the command is issued: side effects come before the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSecretData {
    pub keys: Vec<String>,
    /// Keys added, removed or given a different value.
    pub changed_keys: Vec<String>,
    /// Where the backend keeps this version of the values.
    pub value_ref: String,
}

/// An Llm that uses one key of the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUse {
    pub llm: String,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SecretCommand {
    CreateSecret {
        name: ResourceName,
        backend: ResourceName,
        /// Whether `backend` names an existing SecretBackend.
        backend_exists: bool,
        description: String,
        data: NewSecretData,
    },
    UpdateSecret {
        name: ResourceName,
        /// The backend the client named, if any: it must be the one the secret is on.
        backend: Option<ResourceName>,
        description: String,
        /// `None` keeps the current values.
        data: Option<NewSecretData>,
        /// Every key of this secret some Llm refers to.
        key_uses: Vec<KeyUse>,
        expected_version: Option<u64>,
    },
    DeleteSecret {
        name: ResourceName,
        /// Llms whose apiKeyRef names this secret.
        referencing_llms: Vec<String>,
        expected_version: Option<u64>,
    },
}

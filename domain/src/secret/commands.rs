use crate::name::ResourceName;

/// Where a new version of a secret's data was written, and what changed. The values are
/// already on the backend when the command is issued: side effects come before the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSecretData {
    pub keys: Vec<String>,
    /// Keys added, removed or given a different value.
    pub changed_keys: Vec<String>,
    /// Which version of the values the backend holds for this write (for reads).
    pub value_ref: String,
    /// Where an external backend keeps the values (`secret/data/mcpd/anthropic`).
    pub external_ref: Option<String>,
    /// The backend the values were written to; it must still be the secret's when the event is
    /// recorded (a migration may have moved the secret in between).
    pub backend: ResourceName,
}

/// Something that uses one key of the secret: an Llm's API key, an openbao backend's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUse {
    /// As messages name it: `llm "claude-fast"`, `secretbackend "bao"`.
    pub user: String,
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
        /// Every key of this secret something refers to.
        key_uses: Vec<KeyUse>,
        expected_version: Option<u64>,
    },
    /// The flip of a migration: the values are already on `to`; from this event on, reads go
    /// there. Refused if the secret is no longer on `from` or its data changed since it was
    /// copied (the migration then copies again).
    MigrateSecret {
        name: ResourceName,
        from: ResourceName,
        to: ResourceName,
        /// The data version that was copied.
        copied_data_version: u64,
        value_ref: String,
        external_ref: Option<String>,
        /// The migration run doing it.
        run: String,
        /// Openbao backends whose token this secret holds, when `to` is not plaintext: such a
        /// secret is the trust root and must stay on plaintext.
        pinned_by: Vec<String>,
    },
    /// The outcome of removing the values from the source after a migration.
    RecordSourceCleanup {
        name: ResourceName,
        backend: ResourceName,
        /// `Err(reason)` when the delete failed.
        outcome: Result<(), String>,
        run: String,
    },
    DeleteSecret {
        name: ResourceName,
        /// What still refers to this secret (`llm "x"`, `secretbackend "bao"`).
        users: Vec<String>,
        expected_version: Option<u64>,
    },
}

impl crate::Creates for SecretCommand {
    fn creates(&self) -> bool {
        match self {
            SecretCommand::CreateSecret { .. } => true,
            SecretCommand::UpdateSecret { .. }
            | SecretCommand::MigrateSecret { .. }
            | SecretCommand::RecordSourceCleanup { .. }
            | SecretCommand::DeleteSecret { .. } => false,
        }
    }
}

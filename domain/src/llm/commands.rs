use crate::llm::LlmSpec;
use crate::name::ResourceName;

/// Commands on one Llm. The write side looks up the secret named by `spec.apiKeyRef` before
/// issuing the command and passes what it found, so the aggregate can check the reference
/// without doing I/O.
#[derive(Debug, Clone, PartialEq)]
pub enum LlmCommand {
    CreateLlm {
        name: ResourceName,
        spec: LlmSpec,
        /// The keys of the secret `spec.apiKeyRef` names; `None` when that secret does not exist.
        referenced_secret_keys: Option<Vec<String>>,
    },
    UpdateLlm {
        name: ResourceName,
        spec: LlmSpec,
        referenced_secret_keys: Option<Vec<String>>,
        /// `If-Match`: the resourceVersion the client last saw.
        expected_version: Option<u64>,
    },
    DeleteLlm {
        name: ResourceName,
        expected_version: Option<u64>,
    },
}

impl crate::Creates for LlmCommand {
    fn creates(&self) -> bool {
        match self {
            LlmCommand::CreateLlm { .. } => true,
            LlmCommand::UpdateLlm { .. } | LlmCommand::DeleteLlm { .. } => false,
        }
    }
}

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use crate::error::{Classified, ErrorClass, name_list};
use crate::name::ResourceName;
use crate::secret_backend::{SecretBackendCommand, SecretBackendEvent, SecretBackendSpec, TokenSecret};

/// One SecretBackend's write-side state; `version` counts the events applied.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SecretBackend {
    version: u64,
    spec: Option<SecretBackendSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretBackendError {
    #[error("secretbackend {0:?} already exists")]
    AlreadyExists(ResourceName),
    #[error("secretbackend {0:?} not found")]
    NotFound(ResourceName),
    #[error("secretbackend {name:?} is at resourceVersion {actual}, not {expected}")]
    StaleVersion { name: ResourceName, expected: u64, actual: u64 },
    #[error("secretbackend {0:?} is the default and cannot be deleted; make another backend the default first")]
    DeleteDefault(ResourceName),
    #[error("secretbackend {name:?} still holds secret {secrets}", secrets = name_list(.secrets))]
    InUse { name: ResourceName, secrets: Vec<String> },
    #[error("the type of secretbackend {0:?} cannot be changed")]
    TypeChanged(ResourceName),
    #[error("token secret {0:?} does not exist")]
    TokenSecretMissing(ResourceName),
    #[error("token secret {secret:?} is on backend {backend:?}; the token must be on a plaintext backend")]
    TokenSecretNotPlaintext { secret: ResourceName, backend: String },
    #[error("token secret {secret:?} has no key {key:?}")]
    TokenKeyMissing { secret: ResourceName, key: String },
}

impl Classified for SecretBackendError {
    fn class(&self) -> ErrorClass {
        match self {
            SecretBackendError::NotFound(_) => ErrorClass::NotFound,
            SecretBackendError::TokenSecretMissing(_)
            | SecretBackendError::TokenSecretNotPlaintext { .. }
            | SecretBackendError::TokenKeyMissing { .. } => ErrorClass::Unresolved,
            _ => ErrorClass::Conflict,
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            SecretBackendError::TypeChanged(_) => Some("spec.type"),
            SecretBackendError::TokenSecretMissing(_) | SecretBackendError::TokenSecretNotPlaintext { .. } => {
                Some("spec.config.tokenSecretRef.name")
            }
            SecretBackendError::TokenKeyMissing { .. } => Some("spec.config.tokenSecretRef.key"),
            _ => None,
        }
    }
}

impl SecretBackend {
    fn live(&self, name: &ResourceName, expected: Option<u64>) -> Result<&SecretBackendSpec, SecretBackendError> {
        let spec = self.spec.as_ref().ok_or_else(|| SecretBackendError::NotFound(name.clone()))?;
        match expected {
            Some(expected) if expected != self.version => {
                Err(SecretBackendError::StaleVersion { name: name.clone(), expected, actual: self.version })
            }
            _ => Ok(spec),
        }
    }

    /// An openbao backend's token must be a key of a secret on a plaintext backend: the trust
    /// root has to be readable without any other backend.
    fn check_token(spec: &SecretBackendSpec, token: TokenSecret) -> Result<(), SecretBackendError> {
        let Some(reference) = spec.config.as_ref().map(|c| &c.token_secret_ref) else {
            return Ok(());
        };
        match token {
            TokenSecret::NotNeeded | TokenSecret::Missing => {
                Err(SecretBackendError::TokenSecretMissing(reference.name.clone()))
            }
            TokenSecret::NotPlaintext { backend } => {
                Err(SecretBackendError::TokenSecretNotPlaintext { secret: reference.name.clone(), backend })
            }
            TokenSecret::Keys(keys) if !keys.contains(&reference.key) => {
                Err(SecretBackendError::TokenKeyMissing { secret: reference.name.clone(), key: reference.key.clone() })
            }
            TokenSecret::Keys(_) => Ok(()),
        }
    }
}

impl Aggregate for SecretBackend {
    const TYPE: &'static str = super::AGGREGATE_TYPE;
    type Command = SecretBackendCommand;
    type Event = SecretBackendEvent;
    type Error = SecretBackendError;
    type Services = ();

    async fn handle(
        &mut self,
        command: SecretBackendCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), SecretBackendError> {
        let event = match command {
            SecretBackendCommand::CreateSecretBackend { name, spec, token_secret } => {
                if self.spec.is_some() {
                    return Err(SecretBackendError::AlreadyExists(name));
                }
                Self::check_token(&spec, token_secret)?;
                SecretBackendEvent::SecretBackendCreated { spec }
            }
            SecretBackendCommand::UpdateSecretBackend { name, spec, token_secret, expected_version } => {
                let live = self.live(&name, expected_version)?;
                if *live == spec {
                    return Ok(());
                }
                if live.backend_type != spec.backend_type {
                    return Err(SecretBackendError::TypeChanged(name));
                }
                Self::check_token(&spec, token_secret)?;
                SecretBackendEvent::SecretBackendUpdated { spec }
            }
            SecretBackendCommand::DeleteSecretBackend { name, is_default, secrets_held, expected_version } => {
                self.live(&name, expected_version)?;
                if is_default {
                    return Err(SecretBackendError::DeleteDefault(name));
                }
                if !secrets_held.is_empty() {
                    return Err(SecretBackendError::InUse { name, secrets: secrets_held });
                }
                SecretBackendEvent::SecretBackendDeleted {}
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: SecretBackendEvent) {
        self.version += 1;
        self.spec = match event {
            SecretBackendEvent::SecretBackendCreated { spec } | SecretBackendEvent::SecretBackendUpdated { spec } => {
                Some(spec)
            }
            SecretBackendEvent::SecretBackendDeleted {} => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::llm::SecretKeyRef;
    use crate::secret_backend::{BackendType, OpenBaoConfig};

    type Given = TestFramework<SecretBackend>;

    fn n(s: &str) -> ResourceName {
        ResourceName::parse(s).unwrap()
    }

    fn spec(description: &str) -> SecretBackendSpec {
        SecretBackendSpec { backend_type: BackendType::Plaintext, description: description.into(), config: None }
    }

    fn bao() -> SecretBackendSpec {
        SecretBackendSpec {
            backend_type: BackendType::Openbao,
            description: String::new(),
            config: Some(OpenBaoConfig {
                url: "http://127.0.0.1:8200".into(),
                mount: "secret".into(),
                path_prefix: "mcpd/".into(),
                namespace: None,
                token_secret_ref: SecretKeyRef { name: n("bao-token"), key: "token".into() },
                timeout_seconds: 10,
                soft_delete: false,
                ca_cert: None,
                tls_server_name: None,
            }),
        }
    }

    fn create(name: &str, spec: SecretBackendSpec, token_secret: TokenSecret) -> SecretBackendCommand {
        SecretBackendCommand::CreateSecretBackend { name: n(name), spec, token_secret }
    }

    fn created(spec: SecretBackendSpec) -> SecretBackendEvent {
        SecretBackendEvent::SecretBackendCreated { spec }
    }

    fn update(spec: SecretBackendSpec) -> SecretBackendCommand {
        SecretBackendCommand::UpdateSecretBackend {
            name: n("archive"),
            spec,
            token_secret: TokenSecret::NotNeeded,
            expected_version: None,
        }
    }

    fn delete(is_default: bool, secrets_held: &[&str]) -> SecretBackendCommand {
        SecretBackendCommand::DeleteSecretBackend {
            name: n("archive"),
            is_default,
            secrets_held: secrets_held.iter().map(|s| s.to_string()).collect(),
            expected_version: None,
        }
    }

    #[test]
    fn a_plaintext_backend_is_created() {
        Given::with(())
            .given_no_previous_events()
            .when(create("archive", spec(""), TokenSecret::NotNeeded))
            .then_expect_events(vec![created(spec(""))]);
    }

    #[test]
    fn an_openbao_backend_needs_its_token_on_plaintext() {
        let keys = TokenSecret::Keys(vec!["token".into()]);
        Given::with(())
            .given_no_previous_events()
            .when(create("bao", bao(), keys))
            .then_expect_events(vec![created(bao())]);
        Given::with(())
            .given_no_previous_events()
            .when(create("bao", bao(), TokenSecret::Missing))
            .then_expect_error(SecretBackendError::TokenSecretMissing(n("bao-token")));
        Given::with(())
            .given_no_previous_events()
            .when(create("bao", bao(), TokenSecret::NotPlaintext { backend: "other-bao".into() }))
            .then_expect_error_message(
                "token secret \"bao-token\" is on backend \"other-bao\"; the token must be on a plaintext backend",
            );
        Given::with(())
            .given_no_previous_events()
            .when(create("bao", bao(), TokenSecret::Keys(vec!["other".into()])))
            .then_expect_error(SecretBackendError::TokenKeyMissing { secret: n("bao-token"), key: "token".into() });
    }

    #[test]
    fn create_on_a_live_backend_is_a_conflict() {
        Given::with(())
            .given(vec![created(spec(""))])
            .when(create("archive", spec(""), TokenSecret::NotNeeded))
            .then_expect_error(SecretBackendError::AlreadyExists(n("archive")));
    }

    #[test]
    fn update_changes_the_description() {
        Given::with(())
            .given(vec![created(spec(""))])
            .when(update(spec("old keys")))
            .then_expect_events(vec![SecretBackendEvent::SecretBackendUpdated { spec: spec("old keys") }]);
    }

    #[test]
    fn the_type_cannot_change() {
        Given::with(())
            .given(vec![created(spec(""))])
            .when(update(bao()))
            .then_expect_error(SecretBackendError::TypeChanged(n("archive")));
    }

    #[test]
    fn the_default_cannot_be_deleted() {
        Given::with(())
            .given(vec![created(spec(""))])
            .when(delete(true, &[]))
            .then_expect_error(SecretBackendError::DeleteDefault(n("archive")));
    }

    #[test]
    fn a_backend_holding_secrets_cannot_be_deleted() {
        Given::with(())
            .given(vec![created(spec(""))])
            .when(delete(false, &["anthropic", "openai"]))
            .then_expect_error_message("secretbackend \"archive\" still holds secret \"anthropic\", \"openai\"");
    }

    #[test]
    fn an_empty_backend_is_deleted() {
        Given::with(())
            .given(vec![created(spec(""))])
            .when(delete(false, &[]))
            .then_expect_events(vec![SecretBackendEvent::SecretBackendDeleted {}]);
    }

    #[test]
    fn delete_of_a_missing_backend_is_not_found() {
        Given::with(())
            .given_no_previous_events()
            .when(delete(false, &[]))
            .then_expect_error(SecretBackendError::NotFound(n("archive")));
    }
}

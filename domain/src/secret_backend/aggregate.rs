use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use crate::error::{Classified, ErrorClass, name_list};
use crate::name::ResourceName;
use crate::secret_backend::{SecretBackendCommand, SecretBackendEvent, SecretBackendSpec};

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
    StaleVersion {
        name: ResourceName,
        expected: u64,
        actual: u64,
    },
    #[error("secretbackend {current:?} is the default; making {name:?} the default instead is not supported yet")]
    DefaultTaken { name: ResourceName, current: String },
    #[error("secretbackend {0:?} is the default and must stay so until another backend becomes the default")]
    DefaultRequired(ResourceName),
    #[error("secretbackend {0:?} is the default and cannot be deleted")]
    DeleteDefault(ResourceName),
    #[error("secretbackend {name:?} still holds secret {secrets}", secrets = name_list(.secrets))]
    InUse { name: ResourceName, secrets: Vec<String> },
    #[error("the type of secretbackend {0:?} cannot be changed")]
    TypeChanged(ResourceName),
}

impl Classified for SecretBackendError {
    fn class(&self) -> ErrorClass {
        match self {
            SecretBackendError::NotFound(_) => ErrorClass::NotFound,
            SecretBackendError::TypeChanged(_) => ErrorClass::Invalid,
            _ => ErrorClass::Conflict,
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            SecretBackendError::TypeChanged(_) => Some("spec.type"),
            _ => None,
        }
    }
}

impl SecretBackend {
    fn live(&self, name: &ResourceName, expected: Option<u64>) -> Result<&SecretBackendSpec, SecretBackendError> {
        let spec = self
            .spec
            .as_ref()
            .ok_or_else(|| SecretBackendError::NotFound(name.clone()))?;
        match expected {
            Some(expected) if expected != self.version => Err(SecretBackendError::StaleVersion {
                name: name.clone(),
                expected,
                actual: self.version,
            }),
            _ => Ok(spec),
        }
    }

    /// Until moving the default flag exists, a backend may only claim it while no other has it.
    fn check_default_claim(
        name: &ResourceName,
        spec: &SecretBackendSpec,
        current_default: Option<String>,
    ) -> Result<(), SecretBackendError> {
        match current_default {
            Some(current) if spec.is_default && current != name.as_str() => Err(SecretBackendError::DefaultTaken {
                name: name.clone(),
                current,
            }),
            _ => Ok(()),
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
            SecretBackendCommand::CreateSecretBackend {
                name,
                spec,
                current_default,
            } => {
                if self.spec.is_some() {
                    return Err(SecretBackendError::AlreadyExists(name));
                }
                Self::check_default_claim(&name, &spec, current_default)?;
                SecretBackendEvent::SecretBackendCreated { spec }
            }
            SecretBackendCommand::UpdateSecretBackend {
                name,
                spec,
                current_default,
                expected_version,
            } => {
                let live = self.live(&name, expected_version)?;
                if *live == spec {
                    return Ok(());
                }
                if live.backend_type != spec.backend_type {
                    return Err(SecretBackendError::TypeChanged(name));
                }
                if live.is_default && !spec.is_default {
                    return Err(SecretBackendError::DefaultRequired(name));
                }
                Self::check_default_claim(&name, &spec, current_default)?;
                SecretBackendEvent::SecretBackendUpdated { spec }
            }
            SecretBackendCommand::DeleteSecretBackend {
                name,
                secrets_held,
                expected_version,
            } => {
                if self.live(&name, expected_version)?.is_default {
                    return Err(SecretBackendError::DeleteDefault(name));
                }
                if !secrets_held.is_empty() {
                    return Err(SecretBackendError::InUse {
                        name,
                        secrets: secrets_held,
                    });
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
    use crate::secret_backend::BackendType;

    type Given = TestFramework<SecretBackend>;

    fn n(s: &str) -> ResourceName {
        ResourceName::parse(s).unwrap()
    }

    fn spec(is_default: bool, description: &str) -> SecretBackendSpec {
        SecretBackendSpec {
            backend_type: BackendType::Plaintext,
            description: description.into(),
            is_default,
            config: None,
        }
    }

    fn create(name: &str, is_default: bool, current_default: Option<&str>) -> SecretBackendCommand {
        SecretBackendCommand::CreateSecretBackend {
            name: n(name),
            spec: spec(is_default, ""),
            current_default: current_default.map(String::from),
        }
    }

    fn created(is_default: bool) -> SecretBackendEvent {
        SecretBackendEvent::SecretBackendCreated {
            spec: spec(is_default, ""),
        }
    }

    fn update(is_default: bool, description: &str) -> SecretBackendCommand {
        SecretBackendCommand::UpdateSecretBackend {
            name: n("default"),
            spec: spec(is_default, description),
            current_default: Some("default".into()),
            expected_version: None,
        }
    }

    fn delete(secrets_held: &[&str]) -> SecretBackendCommand {
        SecretBackendCommand::DeleteSecretBackend {
            name: n("archive"),
            secrets_held: secrets_held.iter().map(|s| s.to_string()).collect(),
            expected_version: None,
        }
    }

    #[test]
    fn the_first_backend_becomes_the_default() {
        Given::with(())
            .given_no_previous_events()
            .when(create("default", true, None))
            .then_expect_events(vec![created(true)]);
    }

    #[test]
    fn a_second_default_is_refused_naming_the_current_one() {
        Given::with(())
            .given_no_previous_events()
            .when(create("other", true, Some("default")))
            .then_expect_error(SecretBackendError::DefaultTaken {
                name: n("other"),
                current: "default".into(),
            });
    }

    #[test]
    fn create_on_a_live_backend_is_a_conflict() {
        Given::with(())
            .given(vec![created(false)])
            .when(create("archive", false, Some("default")))
            .then_expect_error(SecretBackendError::AlreadyExists(n("archive")));
    }

    #[test]
    fn update_changes_the_description() {
        Given::with(())
            .given(vec![created(true)])
            .when(update(true, "in the database"))
            .then_expect_events(vec![SecretBackendEvent::SecretBackendUpdated {
                spec: spec(true, "in the database"),
            }]);
    }

    #[test]
    fn the_default_cannot_be_unset() {
        Given::with(())
            .given(vec![created(true)])
            .when(update(false, ""))
            .then_expect_error(SecretBackendError::DefaultRequired(n("default")));
    }

    #[test]
    fn the_default_cannot_be_deleted() {
        let command = SecretBackendCommand::DeleteSecretBackend {
            name: n("default"),
            secrets_held: vec![],
            expected_version: None,
        };
        Given::with(())
            .given(vec![created(true)])
            .when(command)
            .then_expect_error(SecretBackendError::DeleteDefault(n("default")));
    }

    #[test]
    fn a_backend_holding_secrets_cannot_be_deleted() {
        Given::with(())
            .given(vec![created(false)])
            .when(delete(&["anthropic", "openai"]))
            .then_expect_error_message("secretbackend \"archive\" still holds secret \"anthropic\", \"openai\"");
    }

    #[test]
    fn an_empty_backend_is_deleted() {
        Given::with(())
            .given(vec![created(false)])
            .when(delete(&[]))
            .then_expect_events(vec![SecretBackendEvent::SecretBackendDeleted {}]);
    }

    #[test]
    fn delete_of_a_missing_backend_is_not_found() {
        Given::with(())
            .given_no_previous_events()
            .when(delete(&[]))
            .then_expect_error(SecretBackendError::NotFound(n("archive")));
    }
}

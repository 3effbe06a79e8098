use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use crate::error::{Classified, ErrorClass, name_list};
use crate::name::ResourceName;
use crate::secret::{KeyUse, SecretCommand, SecretEvent};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LiveSecret {
    backend: ResourceName,
    description: String,
    keys: Vec<String>,
    data_version: u64,
    value_ref: String,
}

/// One Secret's write-side state; `version` counts the events applied (the resourceVersion).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Secret {
    version: u64,
    live: Option<LiveSecret>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret {0:?} already exists")]
    AlreadyExists(ResourceName),
    #[error("secret {0:?} not found")]
    NotFound(ResourceName),
    #[error("secret {name:?} is at resourceVersion {actual}, not {expected}")]
    StaleVersion {
        name: ResourceName,
        expected: u64,
        actual: u64,
    },
    #[error("secretbackend {0:?} does not exist")]
    BackendNotFound(ResourceName),
    #[error("secret {name:?} is on backend {current:?}; moving it to {requested:?} is a migration, not an update")]
    BackendChanged {
        name: ResourceName,
        current: ResourceName,
        requested: ResourceName,
    },
    #[error("secret {name:?} is used by llm {llms}", llms = name_list(.llms))]
    InUse { name: ResourceName, llms: Vec<String> },
    #[error("key {key:?} of secret {name:?} is used by llm {llms}", llms = name_list(.llms))]
    KeyInUse {
        name: ResourceName,
        key: String,
        llms: Vec<String>,
    },
}

impl Classified for SecretError {
    fn class(&self) -> ErrorClass {
        match self {
            SecretError::NotFound(_) => ErrorClass::NotFound,
            SecretError::BackendNotFound(_) | SecretError::BackendChanged { .. } => ErrorClass::Invalid,
            SecretError::AlreadyExists(_)
            | SecretError::StaleVersion { .. }
            | SecretError::InUse { .. }
            | SecretError::KeyInUse { .. } => ErrorClass::Conflict,
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            SecretError::BackendNotFound(_) | SecretError::BackendChanged { .. } => Some("spec.backend"),
            _ => None,
        }
    }
}

impl Secret {
    fn live(&self, name: &ResourceName, expected: Option<u64>) -> Result<&LiveSecret, SecretError> {
        let live = self.live.as_ref().ok_or_else(|| SecretError::NotFound(name.clone()))?;
        match expected {
            Some(expected) if expected != self.version => Err(SecretError::StaleVersion {
                name: name.clone(),
                expected,
                actual: self.version,
            }),
            _ => Ok(live),
        }
    }

    /// Rejects new keys that drop a key some Llm still uses.
    fn check_key_uses(name: &ResourceName, keys: &[String], uses: &[KeyUse]) -> Result<(), SecretError> {
        let dropped = uses.iter().find(|u| !keys.contains(&u.key));
        if let Some(dropped) = dropped {
            let llms = uses
                .iter()
                .filter(|u| u.key == dropped.key)
                .map(|u| u.llm.clone())
                .collect();
            return Err(SecretError::KeyInUse {
                name: name.clone(),
                key: dropped.key.clone(),
                llms,
            });
        }
        Ok(())
    }
}

impl Aggregate for Secret {
    const TYPE: &'static str = super::AGGREGATE_TYPE;
    type Command = SecretCommand;
    type Event = SecretEvent;
    type Error = SecretError;
    type Services = ();

    async fn handle(&mut self, command: SecretCommand, _: &(), sink: &EventSink<Self>) -> Result<(), SecretError> {
        let event = match command {
            SecretCommand::CreateSecret {
                name,
                backend,
                backend_exists,
                description,
                data,
            } => {
                if self.live.is_some() {
                    return Err(SecretError::AlreadyExists(name));
                }
                if !backend_exists {
                    return Err(SecretError::BackendNotFound(backend));
                }
                SecretEvent::SecretCreated {
                    backend,
                    description,
                    keys: data.keys,
                    data_version: 1,
                    value_ref: data.value_ref,
                }
            }
            SecretCommand::UpdateSecret {
                name,
                backend,
                description,
                data,
                key_uses,
                expected_version,
            } => {
                let live = self.live(&name, expected_version)?;
                if let Some(requested) = backend.filter(|b| *b != live.backend) {
                    return Err(SecretError::BackendChanged {
                        name,
                        current: live.backend.clone(),
                        requested,
                    });
                }
                let (keys, changed_keys, data_version, value_ref) = match data {
                    Some(data) => {
                        Self::check_key_uses(&name, &data.keys, &key_uses)?;
                        (data.keys, data.changed_keys, live.data_version + 1, data.value_ref)
                    }
                    None => (live.keys.clone(), vec![], live.data_version, live.value_ref.clone()),
                };
                if changed_keys.is_empty() && description == live.description {
                    return Ok(());
                }
                SecretEvent::SecretUpdated {
                    description,
                    keys,
                    changed_keys,
                    data_version,
                    value_ref,
                }
            }
            SecretCommand::DeleteSecret {
                name,
                referencing_llms,
                expected_version,
            } => {
                self.live(&name, expected_version)?;
                if !referencing_llms.is_empty() {
                    return Err(SecretError::InUse {
                        name,
                        llms: referencing_llms,
                    });
                }
                SecretEvent::SecretDeleted {}
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: SecretEvent) {
        self.version += 1;
        match event {
            SecretEvent::SecretCreated {
                backend,
                description,
                keys,
                data_version,
                value_ref,
            } => {
                self.live = Some(LiveSecret {
                    backend,
                    description,
                    keys,
                    data_version,
                    value_ref,
                });
            }
            SecretEvent::SecretUpdated {
                description,
                keys,
                data_version,
                value_ref,
                ..
            } => {
                if let Some(live) = &mut self.live {
                    live.description = description;
                    live.keys = keys;
                    live.data_version = data_version;
                    live.value_ref = value_ref;
                }
            }
            SecretEvent::SecretDeleted {} => self.live = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::secret::NewSecretData;

    type Given = TestFramework<Secret>;

    fn n(s: &str) -> ResourceName {
        ResourceName::parse(s).unwrap()
    }

    fn data(keys: &[&str], changed: &[&str], value_ref: &str) -> NewSecretData {
        NewSecretData {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            changed_keys: changed.iter().map(|k| k.to_string()).collect(),
            value_ref: value_ref.into(),
        }
    }

    fn create(backend_exists: bool) -> SecretCommand {
        SecretCommand::CreateSecret {
            name: n("anthropic"),
            backend: n("default"),
            backend_exists,
            description: String::new(),
            data: data(&["API_KEY"], &["API_KEY"], "r1"),
        }
    }

    fn created() -> SecretEvent {
        SecretEvent::SecretCreated {
            backend: n("default"),
            description: String::new(),
            keys: vec!["API_KEY".into()],
            data_version: 1,
            value_ref: "r1".into(),
        }
    }

    fn update(data: Option<NewSecretData>, description: &str, key_uses: Vec<KeyUse>) -> SecretCommand {
        SecretCommand::UpdateSecret {
            name: n("anthropic"),
            backend: None,
            description: description.into(),
            data,
            key_uses,
            expected_version: None,
        }
    }

    #[test]
    fn create_records_keys_but_no_values() {
        Given::with(())
            .given_no_previous_events()
            .when(create(true))
            .then_expect_events(vec![created()]);
    }

    #[test]
    fn create_on_a_missing_backend_is_rejected() {
        Given::with(())
            .given_no_previous_events()
            .when(create(false))
            .then_expect_error(SecretError::BackendNotFound(n("default")));
    }

    #[test]
    fn create_on_a_live_secret_is_a_conflict() {
        Given::with(())
            .given(vec![created()])
            .when(create(true))
            .then_expect_error(SecretError::AlreadyExists(n("anthropic")));
    }

    #[test]
    fn new_data_bumps_the_data_version_and_names_changed_keys() {
        Given::with(())
            .given(vec![created()])
            .when(update(Some(data(&["API_KEY", "ORG"], &["ORG"], "r2")), "", vec![]))
            .then_expect_events(vec![SecretEvent::SecretUpdated {
                description: String::new(),
                keys: vec!["API_KEY".into(), "ORG".into()],
                changed_keys: vec!["ORG".into()],
                data_version: 2,
                value_ref: "r2".into(),
            }]);
    }

    #[test]
    fn description_only_update_keeps_data() {
        Given::with(())
            .given(vec![created()])
            .when(update(None, "prod key", vec![]))
            .then_expect_events(vec![SecretEvent::SecretUpdated {
                description: "prod key".into(),
                keys: vec!["API_KEY".into()],
                changed_keys: vec![],
                data_version: 1,
                value_ref: "r1".into(),
            }]);
    }

    #[test]
    fn update_that_changes_nothing_records_nothing() {
        Given::with(())
            .given(vec![created()])
            .when(update(None, "", vec![]))
            .then_expect_events(vec![]);
    }

    #[test]
    fn update_cannot_drop_a_key_an_llm_uses() {
        let uses = vec![KeyUse {
            llm: "claude-fast".into(),
            key: "API_KEY".into(),
        }];
        Given::with(())
            .given(vec![created()])
            .when(update(Some(data(&["OTHER"], &["API_KEY", "OTHER"], "r2")), "", uses))
            .then_expect_error(SecretError::KeyInUse {
                name: n("anthropic"),
                key: "API_KEY".into(),
                llms: vec!["claude-fast".into()],
            });
    }

    #[test]
    fn update_cannot_move_the_secret_to_another_backend() {
        let command = SecretCommand::UpdateSecret {
            name: n("anthropic"),
            backend: Some(n("bao")),
            description: String::new(),
            data: None,
            key_uses: vec![],
            expected_version: None,
        };
        Given::with(())
            .given(vec![created()])
            .when(command)
            .then_expect_error(SecretError::BackendChanged {
                name: n("anthropic"),
                current: n("default"),
                requested: n("bao"),
            });
    }

    #[test]
    fn update_of_a_missing_secret_is_not_found() {
        Given::with(())
            .given_no_previous_events()
            .when(update(None, "", vec![]))
            .then_expect_error(SecretError::NotFound(n("anthropic")));
    }

    #[test]
    fn delete_of_a_referenced_secret_names_the_llms() {
        let command = SecretCommand::DeleteSecret {
            name: n("anthropic"),
            referencing_llms: vec!["claude-fast".into()],
            expected_version: None,
        };
        Given::with(())
            .given(vec![created()])
            .when(command)
            .then_expect_error_message("secret \"anthropic\" is used by llm \"claude-fast\"");
    }

    #[test]
    fn delete_with_stale_version_is_a_conflict() {
        let command = SecretCommand::DeleteSecret {
            name: n("anthropic"),
            referencing_llms: vec![],
            expected_version: Some(2),
        };
        Given::with(())
            .given(vec![created()])
            .when(command)
            .then_expect_error(SecretError::StaleVersion {
                name: n("anthropic"),
                expected: 2,
                actual: 1,
            });
    }

    #[test]
    fn delete_then_create_again() {
        let delete = SecretCommand::DeleteSecret {
            name: n("anthropic"),
            referencing_llms: vec![],
            expected_version: Some(1),
        };
        Given::with(())
            .given(vec![created()])
            .when(delete)
            .then_expect_events(vec![SecretEvent::SecretDeleted {}]);
        Given::with(())
            .given(vec![created(), SecretEvent::SecretDeleted {}])
            .when(create(true))
            .then_expect_events(vec![created()]);
    }
}

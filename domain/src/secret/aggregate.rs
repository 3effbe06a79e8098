use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use crate::error::{Classified, ErrorClass, user_list};
use crate::name::ResourceName;
use crate::secret::{KeyUse, NewSecretData, SecretCommand, SecretEvent};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LiveSecret {
    backend: ResourceName,
    description: String,
    keys: Vec<String>,
    data_version: u64,
    value_ref: String,
    #[serde(default)]
    external_ref: Option<String>,
}

/// One Secret's write-side state; `version` counts the events applied (the resourceVersion).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
    StaleVersion { name: ResourceName, expected: u64, actual: u64 },
    #[error("secretbackend {0:?} does not exist")]
    BackendNotFound(ResourceName),
    #[error("secret {name:?} is on backend {current:?}; moving it to {requested:?} is a migration, not an update")]
    BackendChanged { name: ResourceName, current: ResourceName, requested: ResourceName },
    #[error("secret {name:?} is used by {users}", users = user_list(.users))]
    InUse { name: ResourceName, users: Vec<String> },
    #[error("key {key:?} of secret {name:?} is used by {users}", users = user_list(.users))]
    KeyInUse { name: ResourceName, key: String, users: Vec<String> },
    #[error("secret {name:?} is on backend {actual:?}, not {expected:?}; it was moved meanwhile, retry")]
    NotOnBackend { name: ResourceName, expected: ResourceName, actual: ResourceName },
    #[error("secret {name:?} holds the token of secretbackend {backends}; it stays on a plaintext backend", backends = crate::error::name_list(.backends))]
    Pinned { name: ResourceName, backends: Vec<String> },
    #[error("secret {name:?} changed (data version {actual}, copied {copied}); copy it again")]
    DataChanged { name: ResourceName, copied: u64, actual: u64 },
}

impl Classified for SecretError {
    fn class(&self) -> ErrorClass {
        match self {
            SecretError::NotFound(_) => ErrorClass::NotFound,
            SecretError::BackendNotFound(_) => ErrorClass::Unresolved,
            SecretError::BackendChanged { .. } => ErrorClass::Conflict,
            SecretError::AlreadyExists(_)
            | SecretError::StaleVersion { .. }
            | SecretError::InUse { .. }
            | SecretError::KeyInUse { .. }
            | SecretError::NotOnBackend { .. }
            | SecretError::Pinned { .. }
            | SecretError::DataChanged { .. } => ErrorClass::Conflict,
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
            Some(expected) if expected != self.version => {
                Err(SecretError::StaleVersion { name: name.clone(), expected, actual: self.version })
            }
            _ => Ok(live),
        }
    }

    /// Rejects new keys that drop a key something still uses.
    fn check_key_uses(name: &ResourceName, keys: &[String], uses: &[KeyUse]) -> Result<(), SecretError> {
        if let Some(dropped) = uses.iter().find(|u| !keys.contains(&u.key)) {
            let users = uses.iter().filter(|u| u.key == dropped.key).map(|u| u.user.clone()).collect();
            return Err(SecretError::KeyInUse { name: name.clone(), key: dropped.key.clone(), users });
        }
        Ok(())
    }
}

impl Secret {
    /// The data an update leaves the secret with, and its data version: the new values (on the
    /// secret's own backend, keeping every key something uses), or the current ones.
    fn next_data(
        live: &LiveSecret,
        name: ResourceName,
        data: Option<NewSecretData>,
        key_uses: &[KeyUse],
    ) -> Result<(NewSecretData, u64), SecretError> {
        match data {
            Some(data) => {
                if data.backend != live.backend {
                    return Err(SecretError::NotOnBackend {
                        name,
                        expected: data.backend,
                        actual: live.backend.clone(),
                    });
                }
                Self::check_key_uses(&name, &data.keys, key_uses)?;
                Ok((data, live.data_version + 1))
            }
            None => Ok((
                NewSecretData {
                    keys: live.keys.clone(),
                    changed_keys: vec![],
                    value_ref: live.value_ref.clone(),
                    external_ref: live.external_ref.clone(),
                    backend: live.backend.clone(),
                },
                live.data_version,
            )),
        }
    }

    /// A migration's flip is refused for a pinned secret, one no longer on `from`, or one whose
    /// data changed since it was copied.
    fn check_flip(
        live: &LiveSecret,
        name: ResourceName,
        from: &ResourceName,
        copied_data_version: u64,
        pinned_by: Vec<String>,
    ) -> Result<(), SecretError> {
        if !pinned_by.is_empty() {
            return Err(SecretError::Pinned { name, backends: pinned_by });
        }
        if live.backend != *from {
            return Err(SecretError::NotOnBackend { name, expected: from.clone(), actual: live.backend.clone() });
        }
        if live.data_version != copied_data_version {
            return Err(SecretError::DataChanged { name, copied: copied_data_version, actual: live.data_version });
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
            SecretCommand::CreateSecret { name, backend, backend_exists, description, data } => {
                if self.live.is_some() {
                    return Err(SecretError::AlreadyExists(name));
                }
                if !backend_exists {
                    return Err(SecretError::BackendNotFound(backend));
                }
                let NewSecretData { keys, value_ref, external_ref, .. } = data;
                SecretEvent::SecretCreated { backend, description, keys, data_version: 1, value_ref, external_ref }
            }
            SecretCommand::UpdateSecret { name, backend, description, data, key_uses, expected_version } => {
                let live = self.live(&name, expected_version)?;
                if let Some(requested) = backend.filter(|b| *b != live.backend) {
                    return Err(SecretError::BackendChanged { name, current: live.backend.clone(), requested });
                }
                let (data, data_version) = Self::next_data(live, name, data, &key_uses)?;
                if data.changed_keys.is_empty() && description == live.description {
                    return Ok(());
                }
                let NewSecretData { keys, changed_keys, value_ref, external_ref, .. } = data;
                SecretEvent::SecretUpdated { description, keys, changed_keys, data_version, value_ref, external_ref }
            }
            SecretCommand::MigrateSecret {
                name,
                from,
                to,
                copied_data_version,
                value_ref,
                external_ref,
                run,
                pinned_by,
            } => {
                let live = self.live(&name, None)?;
                Self::check_flip(live, name, &from, copied_data_version, pinned_by)?;
                let source_value_ref = live.value_ref.clone();
                SecretEvent::SecretMigrated { from, to, source_value_ref, value_ref, external_ref, run }
            }
            SecretCommand::RecordSourceCleanup { name, backend, outcome, run } => {
                self.live(&name, None)?;
                match outcome {
                    Ok(()) => SecretEvent::SecretSourceDeleted { backend, run },
                    Err(reason) => SecretEvent::SecretSourceDeleteFailed { backend, reason, run },
                }
            }
            SecretCommand::DeleteSecret { name, users, expected_version } => {
                self.live(&name, expected_version)?;
                if !users.is_empty() {
                    return Err(SecretError::InUse { name, users });
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
            SecretEvent::SecretCreated { backend, description, keys, data_version, value_ref, external_ref } => {
                self.live = Some(LiveSecret { backend, description, keys, data_version, value_ref, external_ref });
            }
            SecretEvent::SecretUpdated { description, keys, data_version, value_ref, external_ref, .. } => {
                if let Some(live) = &mut self.live {
                    live.description = description;
                    live.keys = keys;
                    live.data_version = data_version;
                    live.value_ref = value_ref;
                    live.external_ref = external_ref;
                }
            }
            SecretEvent::SecretDeleted {} => self.live = None,
            SecretEvent::SecretMigrated { to, value_ref, external_ref, .. } => {
                if let Some(live) = &mut self.live {
                    live.backend = to;
                    live.value_ref = value_ref;
                    live.external_ref = external_ref;
                }
            }
            SecretEvent::SecretSourceDeleted { .. } | SecretEvent::SecretSourceDeleteFailed { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    type Given = TestFramework<Secret>;

    fn n(s: &str) -> ResourceName {
        ResourceName::parse(s).unwrap()
    }

    fn data(keys: &[&str], changed: &[&str], value_ref: &str) -> NewSecretData {
        NewSecretData {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            changed_keys: changed.iter().map(|k| k.to_string()).collect(),
            value_ref: value_ref.into(),
            external_ref: None,
            backend: n("default"),
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
            external_ref: None,
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

    fn delete(users: &[&str], expected_version: Option<u64>) -> SecretCommand {
        SecretCommand::DeleteSecret {
            name: n("anthropic"),
            users: users.iter().map(|u| u.to_string()).collect(),
            expected_version,
        }
    }

    #[test]
    fn create_records_keys_but_no_values() {
        Given::with(()).given_no_previous_events().when(create(true)).then_expect_events(vec![created()]);
    }

    #[test]
    fn create_on_an_external_backend_records_where_the_values_are() {
        let mut command = create(true);
        if let SecretCommand::CreateSecret { data, .. } = &mut command {
            data.external_ref = Some("secret/data/mcpd/anthropic".into());
        }
        let event = Given::with(()).given_no_previous_events().when(command).inspect_result().unwrap();
        assert!(
            matches!(&event[0], SecretEvent::SecretCreated { external_ref: Some(r), .. } if r == "secret/data/mcpd/anthropic")
        );
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
                external_ref: None,
            }]);
    }

    #[test]
    fn description_only_update_keeps_data() {
        Given::with(()).given(vec![created()]).when(update(None, "prod key", vec![])).then_expect_events(vec![
            SecretEvent::SecretUpdated {
                description: "prod key".into(),
                keys: vec!["API_KEY".into()],
                changed_keys: vec![],
                data_version: 1,
                value_ref: "r1".into(),
                external_ref: None,
            },
        ]);
    }

    #[test]
    fn update_that_changes_nothing_records_nothing() {
        Given::with(()).given(vec![created()]).when(update(None, "", vec![])).then_expect_events(vec![]);
    }

    #[test]
    fn update_cannot_drop_a_key_in_use() {
        let uses = vec![
            KeyUse { user: "llm \"claude-fast\"".into(), key: "API_KEY".into() },
            KeyUse { user: "secretbackend \"bao\"".into(), key: "API_KEY".into() },
        ];
        Given::with(())
            .given(vec![created()])
            .when(update(Some(data(&["OTHER"], &["API_KEY", "OTHER"], "r2")), "", uses))
            .then_expect_error_message(
                "key \"API_KEY\" of secret \"anthropic\" is used by llm \"claude-fast\", secretbackend \"bao\"",
            );
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
        Given::with(()).given(vec![created()]).when(command).then_expect_error(SecretError::BackendChanged {
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
    fn delete_of_a_secret_in_use_names_its_users() {
        Given::with(())
            .given(vec![created()])
            .when(delete(&["llm \"claude-fast\""], None))
            .then_expect_error_message("secret \"anthropic\" is used by llm \"claude-fast\"");
    }

    #[test]
    fn delete_with_stale_version_is_a_conflict() {
        Given::with(())
            .given(vec![created()])
            .when(delete(&[], Some(2)))
            .then_expect_error(SecretError::StaleVersion { name: n("anthropic"), expected: 2, actual: 1 });
    }

    fn migrate(from: &str, copied_data_version: u64) -> SecretCommand {
        SecretCommand::MigrateSecret {
            name: n("anthropic"),
            from: n(from),
            to: n("bao"),
            copied_data_version,
            value_ref: "7".into(),
            external_ref: Some("secret/data/mcpd/anthropic".into()),
            run: "run-1".into(),
            pinned_by: vec![],
        }
    }

    fn migrated() -> SecretEvent {
        SecretEvent::SecretMigrated {
            from: n("default"),
            to: n("bao"),
            source_value_ref: "r1".into(),
            value_ref: "7".into(),
            external_ref: Some("secret/data/mcpd/anthropic".into()),
            run: "run-1".into(),
        }
    }

    #[test]
    fn migration_flips_the_backend_and_remembers_the_source_copy() {
        Given::with(()).given(vec![created()]).when(migrate("default", 1)).then_expect_events(vec![migrated()]);
    }

    #[test]
    fn a_token_secret_stays_on_plaintext() {
        let mut command = migrate("default", 1);
        if let SecretCommand::MigrateSecret { pinned_by, .. } = &mut command {
            pinned_by.push("bao".into());
        }
        Given::with(()).given(vec![created()]).when(command).then_expect_error_message(
            "secret \"anthropic\" holds the token of secretbackend \"bao\"; it stays on a plaintext backend",
        );
    }

    #[test]
    fn a_secret_already_moved_is_not_migrated_twice() {
        Given::with(()).given(vec![created(), migrated()]).when(migrate("default", 1)).then_expect_error(
            SecretError::NotOnBackend { name: n("anthropic"), expected: n("default"), actual: n("bao") },
        );
    }

    #[test]
    fn a_secret_updated_since_it_was_copied_is_copied_again() {
        let updated = SecretEvent::SecretUpdated {
            description: String::new(),
            keys: vec!["API_KEY".into()],
            changed_keys: vec!["API_KEY".into()],
            data_version: 2,
            value_ref: "r2".into(),
            external_ref: None,
        };
        Given::with(())
            .given(vec![created(), updated])
            .when(migrate("default", 1))
            .then_expect_error(SecretError::DataChanged { name: n("anthropic"), copied: 1, actual: 2 });
    }

    #[test]
    fn an_update_written_to_the_old_backend_after_a_flip_is_refused() {
        Given::with(())
            .given(vec![created(), migrated()])
            .when(update(Some(data(&["API_KEY"], &["API_KEY"], "r9")), "", vec![]))
            .then_expect_error(SecretError::NotOnBackend {
                name: n("anthropic"),
                expected: n("default"),
                actual: n("bao"),
            });
    }

    #[test]
    fn source_cleanup_is_recorded_either_way() {
        let cleanup = |outcome: Result<(), String>| SecretCommand::RecordSourceCleanup {
            name: n("anthropic"),
            backend: n("default"),
            outcome,
            run: "run-1".into(),
        };
        Given::with(())
            .given(vec![created(), migrated()])
            .when(cleanup(Ok(())))
            .then_expect_events(vec![SecretEvent::SecretSourceDeleted { backend: n("default"), run: "run-1".into() }]);
        Given::with(())
            .given(vec![created(), migrated()])
            .when(cleanup(Err("database down".into())))
            .then_expect_events(vec![SecretEvent::SecretSourceDeleteFailed {
                backend: n("default"),
                reason: "database down".into(),
                run: "run-1".into(),
            }]);
    }

    #[test]
    fn delete_then_create_again() {
        Given::with(())
            .given(vec![created()])
            .when(delete(&[], Some(1)))
            .then_expect_events(vec![SecretEvent::SecretDeleted {}]);
        Given::with(())
            .given(vec![created(), SecretEvent::SecretDeleted {}])
            .when(create(true))
            .then_expect_events(vec![created()]);
    }
}

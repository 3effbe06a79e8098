use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use crate::error::{Classified, ErrorClass};
use crate::llm::{LlmCommand, LlmEvent, LlmSpec};
use crate::name::ResourceName;

/// One Llm's write-side state: the live spec (or none, before creation and after deletion) and
/// the number of events applied, which is the resourceVersion clients see.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Llm {
    version: u64,
    spec: Option<LlmSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    #[error("llm {0:?} already exists")]
    AlreadyExists(ResourceName),
    #[error("llm {0:?} not found")]
    NotFound(ResourceName),
    #[error("llm {name:?} is at resourceVersion {actual}, not {expected}")]
    StaleVersion { name: ResourceName, expected: u64, actual: u64 },
    #[error("secret {0:?} named by spec.apiKeyRef does not exist")]
    SecretNotFound(ResourceName),
    #[error("secret {secret:?} has no key {key:?} (spec.apiKeyRef)")]
    SecretKeyNotFound { secret: ResourceName, key: String },
}

impl Classified for LlmError {
    fn class(&self) -> ErrorClass {
        match self {
            LlmError::AlreadyExists(_) | LlmError::StaleVersion { .. } => ErrorClass::Conflict,
            LlmError::NotFound(_) => ErrorClass::NotFound,
            LlmError::SecretNotFound(_) | LlmError::SecretKeyNotFound { .. } => ErrorClass::Unresolved,
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            LlmError::SecretNotFound(_) => Some("spec.apiKeyRef.name"),
            LlmError::SecretKeyNotFound { .. } => Some("spec.apiKeyRef.key"),
            _ => None,
        }
    }
}

impl Llm {
    /// The live spec; `None` before creation and after deletion.
    pub fn spec(&self) -> Option<&LlmSpec> {
        self.spec.as_ref()
    }

    fn check_reference(spec: &LlmSpec, keys: Option<Vec<String>>) -> Result<(), LlmError> {
        let Some(reference) = &spec.api_key_ref else {
            return Ok(());
        };
        let keys = keys.ok_or_else(|| LlmError::SecretNotFound(reference.name.clone()))?;
        if !keys.contains(&reference.key) {
            return Err(LlmError::SecretKeyNotFound { secret: reference.name.clone(), key: reference.key.clone() });
        }
        Ok(())
    }

    fn live(&self, name: &ResourceName, expected: Option<u64>) -> Result<&LlmSpec, LlmError> {
        let spec = self.spec.as_ref().ok_or_else(|| LlmError::NotFound(name.clone()))?;
        match expected {
            Some(expected) if expected != self.version => {
                Err(LlmError::StaleVersion { name: name.clone(), expected, actual: self.version })
            }
            _ => Ok(spec),
        }
    }
}

impl Aggregate for Llm {
    const TYPE: &'static str = super::AGGREGATE_TYPE;
    type Command = LlmCommand;
    type Event = LlmEvent;
    type Error = LlmError;
    type Services = ();

    async fn handle(&mut self, command: LlmCommand, _: &(), sink: &EventSink<Self>) -> Result<(), LlmError> {
        let event = match command {
            LlmCommand::CreateLlm { name, spec, referenced_secret_keys } => {
                if self.spec.is_some() {
                    return Err(LlmError::AlreadyExists(name));
                }
                Self::check_reference(&spec, referenced_secret_keys)?;
                LlmEvent::LlmCreated { spec }
            }
            LlmCommand::UpdateLlm { name, spec, referenced_secret_keys, expected_version } => {
                if *self.live(&name, expected_version)? == spec {
                    return Ok(());
                }
                Self::check_reference(&spec, referenced_secret_keys)?;
                LlmEvent::LlmUpdated { spec }
            }
            LlmCommand::DeleteLlm { name, expected_version } => {
                self.live(&name, expected_version)?;
                LlmEvent::LlmDeleted {}
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: LlmEvent) {
        self.version += 1;
        self.spec = match event {
            LlmEvent::LlmCreated { spec } | LlmEvent::LlmUpdated { spec } => Some(spec),
            LlmEvent::LlmDeleted {} => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::llm::{LlmType, SecretKeyRef, Tier};

    type Given = TestFramework<Llm>;

    fn name() -> ResourceName {
        ResourceName::parse("claude-fast").unwrap()
    }

    fn spec(model: &str) -> LlmSpec {
        LlmSpec {
            provider: LlmType::Anthropic,
            model: model.into(),
            url: None,
            tier: Tier::Fast,
            description: String::new(),
            api_key_ref: Some(SecretKeyRef { name: ResourceName::parse("anthropic").unwrap(), key: "API_KEY".into() }),
            extra: BTreeMap::new(),
        }
    }

    fn keys() -> Option<Vec<String>> {
        Some(vec!["API_KEY".into()])
    }

    fn create(model: &str) -> LlmCommand {
        LlmCommand::CreateLlm { name: name(), spec: spec(model), referenced_secret_keys: keys() }
    }

    fn update(model: &str, expected_version: Option<u64>) -> LlmCommand {
        LlmCommand::UpdateLlm { name: name(), spec: spec(model), referenced_secret_keys: keys(), expected_version }
    }

    fn created(model: &str) -> LlmEvent {
        LlmEvent::LlmCreated { spec: spec(model) }
    }

    #[test]
    fn create_on_nothing_records_creation() {
        Given::with(()).given_no_previous_events().when(create("m")).then_expect_events(vec![created("m")]);
    }

    #[test]
    fn create_on_a_live_llm_is_a_conflict() {
        Given::with(()).given(vec![created("m")]).when(create("m")).then_expect_error(LlmError::AlreadyExists(name()));
    }

    #[test]
    fn a_deleted_name_can_be_created_again() {
        Given::with(())
            .given(vec![created("m"), LlmEvent::LlmDeleted {}])
            .when(create("n"))
            .then_expect_events(vec![created("n")]);
    }

    #[test]
    fn create_needs_the_referenced_secret() {
        let command = LlmCommand::CreateLlm { name: name(), spec: spec("m"), referenced_secret_keys: None };
        Given::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(LlmError::SecretNotFound(ResourceName::parse("anthropic").unwrap()));
    }

    #[test]
    fn create_needs_the_referenced_key() {
        let command =
            LlmCommand::CreateLlm { name: name(), spec: spec("m"), referenced_secret_keys: Some(vec!["OTHER".into()]) };
        Given::with(()).given_no_previous_events().when(command).then_expect_error(LlmError::SecretKeyNotFound {
            secret: ResourceName::parse("anthropic").unwrap(),
            key: "API_KEY".into(),
        });
    }

    #[test]
    fn update_replaces_the_spec() {
        Given::with(())
            .given(vec![created("m")])
            .when(update("n", Some(1)))
            .then_expect_events(vec![LlmEvent::LlmUpdated { spec: spec("n") }]);
    }

    #[test]
    fn update_to_the_same_spec_records_nothing() {
        Given::with(()).given(vec![created("m")]).when(update("m", None)).then_expect_events(vec![]);
    }

    #[test]
    fn update_with_stale_version_is_a_conflict() {
        Given::with(())
            .given(vec![created("m"), LlmEvent::LlmUpdated { spec: spec("n") }])
            .when(update("o", Some(1)))
            .then_expect_error(LlmError::StaleVersion { name: name(), expected: 1, actual: 2 });
    }

    #[test]
    fn update_of_a_missing_llm_is_not_found() {
        Given::with(())
            .given_no_previous_events()
            .when(update("m", None))
            .then_expect_error(LlmError::NotFound(name()));
    }

    #[test]
    fn delete_records_deletion() {
        Given::with(())
            .given(vec![created("m")])
            .when(LlmCommand::DeleteLlm { name: name(), expected_version: Some(1) })
            .then_expect_events(vec![LlmEvent::LlmDeleted {}]);
    }

    #[test]
    fn delete_of_a_deleted_llm_is_not_found() {
        Given::with(())
            .given(vec![created("m"), LlmEvent::LlmDeleted {}])
            .when(LlmCommand::DeleteLlm { name: name(), expected_version: None })
            .then_expect_error(LlmError::NotFound(name()));
    }

    #[test]
    fn delete_with_stale_version_is_a_conflict() {
        Given::with(())
            .given(vec![created("m")])
            .when(LlmCommand::DeleteLlm { name: name(), expected_version: Some(7) })
            .then_expect_error(LlmError::StaleVersion { name: name(), expected: 7, actual: 1 });
    }
}

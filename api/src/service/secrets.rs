use std::collections::BTreeMap;

use domain::document::Kind;
use domain::secret::{KeyUse, NewSecretData, Secret, SecretCommand, SecretData, SecretEvent, SecretInput, SecretSpec};
use domain::secret_backend::BackendType;
use domain::{ResourceName, ValidationErrors};
use projections::read_models::secrets::SecretState;
use projections::read_models::{Record, llms, secret_backends, secrets};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::Value;

use super::{Services, parse_document, preview, url_name};
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::plaintext;

/// A Secret as the API shows it: key names always, values only when asked to reveal them.
#[derive(Debug, Serialize)]
pub struct SecretView {
    #[serde(flatten)]
    pub state: SecretState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<BTreeMap<String, String>>,
}

impl Services {
    pub async fn list_secrets(&self, reveal: bool) -> Result<Vec<Record<SecretView>>, ApiError> {
        let mut out = Vec::new();
        for record in secrets::list(&self.store.db).await? {
            out.push(self.view(record, reveal).await?);
        }
        Ok(out)
    }

    pub async fn get_secret(&self, name: &str, reveal: bool) -> Result<Record<SecretView>, ApiError> {
        let record = secrets::get(&self.store.db, name)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("secret {name:?} not found")))?;
        self.view(record, reveal).await
    }

    async fn view(&self, record: Record<SecretState>, reveal: bool) -> Result<Record<SecretView>, ApiError> {
        let data = if reveal {
            let values = self.read_values(&record).await?;
            Some(
                values
                    .iter()
                    .map(|(k, v)| (k.clone(), v.expose_secret().to_owned()))
                    .collect(),
            )
        } else {
            None
        };
        Ok(Record {
            name: record.name,
            spec: SecretView {
                state: record.spec,
                data,
            },
            resource_version: record.resource_version,
            created_at: record.created_at,
            updated_at: record.updated_at,
        })
    }

    async fn read_values(&self, record: &Record<SecretState>) -> Result<SecretData, ApiError> {
        let values = plaintext::get(&self.store.db, &record.spec.value_ref).await?;
        Ok(values.ok_or_else(|| {
            anyhow::anyhow!(
                "the values of secret {:?} are missing from backend {:?}",
                record.name,
                record.spec.backend
            )
        })?)
    }

    /// The backend a new secret goes to, checked to be one that can store values.
    async fn backend_for(&self, spec: &SecretSpec) -> Result<(ResourceName, bool), ApiError> {
        let name = match &spec.backend {
            Some(name) => name.clone(),
            None => {
                let default = secret_backends::current_default(&self.store.db).await?;
                let default = default.ok_or_else(|| ApiError::Conflict("no secretbackend is the default".into()))?;
                ResourceName::parse(&default).map_err(|m| anyhow::anyhow!("default backend {default:?}: {m}"))?
            }
        };
        let backend = secret_backends::get(&self.store.db, name.as_str()).await?;
        if let Some(backend) = &backend
            && backend.spec.backend_type != BackendType::Plaintext
        {
            let mut errors = ValidationErrors::default();
            errors.add(
                "spec.backend",
                format!("backend {name:?} is of a type this version cannot store values on"),
            );
            return Err(ApiError::Invalid { kind: "secret", errors });
        }
        Ok((name, backend.is_some()))
    }

    pub async fn create_secret(
        &self,
        ctx: &RequestContext,
        body: Value,
        dry_run: bool,
    ) -> Result<Record<SecretView>, ApiError> {
        let (name, spec) = parse_document::<SecretInput>(body, None).map_err(redact_value_errors)?;
        // Checked before the values are written, so a duplicate create writes nothing; the
        // aggregate still decides under concurrency.
        if secrets::get(&self.store.db, name.as_str()).await?.is_some() {
            return Err(ApiError::Conflict(format!("secret {:?} already exists", name.as_str())));
        }
        let (backend, backend_exists) = self.backend_for(&spec).await?;
        let data = spec.data.unwrap_or_default();
        let keys: Vec<String> = data.keys().cloned().collect();
        let value_ref = if backend_exists && !dry_run {
            plaintext::put(&self.store.db, name.as_str(), &data).await?
        } else {
            String::new()
        };
        let data = NewSecretData {
            changed_keys: keys.clone(),
            keys,
            value_ref: value_ref.clone(),
        };
        let command = SecretCommand::CreateSecret {
            name: name.clone(),
            backend,
            backend_exists,
            description: spec.description,
            data,
        };
        self.run_secret(ctx, &name, command, dry_run, Some(&value_ref), None)
            .await
    }

    pub async fn replace_secret(
        &self,
        ctx: &RequestContext,
        name: &str,
        body: Value,
        expected_version: Option<u64>,
        dry_run: bool,
    ) -> Result<Record<SecretView>, ApiError> {
        let (name, spec) = parse_document::<SecretInput>(body, Some(name)).map_err(redact_value_errors)?;
        let current = secrets::get(&self.store.db, name.as_str())
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("secret {:?} not found", name.as_str())))?;
        let data = match spec.data {
            None => None,
            Some(new) => {
                let old = self.read_values(&current).await?;
                let changed = changed_keys(&old, &new);
                if changed.is_empty() {
                    None
                } else {
                    let value_ref = if dry_run {
                        String::new()
                    } else {
                        plaintext::put(&self.store.db, name.as_str(), &new).await?
                    };
                    Some(NewSecretData {
                        keys: new.keys().cloned().collect(),
                        changed_keys: changed,
                        value_ref,
                    })
                }
            }
        };
        let key_uses = llms::using_secret(&self.store.db, name.as_str())
            .await?
            .into_iter()
            .map(|(llm, key)| KeyUse { llm, key })
            .collect();
        let new_ref = data.as_ref().map(|d| d.value_ref.clone());
        let command = SecretCommand::UpdateSecret {
            name: name.clone(),
            backend: spec.backend,
            description: spec.description,
            data,
            key_uses,
            expected_version,
        };
        let superseded = new_ref.is_some().then_some(current.spec.value_ref.as_str());
        self.run_secret(ctx, &name, command, dry_run, new_ref.as_deref(), superseded)
            .await
    }

    /// Executes (or rehearses) `command`. `written` is the value version this request wrote,
    /// removed again if the command is refused; `superseded` the one it replaces, removed once
    /// the event naming the new one is recorded.
    async fn run_secret(
        &self,
        ctx: &RequestContext,
        name: &ResourceName,
        command: SecretCommand,
        dry_run: bool,
        written: Option<&str>,
        superseded: Option<&str>,
    ) -> Result<Record<SecretView>, ApiError> {
        if dry_run {
            let (events, sequence) = self.rehearse::<Secret>(name, command).await?;
            let current = secrets::get(&self.store.db, name.as_str()).await?;
            let record = preview(name, current, sequence, events, |state, event| match event {
                SecretEvent::SecretCreated {
                    backend,
                    description,
                    keys,
                    data_version,
                    value_ref,
                } => Some(SecretState {
                    backend,
                    description,
                    keys,
                    data_version: data_version as i64,
                    value_ref,
                }),
                SecretEvent::SecretUpdated {
                    description,
                    keys,
                    data_version,
                    value_ref,
                    ..
                } => state.map(|s| SecretState {
                    description,
                    keys,
                    data_version: data_version as i64,
                    value_ref,
                    ..s
                }),
                SecretEvent::SecretDeleted {} => None,
            })
            .ok_or_else(|| ApiError::NotFound(format!("secret {:?} not found", name.as_str())))?;
            return self.view(record, false).await;
        }
        match self.execute(&self.store.secrets, ctx, name, command).await {
            Ok(()) => {
                if let Some(superseded) = superseded {
                    plaintext::delete(&self.store.db, superseded).await?;
                }
            }
            Err(e) => {
                let refused = matches!(
                    e,
                    ApiError::Invalid { .. } | ApiError::Conflict(_) | ApiError::NotFound(_)
                );
                if let Some(written) = written.filter(|w| refused && !w.is_empty()) {
                    plaintext::delete(&self.store.db, written).await?;
                }
                return Err(e);
            }
        }
        self.get_secret(name.as_str(), false).await
    }

    pub async fn delete_secret(
        &self,
        ctx: &RequestContext,
        name: &str,
        expected_version: Option<u64>,
        dry_run: bool,
    ) -> Result<(), ApiError> {
        let name = url_name(Kind::Secret, name)?;
        let current = secrets::get(&self.store.db, name.as_str()).await?;
        let referencing_llms = llms::using_secret(&self.store.db, name.as_str())
            .await?
            .into_iter()
            .map(|(llm, _)| llm)
            .collect();
        let command = SecretCommand::DeleteSecret {
            name: name.clone(),
            referencing_llms,
            expected_version,
        };
        if dry_run {
            return self.rehearse::<Secret>(&name, command).await.map(drop);
        }
        self.execute(&self.store.secrets, ctx, &name, command).await?;
        if let Some(current) = current {
            plaintext::delete(&self.store.db, &current.spec.value_ref).await?;
        }
        Ok(())
    }
}

/// Keys added, removed, or whose value differs, in key order.
fn changed_keys(old: &SecretData, new: &SecretData) -> Vec<String> {
    let mut changed: Vec<String> = new
        .iter()
        .filter(|(k, v)| old.get(*k).is_none_or(|o| o.expose_secret() != v.expose_secret()))
        .map(|(k, _)| k.clone())
        .collect();
    changed.extend(old.keys().filter(|k| !new.contains_key(*k)).cloned());
    changed.sort();
    changed
}

/// serde's type errors quote the offending value; under `data` that value may be a secret.
fn redact_value_errors(error: ApiError) -> ApiError {
    match error {
        ApiError::MalformedBody(message) if message.starts_with("spec.data") => {
            let path = message.split(':').next().unwrap_or("spec.data").to_owned();
            ApiError::MalformedBody(format!("{path}: values must be strings"))
        }
        other => other,
    }
}

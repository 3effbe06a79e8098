use std::sync::Arc;

use domain::ResourceName;
use domain::document::Kind;
use domain::secret::{KeyUse, NewSecretData, Secret, SecretCommand, SecretData, SecretEvent, SecretInput, SecretSpec};
use projections::read_models::page::Page;
use projections::read_models::secrets::SecretState;
use projections::read_models::{Record, llms, secret_backends, secrets};
use secrecy::ExposeSecret;
use serde_json::Value;

use super::guard::{self, Direction};
use super::kind::{Answer, Applied, ResourceKind};
use super::{Services, parse_document, preview, url_name};
use crate::context::RequestContext;
use crate::error::ApiError;
use backends::{SecretBackendDriver, Written};

pub use wire::secret::SecretView;

impl Services {
    async fn view(&self, record: Record<SecretState>, reveal: bool) -> Result<Record<SecretView>, ApiError> {
        let data = if reveal {
            let values = self.read_values(&record).await?;
            Some(values.iter().map(|(k, v)| (k.clone(), v.expose_secret().to_owned())).collect())
        } else {
            None
        };
        Ok(Record {
            name: record.name,
            spec: SecretView { state: record.spec, data, reveal_error: None },
            resource_version: record.resource_version,
            created_at: record.created_at,
            updated_at: record.updated_at,
        })
    }

    /// The current values of a secret, read through its backend.
    pub(crate) async fn read_values(&self, record: &Record<SecretState>) -> Result<SecretData, ApiError> {
        let mut record = std::borrow::Cow::Borrowed(record);
        for _ in 0..3 {
            let driver = self.drivers.get(record.spec.backend.as_str()).await?;
            if let Some(values) = driver.get(&record.name, &record.spec.value_ref).await? {
                return Ok(values);
            }
            // A version superseded since the record was read (an update, or a migration that
            // moved the secret and removed its source copy) is gone: read the secret again.
            match secrets::get(&self.store.db, &record.name).await? {
                Some(now) if now.resource_version != record.resource_version => record = std::borrow::Cow::Owned(now),
                _ => break,
            }
        }
        Err(ApiError::BadGateway(format!(
            "the values of secret {:?} are missing from secretbackend {:?}",
            record.name,
            record.spec.backend.as_str()
        )))
    }

    /// The backend a new secret goes to (named, else the default), and its driver when it exists.
    async fn backend_for(
        &self,
        spec: &SecretSpec,
    ) -> Result<(ResourceName, Option<Arc<dyn SecretBackendDriver>>), ApiError> {
        let name = match &spec.backend {
            Some(name) => name.clone(),
            None => {
                let default = secret_backends::current_default(&self.store.db).await?;
                let default = default.ok_or_else(|| ApiError::Conflict("no secretbackend is the default".into()))?;
                ResourceName::parse(&default).map_err(|m| anyhow::anyhow!("default backend {default:?}: {m}"))?
            }
        };
        let driver = match self.drivers.get(name.as_str()).await {
            Ok(driver) => Some(driver),
            Err(ApiError::NotFound { kind: domain::document::Kind::SecretBackend, .. }) => None,
            Err(e) => return Err(e),
        };
        Ok((name, driver))
    }

    /// Everything that uses a key of `secret`: Llms' API keys and openbao backends' tokens.
    async fn key_uses(&self, secret: &str) -> Result<Vec<KeyUse>, ApiError> {
        let mut uses: Vec<KeyUse> = llms::using_secret(&self.store.db, secret)
            .await?
            .into_iter()
            .map(|(llm, key)| KeyUse { user: format!("llm {llm:?}"), key })
            .collect();
        uses.extend(
            secret_backends::using_token_secret(&self.store.db, secret)
                .await?
                .into_iter()
                .map(|(backend, key)| KeyUse { user: format!("secretbackend {backend:?}"), key }),
        );
        Ok(uses)
    }

    /// Executes (or rehearses) `command`. `written` is the version this request wrote, removed
    /// again if the command is refused; `superseded` the one it replaces, removed once the event
    /// naming the new one is recorded.
    async fn run_secret(
        &self,
        ctx: &RequestContext,
        name: &ResourceName,
        command: SecretCommand,
        dry_run: bool,
        written: Option<(Arc<dyn SecretBackendDriver>, Written)>,
        superseded: Option<String>,
    ) -> Result<Applied<Record<SecretView>>, ApiError> {
        if dry_run {
            let (events, sequence) = self.writer.rehearse::<Secret>(name, command).await?;
            let current = secrets::get(&self.store.db, name.as_str()).await?;
            let record = preview(name, current, sequence, events, |state, event| match event {
                SecretEvent::SecretCreated { backend, description, keys, data_version, value_ref, external_ref } => {
                    Some(SecretState {
                        backend,
                        description,
                        keys,
                        data_version: data_version as i64,
                        value_ref,
                        external_ref,
                    })
                }
                SecretEvent::SecretUpdated { description, keys, data_version, value_ref, external_ref, .. } => state
                    .map(|s| SecretState {
                        description,
                        keys,
                        data_version: data_version as i64,
                        value_ref,
                        external_ref,
                        ..s
                    }),
                SecretEvent::SecretDeleted {} => None,
                // Migrations do not come through this path.
                SecretEvent::SecretMigrated { .. }
                | SecretEvent::SecretSourceDeleted { .. }
                | SecretEvent::SecretSourceDeleteFailed { .. } => state,
            })
            .ok_or_else(|| ApiError::not_found(domain::document::Kind::Secret, name.as_str()))?;
            return self.view(record, false).await.map(Applied::Done);
        }
        let recorded = match self.writer.execute::<Secret>(ctx, name, command).await {
            Ok(recorded) => {
                if let (Some((driver, _)), Some(old)) = (&written, superseded) {
                    // Best effort: the new version is recorded; an old one left behind is garbage.
                    if let Err(e) = driver.discard(name.as_str(), &old).await {
                        tracing::warn!(secret = name.as_str(), error = %e, "could not remove a superseded version of the values");
                    }
                }
                recorded
            }
            Err(e) => {
                let refused = matches!(
                    e,
                    ApiError::Invalid { .. } | ApiError::Conflict(_) | ApiError::NotFound { .. } | ApiError::Missing(_)
                );
                if let (true, Some((driver, written))) = (refused, &written) {
                    driver.discard(name.as_str(), &written.value_ref).await?;
                }
                return Err(e);
            }
        };
        recorded.then(Secrets::get(self, name.as_str(), false)).await
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

/// The `secret` kind: its operations, as the generic resource routes call them. Values are
/// read only with `reveal`, which the routes allow only to callers holding `reveal:secrets`.
pub struct Secrets;

impl ResourceKind for Secrets {
    type Spec = SecretView;

    /// Every secret; with `reveal`, each one's values, or why they could not be read.
    async fn list(s: &Services, reveal: bool, page: Page) -> Answer<Vec<Record<Self::Spec>>> {
        let mut out = Vec::new();
        for record in secrets::list_page(&s.store.db, &page).await? {
            let shown = match s.view(record.clone(), reveal).await {
                Err(e @ (ApiError::BackendUnavailable(_) | ApiError::BadGateway(_))) => {
                    let mut view = s.view(record, false).await?;
                    view.spec.reveal_error = Some(e.to_string());
                    view
                }
                other => other?,
            };
            out.push(shown);
        }
        Ok(out)
    }

    async fn get(s: &Services, name: &str, reveal: bool) -> Answer<Record<Self::Spec>> {
        let record = secrets::get(&s.store.db, name)
            .await?
            .ok_or_else(|| ApiError::not_found(domain::document::Kind::Secret, name))?;
        s.view(record, reveal).await
    }

    async fn create(
        s: &Services,
        ctx: &RequestContext,
        body: Value,
        dry_run: bool,
    ) -> Answer<Applied<Record<Self::Spec>>> {
        let (name, spec) = parse_document::<SecretInput>(body, None)?;
        // Checked before the values are written, so a duplicate create writes nothing; the
        // aggregate still decides under concurrency.
        if secrets::get(&s.store.db, name.as_str()).await?.is_some() {
            return Err(ApiError::Conflict(format!("secret {:?} already exists", name.as_str())));
        }
        let (backend, driver) = s.backend_for(&spec).await?;
        let data = spec.data.unwrap_or_default();
        let keys: Vec<String> = data.keys().cloned().collect();
        // The values go to the backend before the event that records them.
        let written = match &driver {
            Some(driver) if !dry_run => Some(driver.put(name.as_str(), &data, None).await?),
            _ => None,
        };
        let (value_ref, external_ref) = written.clone().map(|w| (w.value_ref, w.external_ref)).unwrap_or_default();
        let data =
            NewSecretData { changed_keys: keys.clone(), keys, value_ref, external_ref, backend: backend.clone() };
        let command = SecretCommand::CreateSecret {
            name: name.clone(),
            backend_exists: driver.is_some(),
            backend,
            description: spec.description,
            data,
        };
        s.run_secret(ctx, &name, command, dry_run, driver.zip(written), None).await
    }

    async fn replace(
        s: &Services,
        ctx: &RequestContext,
        name: &str,
        body: Value,
        expected_version: Option<u64>,
        dry_run: bool,
    ) -> Answer<Applied<Record<Self::Spec>>> {
        let (name, spec) = parse_document::<SecretInput>(body, Some(name))?;
        let current = secrets::get(&s.store.db, name.as_str())
            .await?
            .ok_or_else(|| ApiError::not_found(domain::document::Kind::Secret, name.as_str()))?;
        if spec.data.is_some() {
            // The token an openbao backend authenticates with decides under whose identity every
            // value stored there is written: choosing it is choosing where they go.
            for (backend, _) in secret_backends::using_token_secret(&s.store.db, name.as_str()).await? {
                guard::authorize(ctx, Direction::BackendDestination { backend: &backend }, &s.upstreams)?;
            }
        }
        let driver = s.drivers.get(current.spec.backend.as_str()).await?;
        let mut written = None;
        let data = match spec.data {
            None => None,
            Some(new) => {
                let old = s.read_values(&current).await?;
                let changed = changed_keys(&old, &new);
                if changed.is_empty() {
                    None
                } else {
                    let Written { value_ref, external_ref } = if dry_run {
                        Written { value_ref: String::new(), external_ref: current.spec.external_ref.clone() }
                    } else {
                        let w = driver.put(name.as_str(), &new, Some(&current.spec.value_ref)).await?;
                        written = Some(w.clone());
                        w
                    };
                    Some(NewSecretData {
                        keys: new.keys().cloned().collect(),
                        changed_keys: changed,
                        value_ref,
                        external_ref,
                        backend: current.spec.backend.clone(),
                    })
                }
            }
        };
        let command = SecretCommand::UpdateSecret {
            name: name.clone(),
            backend: spec.backend,
            description: spec.description,
            data,
            key_uses: s.key_uses(name.as_str()).await?,
            expected_version,
        };
        let superseded = written.is_some().then(|| current.spec.value_ref.clone());
        s.run_secret(ctx, &name, command, dry_run, written.map(|w| (driver, w)), superseded).await
    }

    async fn delete(
        s: &Services,
        ctx: &RequestContext,
        name: &str,
        expected_version: Option<u64>,
        dry_run: bool,
    ) -> Answer<Applied<()>> {
        let name = url_name(Kind::Secret, name)?;
        let current = secrets::get(&s.store.db, name.as_str()).await?;
        let mut users: Vec<String> = s.key_uses(name.as_str()).await?.into_iter().map(|u| u.user).collect();
        users.dedup();
        let command = SecretCommand::DeleteSecret { name: name.clone(), users, expected_version };
        if dry_run {
            return s.writer.rehearse::<Secret>(&name, command).await.map(|_| Applied::Done(()));
        }
        let recorded = s.writer.execute::<Secret>(ctx, &name, command).await?;
        if let Some(current) = current {
            // The secret is gone from the log; its values follow.
            let driver = s.drivers.get(current.spec.backend.as_str()).await?;
            driver.delete(name.as_str(), &current.spec.value_ref).await?;
        }
        recorded.then(async { Ok(()) }).await
    }
}

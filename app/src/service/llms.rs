use domain::ResourceName;
use domain::document::Kind;
use domain::llm::{Llm, LlmCommand, LlmEvent, LlmInput, LlmSpec};
use projections::read_models::page::Page;
use projections::read_models::{Record, llms, secrets};
use secrecy::SecretString;
use serde_json::Value;

use super::guard::{self, Direction};
use super::kind::{Answer, Applied, ResourceKind};
use super::{Recorded, Services, parse_document, preview, url_name};
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::store::write::Written;

impl Services {
    /// The keys of the secret `spec.apiKeyRef` names, as the aggregate's reference check needs.
    /// A secret the caller may not view is reported missing, exactly as one that is, unless
    /// the Llm already referred to it (`current`): keeping a reference is not making one.
    async fn referenced_secret_keys(
        &self,
        ctx: &RequestContext,
        spec: &LlmSpec,
        current: Option<&LlmSpec>,
    ) -> Result<Option<Vec<String>>, ApiError> {
        let Some(reference) = &spec.api_key_ref else {
            return Ok(None);
        };
        let kept = current.is_some_and(|c| c.api_key_ref == spec.api_key_ref);
        if !kept && !guard::may_refer_to(ctx, reference.name.as_str()) {
            return Ok(None);
        }
        let secret = secrets::get(&self.store.db, reference.name.as_str()).await?;
        Ok(secret.map(|s| s.spec.keys))
    }

    /// Checks where `spec` sends its key and its callers' requests, unless `current` already
    /// sent them there. A keyed Llm only once its reference resolves (`keys`): a missing or
    /// hidden secret is the aggregate's "does not exist", whoever asks.
    fn check_direction(
        &self,
        ctx: &RequestContext,
        spec: &LlmSpec,
        keys: &Option<Vec<String>>,
        current: Option<&LlmSpec>,
    ) -> Result<(), ApiError> {
        if spec.api_key_ref.is_some() && keys.is_none() {
            return Ok(());
        }
        let unchanged = current
            .is_some_and(|c| c.api_key_ref == spec.api_key_ref && c.url == spec.url && c.provider == spec.provider);
        if unchanged {
            return Ok(());
        }
        let secret = spec.api_key_ref.as_ref().map(|r| r.name.as_str());
        let direction = Direction::LlmUpstream { secret, provider: spec.provider, url: spec.url.as_deref() };
        guard::authorize(ctx, direction, &self.upstreams)
    }

    /// Executes (or, for a dry run, rehearses) `command` and answers with the resulting Llm.
    async fn run_llm(
        &self,
        ctx: &RequestContext,
        name: &ResourceName,
        command: LlmCommand,
        dry_run: bool,
    ) -> Result<Applied<Record<LlmSpec>>, ApiError> {
        if !dry_run {
            let (recorded, written) = self.writer.execute_keeping::<Llm>(ctx, name, command).await?;
            if let (Recorded::Visible, Some(created)) = (&recorded, created(name, &written)) {
                return Ok(Applied::Done(created));
            }
            return recorded.then(Llms::get(self, name.as_str(), false)).await;
        }
        let (events, sequence) = self.writer.rehearse::<Llm>(name, command).await?;
        let current = llms::get(&self.store.db, name.as_str()).await?;
        preview(name, current, sequence, events, |_, event| match event {
            LlmEvent::LlmCreated { spec } | LlmEvent::LlmUpdated { spec } => Some(spec),
            LlmEvent::LlmDeleted {} => None,
        })
        .ok_or_else(|| ApiError::not_found(domain::document::Kind::Llm, name.as_str()))
        .map(Applied::Done)
    }

    /// The API key an Llm authenticates with, read through the backend of its secret (and
    /// kept in the key cache); `None` for a keyless Llm.
    pub async fn resolve_api_key(&self, llm: &str) -> Result<Option<std::sync::Arc<SecretString>>, ApiError> {
        let llm = Llms::get(self, llm, false).await?;
        self.api_key_of(&llm).await
    }

    /// The API key `llm` authenticates with, from the key cache (kept current from the log).
    pub async fn api_key_of(
        &self,
        llm: &Record<LlmSpec>,
    ) -> Result<Option<std::sync::Arc<secrecy::SecretString>>, ApiError> {
        let Some(reference) = &llm.spec.api_key_ref else { return Ok(None) };
        // Its secret changed and the read models do not show it yet: what they would give is
        // the key the change replaced.
        if self.access.is_unshown(domain::secret::AGGREGATE_TYPE, reference.name.as_str()) {
            return Err(ApiError::Changing(format!(
                "secret {:?}, which llm {:?} authenticates with, was changed and the change is not visible yet: \
                 the Llm is not served until it is; retry shortly",
                reference.name, llm.name
            )));
        }
        let load = async {
            let secret = projections::read_models::secrets::get(&self.store.db, reference.name.as_str())
                .await?
                .ok_or_else(|| {
                    ApiError::Conflict(format!(
                        "llm {:?} refers to secret {:?}, which does not exist",
                        llm.name, reference.name
                    ))
                })?;
            let mut data = self.read_values(&secret).await?;
            data.remove(&reference.key).ok_or_else(|| {
                ApiError::Conflict(format!(
                    "secret {:?} has no key {:?}, which llm {:?} uses",
                    secret.name, reference.key, llm.name
                ))
            })
        };
        self.access.api_key(reference.name.as_str(), &reference.key, load).await.map(Some)
    }
}

/// A new Llm as the read model shows it, from its create alone: its first event's time is both
/// `createdAt` and `updatedAt`, and the spec is the one the event recorded. `None` for any
/// other write (its `createdAt` is older than the write).
fn created(name: &ResourceName, written: &Written<Llm>) -> Option<Record<LlmSpec>> {
    let (Some(appended), Some(spec), 1) = (&written.appended, written.aggregate.spec(), written.sequence) else {
        return None;
    };
    Some(Record {
        name: name.to_string(),
        spec: spec.clone(),
        resource_version: 1,
        created_at: appended.recorded_at.clone(),
        updated_at: appended.recorded_at.clone(),
    })
}

/// The `llm` kind: its operations, as the generic resource routes call them.
pub struct Llms;

impl ResourceKind for Llms {
    type Spec = LlmSpec;

    fn health(s: &Services, name: &str) -> Option<wire::llm::LlmHealth> {
        s.inference.health.get(name)
    }

    async fn list(s: &Services, _reveal: bool, page: Page) -> Answer<Vec<Record<Self::Spec>>> {
        Ok(llms::list_page(&s.store.db, &page).await?)
    }

    async fn get(s: &Services, name: &str, _reveal: bool) -> Answer<Record<Self::Spec>> {
        llms::get(&s.store.db, name).await?.ok_or_else(|| ApiError::not_found(domain::document::Kind::Llm, name))
    }

    async fn create(
        s: &Services,
        ctx: &RequestContext,
        body: Value,
        dry_run: bool,
    ) -> Answer<Applied<Record<Self::Spec>>> {
        let (name, spec) = parse_document::<LlmInput>(body, None)?;
        let referenced_secret_keys = s.referenced_secret_keys(ctx, &spec, None).await?;
        s.check_direction(ctx, &spec, &referenced_secret_keys, None)?;
        let command = LlmCommand::CreateLlm { name: name.clone(), spec, referenced_secret_keys };
        s.run_llm(ctx, &name, command, dry_run).await
    }

    async fn replace(
        s: &Services,
        ctx: &RequestContext,
        name: &str,
        body: Value,
        expected_version: Option<u64>,
        dry_run: bool,
    ) -> Answer<Applied<Record<Self::Spec>>> {
        let (name, spec) = parse_document::<LlmInput>(body, Some(name))?;
        let current = llms::get(&s.store.db, name.as_str()).await?;
        let current = current.as_ref().map(|c| &c.spec);
        let referenced_secret_keys = s.referenced_secret_keys(ctx, &spec, current).await?;
        s.check_direction(ctx, &spec, &referenced_secret_keys, current)?;
        let command = LlmCommand::UpdateLlm { name: name.clone(), spec, referenced_secret_keys, expected_version };
        s.run_llm(ctx, &name, command, dry_run).await
    }

    async fn delete(
        s: &Services,
        ctx: &RequestContext,
        name: &str,
        expected_version: Option<u64>,
        dry_run: bool,
    ) -> Answer<Applied<()>> {
        let name = url_name(Kind::Llm, name)?;
        let command = LlmCommand::DeleteLlm { name: name.clone(), expected_version };
        s.writer.delete::<Llm>(ctx, &name, command, dry_run).await
    }
}

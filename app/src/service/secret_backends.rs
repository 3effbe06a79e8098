use std::time::Duration;

use crate::store::write::WriteError;
use domain::ResourceName;
use domain::default_backend::{self, DefaultBackend, DefaultBackendCommand};
use domain::document::Kind;
use domain::secret_backend::{
    BackendType, DEFAULT_BACKEND, SecretBackend, SecretBackendCommand, SecretBackendEvent, SecretBackendInput,
    SecretBackendRequest, SecretBackendSpec, TokenSecret,
};
use projections::read_models::page::Page;
use projections::read_models::secret_backends::BackendState;
use projections::read_models::{Record, secret_backends, secrets};
use serde_json::Value;

use super::guard::{self, Direction};
use super::kind::{Answer, Applied, ResourceKind};
use super::writer::Recorded;
use super::{Services, parse_document, preview, url_name};
use crate::context::RequestContext;
use crate::error::ApiError;
use backends::Health;

/// How often a move of the default flag is retried when other moves win the race.
const DEFAULT_MOVE_ATTEMPTS: usize = 100;

impl Services {
    /// Pings the backend: reachable, unsealed, and accepting mcpd's token?
    pub async fn secret_backend_health(&self, name: &str) -> Result<Health, ApiError> {
        let driver = self.drivers.get(name).await?;
        Ok(driver.health().await)
    }

    /// What the write side knows of the token secret an openbao spec names.
    async fn token_secret(&self, spec: &SecretBackendSpec) -> Result<TokenSecret, ApiError> {
        let Some(reference) = spec.config.as_ref().map(|c| &c.token_secret_ref) else {
            return Ok(TokenSecret::NotNeeded);
        };
        let Some(secret) = secrets::get(&self.store.db, reference.name.as_str()).await? else {
            return Ok(TokenSecret::Missing);
        };
        let backend = secret_backends::get(&self.store.db, secret.spec.backend.as_str()).await?;
        if backend.is_none_or(|b| b.spec.spec.backend_type != BackendType::Plaintext) {
            return Ok(TokenSecret::NotPlaintext { backend: secret.spec.backend.to_string() });
        }
        Ok(TokenSecret::Keys(secret.spec.keys))
    }

    /// The guard on what a backend document directs: where the backend sends its token and
    /// values (unless `current` already sends them there), and making it the default.
    fn check_directions(
        &self,
        ctx: &RequestContext,
        name: &ResourceName,
        spec: &SecretBackendSpec,
        is_default: Option<bool>,
        current: Option<&BackendState>,
    ) -> Result<(), ApiError> {
        let backend = name.as_str();
        let moved = match current {
            None => spec.backend_type != BackendType::Plaintext,
            Some(current) => destination(&current.spec) != destination(spec),
        };
        if moved {
            guard::authorize(ctx, Direction::BackendDestination { backend }, &self.upstreams)?;
        }
        if is_default == Some(true) && !current.is_some_and(|c| c.is_default) {
            guard::authorize(ctx, Direction::DefaultBackend { backend }, &self.upstreams)?;
        }
        Ok(())
    }

    /// 400 unless the backend's TLS settings make a usable client (its caCert parses).
    fn check_tls(&self, spec: &SecretBackendSpec) -> Result<(), ApiError> {
        let Some(config) = &spec.config else { return Ok(()) };
        backends::openbao::client_for(config, &self.drivers.http).map(drop).map_err(|message| {
            let mut errors = domain::ValidationErrors::default();
            errors.add("spec.config.caCert", message);
            ApiError::Invalid { kind: "secretbackend", errors }
        })
    }

    /// Executes (or rehearses) `command`, then what the document asks of the default flag.
    /// The flag is checked first, so a refused `isDefault: false` changes nothing at all.
    async fn run_secret_backend(
        &self,
        ctx: &RequestContext,
        name: &ResourceName,
        command: SecretBackendCommand,
        is_default: Option<bool>,
        dry_run: bool,
    ) -> Result<Applied<Record<BackendState>>, ApiError> {
        let flag = match is_default {
            None => None,
            Some(true) => Some(DefaultBackendCommand::SetDefaultBackend { to: name.clone(), to_exists: true }),
            Some(false) => Some(DefaultBackendCommand::KeepNotDefault { name: name.clone() }),
        };
        let singleton = ResourceName::parse(default_backend::AGGREGATE_ID).expect("a valid id");
        if let Some(flag) = &flag {
            self.writer.rehearse::<DefaultBackend>(&singleton, flag.clone()).await?;
        }
        if dry_run {
            let (events, sequence) = self.writer.rehearse::<SecretBackend>(name, command).await?;
            let current = secret_backends::get(&self.store.db, name.as_str()).await?;
            let was_default = current.as_ref().is_some_and(|c| c.spec.is_default);
            return preview(name, current, sequence, events, |_, event| match event {
                SecretBackendEvent::SecretBackendCreated { spec }
                | SecretBackendEvent::SecretBackendUpdated { spec } => {
                    Some(BackendState { spec, is_default: is_default.unwrap_or(was_default) })
                }
                SecretBackendEvent::SecretBackendDeleted {} => None,
            })
            .ok_or_else(|| ApiError::not_found(domain::document::Kind::SecretBackend, name.as_str()))
            .map(Applied::Done);
        }
        let mut recorded = self.writer.execute::<SecretBackend>(ctx, name, command).await?;
        if let Some(DefaultBackendCommand::SetDefaultBackend { to, .. }) = flag {
            recorded = recorded.and(self.move_default(ctx, to).await?);
        }
        recorded.then(SecretBackends::get(self, name.as_str(), false)).await
    }

    /// Makes `to` the default. Every move is an event in the one `defaultbackend` stream; when
    /// concurrent moves clash there, this one is retried on the new state, so all of them land
    /// in some order and exactly one backend ends up the default.
    async fn move_default(&self, ctx: &RequestContext, to: ResourceName) -> Result<Recorded, ApiError> {
        let singleton = ResourceName::parse(default_backend::AGGREGATE_ID).expect("a valid id");
        for attempt in 0..DEFAULT_MOVE_ATTEMPTS {
            let to_exists = secret_backends::get(&self.store.db, to.as_str()).await?.is_some();
            let command = DefaultBackendCommand::SetDefaultBackend { to: to.clone(), to_exists };
            match self.writer.write::<DefaultBackend>(ctx, &singleton, command).await {
                Ok(_) => return self.writer.await_projection(default_backend::AGGREGATE_TYPE, &singleton).await,
                Err(WriteError::Clash { .. }) => {
                    // Jittered, so the losers of one race do not all meet again in the next.
                    let pause = fastrand::u64(1..=(5 + 2 * attempt as u64).min(50));
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                Err(e) => return Err(ApiError::from_write(default_backend::AGGREGATE_TYPE, to.as_str(), e)),
            }
        }
        Err(ApiError::Conflict(format!(
            "secretbackend {:?} could not be made the default: too many concurrent changes; retry",
            to.as_str()
        )))
    }

    /// Creates the `default` plaintext backend and makes it the default on first start. Safe to
    /// race: the event store lets one creation through, and any later start finds it there.
    pub async fn seed_default_backend(&self) -> Result<(), ApiError> {
        let name = ResourceName::parse(DEFAULT_BACKEND).expect("the default backend's name is valid");
        let ctx = RequestContext::system("startup");
        let ever_existed =
            self.store.log.latest_position_of(domain::secret_backend::AGGREGATE_TYPE, DEFAULT_BACKEND).await?;
        if ever_existed.is_none() {
            let spec = SecretBackendSpec {
                backend_type: BackendType::Plaintext,
                description: "values stored in mcpd's own database".into(),
                config: None,
            };
            let command = SecretBackendCommand::CreateSecretBackend {
                name: name.clone(),
                spec,
                token_secret: TokenSecret::NotNeeded,
            };
            match self.writer.execute::<SecretBackend>(&ctx, &name, command).await {
                // Lagging or not: it is recorded, and becomes readable when the projector catches up.
                Ok(_recorded) => tracing::info!("created the default plaintext secret backend"),
                // Another mcpd started at the same moment and seeded it.
                Err(ApiError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let singleton = ResourceName::parse(default_backend::AGGREGATE_ID).expect("a valid id");
        let default_ever_set =
            self.store.log.latest_position_of(default_backend::AGGREGATE_TYPE, default_backend::AGGREGATE_ID).await?;
        if default_ever_set.is_none() {
            let _recorded = self.move_default(&ctx, name.clone()).await?;
        }
        // Start serving once the read models show the default backend, or after the wait.
        let _recorded = self.writer.await_projection(domain::secret_backend::AGGREGATE_TYPE, &name).await?;
        let _recorded = self.writer.await_projection(default_backend::AGGREGATE_TYPE, &singleton).await?;
        Ok(())
    }
}

/// Everything about a backend that decides where its token and values go; not its timeout,
/// its delete mode or its description.
fn destination(spec: &SecretBackendSpec) -> (BackendType, Option<domain::secret_backend::OpenBaoConfig>) {
    let config = spec.config.clone().map(|c| domain::secret_backend::OpenBaoConfig {
        timeout_seconds: 0,
        soft_delete: false,
        ..c
    });
    (spec.backend_type, config)
}

/// The `secretbackend` kind: its operations, as the generic resource routes call them.
pub struct SecretBackends;

impl ResourceKind for SecretBackends {
    type Spec = BackendState;

    async fn list(s: &Services, _reveal: bool, page: Page) -> Answer<Vec<Record<Self::Spec>>> {
        Ok(secret_backends::list_page(&s.store.db, &page).await?)
    }

    async fn get(s: &Services, name: &str, _reveal: bool) -> Answer<Record<Self::Spec>> {
        secret_backends::get(&s.store.db, name)
            .await?
            .ok_or_else(|| ApiError::not_found(domain::document::Kind::SecretBackend, name))
    }

    async fn create(
        s: &Services,
        ctx: &RequestContext,
        body: Value,
        dry_run: bool,
    ) -> Answer<Applied<Record<Self::Spec>>> {
        let (name, SecretBackendRequest { spec, is_default }) = parse_document::<SecretBackendInput>(body, None)?;
        s.check_directions(ctx, &name, &spec, is_default, None)?;
        s.check_tls(&spec)?;
        let token_secret = s.token_secret(&spec).await?;
        let command = SecretBackendCommand::CreateSecretBackend { name: name.clone(), spec, token_secret };
        s.run_secret_backend(ctx, &name, command, is_default, dry_run).await
    }

    async fn replace(
        s: &Services,
        ctx: &RequestContext,
        name: &str,
        body: Value,
        expected_version: Option<u64>,
        dry_run: bool,
    ) -> Answer<Applied<Record<Self::Spec>>> {
        let (name, SecretBackendRequest { spec, is_default }) = parse_document::<SecretBackendInput>(body, Some(name))?;
        let current = secret_backends::get(&s.store.db, name.as_str()).await?;
        s.check_directions(ctx, &name, &spec, is_default, current.as_ref().map(|c| &c.spec))?;
        s.check_tls(&spec)?;
        let token_secret = s.token_secret(&spec).await?;
        let command =
            SecretBackendCommand::UpdateSecretBackend { name: name.clone(), spec, token_secret, expected_version };
        s.run_secret_backend(ctx, &name, command, is_default, dry_run).await
    }

    async fn delete(
        s: &Services,
        ctx: &RequestContext,
        name: &str,
        expected_version: Option<u64>,
        dry_run: bool,
    ) -> Answer<Applied<()>> {
        let name = url_name(Kind::SecretBackend, name)?;
        let is_default = secret_backends::current_default(&s.store.db).await?.as_deref() == Some(name.as_str());
        let secrets_held = secrets::on_backend(&s.store.db, name.as_str()).await?;
        let command = SecretBackendCommand::DeleteSecretBackend {
            name: name.clone(),
            is_default,
            secrets_held,
            expected_version,
        };
        s.writer.delete::<SecretBackend>(ctx, &name, command, dry_run).await
    }
}

use domain::ResourceName;
use domain::document::Kind;
use domain::secret_backend::{
    DEFAULT_BACKEND, SecretBackend, SecretBackendCommand, SecretBackendEvent, SecretBackendInput, SecretBackendSpec,
};
use projections::read_models::{Record, secret_backends, secrets};
use serde_json::Value;

use super::{Services, parse_document, preview, url_name};
use crate::context::RequestContext;
use crate::error::ApiError;

impl Services {
    pub async fn list_secret_backends(&self) -> Result<Vec<Record<SecretBackendSpec>>, ApiError> {
        Ok(secret_backends::list(&self.store.db).await?)
    }

    pub async fn get_secret_backend(&self, name: &str) -> Result<Record<SecretBackendSpec>, ApiError> {
        secret_backends::get(&self.store.db, name)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("secretbackend {name:?} not found")))
    }

    pub async fn create_secret_backend(
        &self,
        ctx: &RequestContext,
        body: Value,
        dry_run: bool,
    ) -> Result<Record<SecretBackendSpec>, ApiError> {
        let (name, spec) = parse_document::<SecretBackendInput>(body, None)?;
        let current_default = secret_backends::current_default(&self.store.db).await?;
        let command = SecretBackendCommand::CreateSecretBackend {
            name: name.clone(),
            spec,
            current_default,
        };
        self.run_secret_backend(ctx, &name, command, dry_run).await
    }

    pub async fn replace_secret_backend(
        &self,
        ctx: &RequestContext,
        name: &str,
        body: Value,
        expected_version: Option<u64>,
        dry_run: bool,
    ) -> Result<Record<SecretBackendSpec>, ApiError> {
        let (name, spec) = parse_document::<SecretBackendInput>(body, Some(name))?;
        let current_default = secret_backends::current_default(&self.store.db).await?;
        let command = SecretBackendCommand::UpdateSecretBackend {
            name: name.clone(),
            spec,
            current_default,
            expected_version,
        };
        self.run_secret_backend(ctx, &name, command, dry_run).await
    }

    /// Executes (or, for a dry run, rehearses) `command` and answers with the resulting backend.
    async fn run_secret_backend(
        &self,
        ctx: &RequestContext,
        name: &ResourceName,
        command: SecretBackendCommand,
        dry_run: bool,
    ) -> Result<Record<SecretBackendSpec>, ApiError> {
        if !dry_run {
            self.execute(&self.store.secret_backends, ctx, name, command).await?;
            return self.get_secret_backend(name.as_str()).await;
        }
        let (events, sequence) = self.rehearse::<SecretBackend>(name, command).await?;
        let current = secret_backends::get(&self.store.db, name.as_str()).await?;
        preview(name, current, sequence, events, |_, event| match event {
            SecretBackendEvent::SecretBackendCreated { spec } | SecretBackendEvent::SecretBackendUpdated { spec } => {
                Some(spec)
            }
            SecretBackendEvent::SecretBackendDeleted {} => None,
        })
        .ok_or_else(|| ApiError::NotFound(format!("secretbackend {:?} not found", name.as_str())))
    }

    pub async fn delete_secret_backend(
        &self,
        ctx: &RequestContext,
        name: &str,
        expected_version: Option<u64>,
        dry_run: bool,
    ) -> Result<(), ApiError> {
        let name = url_name(Kind::SecretBackend, name)?;
        let secrets_held = secrets::on_backend(&self.store.db, name.as_str()).await?;
        let command = SecretBackendCommand::DeleteSecretBackend {
            name: name.clone(),
            secrets_held,
            expected_version,
        };
        if dry_run {
            return self.rehearse::<SecretBackend>(&name, command).await.map(drop);
        }
        self.execute(&self.store.secret_backends, ctx, &name, command).await
    }

    /// Creates the `default` plaintext backend on first start. Safe to race: the event store
    /// lets one creation through, and any later start finds it there.
    pub async fn seed_default_backend(&self) -> Result<(), ApiError> {
        let name = ResourceName::parse(DEFAULT_BACKEND).expect("the default backend's name is valid");
        let ever_existed = self
            .store
            .log
            .latest_position_of(domain::secret_backend::AGGREGATE_TYPE, DEFAULT_BACKEND)
            .await?;
        if ever_existed.is_some() {
            return self
                .await_projection(domain::secret_backend::AGGREGATE_TYPE, &name)
                .await;
        }
        let spec = SecretBackendSpec {
            backend_type: domain::secret_backend::BackendType::Plaintext,
            description: "values stored in mcpd's own database".into(),
            is_default: true,
            config: None,
        };
        let command = SecretBackendCommand::CreateSecretBackend {
            name: name.clone(),
            spec,
            current_default: None,
        };
        let ctx = RequestContext::system("startup");
        match self
            .execute::<SecretBackend>(&self.store.secret_backends, &ctx, &name, command)
            .await
        {
            Ok(()) => {
                tracing::info!("created the default plaintext secret backend");
                Ok(())
            }
            // Another mcpd started at the same moment and seeded it.
            Err(ApiError::Conflict(_)) => {
                self.await_projection(domain::secret_backend::AGGREGATE_TYPE, &name)
                    .await
            }
            Err(e) => Err(e),
        }
    }
}

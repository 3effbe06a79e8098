//! Application services: each turns one API call into a command (after gathering the facts the
//! aggregate needs from the read models), executes it with metadata, and waits until the read
//! models show the change so the caller reads its own write.

mod access;
pub mod guard;
mod kind;
mod llms;
pub mod rbac;
mod secret_backends;
mod secrets;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cqrs_es::Aggregate;
use domain::ResourceName;
use domain::document::{Kind, SpecInput, parse_valid};
use domain::error::Classified;
use domain::metadata;
use projections::read_models::{self, Record};
use serde::Serialize;
use serde_json::Value;

use crate::backends::{self, SecretBackendDriver};
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::store::{Cqrs, Store};

pub use access::Bootstrap;
pub use kind::{Answer, ResourceKind};
pub use llms::Llms;
pub use rbac::{RoleBindings, Roles};
pub use secret_backends::SecretBackends;
pub use secrets::SecretView;
pub use secrets::Secrets;

/// One line of a resource's history; the event's payload is not part of it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub resource_version: i64,
    pub event_type: String,
    pub recorded_at: String,
    pub actor: String,
    pub request_id: String,
    pub source: String,
}

#[derive(Clone)]
pub struct Services {
    pub store: Store,
    /// How long a write waits for the read models before answering 202 instead.
    pub projection_wait: Duration,
    /// Shared by every backend driver; each call sets its own timeout.
    http: reqwest::Client,
    /// One driver per backend, kept while the backend's resourceVersion stays (so an openbao
    /// driver keeps its cached token), rebuilt when the backend changes.
    drivers: Arc<Mutex<HashMap<String, CachedDriver>>>,
    /// One migration runs at a time in this process: the runner holds this while it runs.
    pub(crate) migration_slot: Arc<tokio::sync::Mutex<()>>,
    /// When tokens were last used, so that use is written at most once a minute.
    pub(crate) usage: access::UsageLog,
    /// Where an Llm may send its key without its author being able to read it.
    pub upstreams: Arc<guard::Upstreams>,
}

/// A driver and the backend resourceVersion it was built for.
type CachedDriver = (i64, Arc<dyn SecretBackendDriver>);

impl Services {
    pub fn new(store: Store, projection_wait: Duration) -> Self {
        Self {
            store,
            projection_wait,
            // A backend's token goes to its configured server only, never where a redirect says.
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client with the built-in roots"),
            drivers: Arc::default(),
            migration_slot: Arc::default(),
            usage: Default::default(),
            upstreams: Arc::default(),
        }
    }

    /// The driver of backend `name`.
    pub async fn driver(&self, name: &str) -> Result<Arc<dyn SecretBackendDriver>, ApiError> {
        let backend = read_models::secret_backends::get(&self.store.db, name)
            .await?
            .ok_or_else(|| ApiError::not_found(domain::document::Kind::SecretBackend, name))?;
        let mut drivers = self.drivers.lock().expect("driver cache lock");
        if let Some((version, driver)) = drivers.get(name)
            && *version == backend.resource_version
        {
            return Ok(driver.clone());
        }
        let http = match &backend.spec.spec.config {
            Some(config) => crate::backends::openbao::client_for(config, &self.http)
                .map_err(|e| ApiError::BadGateway(format!("secretbackend {name:?} cannot be used: {e}")))?,
            None => self.http.clone(),
        };
        let driver = backends::driver(&self.store.db, &http, &backend);
        drivers.insert(name.to_owned(), (backend.resource_version, driver.clone()));
        Ok(driver)
    }

    /// Executes `command` on aggregate `name`, then waits until the read models include it.
    pub(crate) async fn execute<A>(
        &self,
        cqrs: &Cqrs<A>,
        ctx: &RequestContext,
        name: &ResourceName,
        command: A::Command,
    ) -> Result<(), ApiError>
    where
        A: Aggregate,
        A::Error: Classified + Send + Sync + 'static,
    {
        self.record(cqrs, ctx, name, command).await?;
        self.await_projection(A::TYPE, name).await
    }

    /// Executes `command` without waiting for the read models: for records nobody reads back
    /// at once (a migration's clean-up and progress), where the wait is pure latency.
    pub(crate) async fn record<A>(
        &self,
        cqrs: &Cqrs<A>,
        ctx: &RequestContext,
        name: &ResourceName,
        command: A::Command,
    ) -> Result<(), ApiError>
    where
        A: Aggregate,
        A::Error: Classified + Send + Sync + 'static,
    {
        cqrs.execute_with_metadata(name.as_str(), command, ctx.metadata().into_map())
            .await
            .map_err(|e| ApiError::from_command(A::TYPE, name.as_str(), e))?;
        crate::request_scope::mark_recorded();
        self.store.projector.wake();
        Ok(())
    }

    /// One resource's events, oldest first: what happened, when, and who did it. A resource
    /// that never existed is not found; a deleted one still has its history.
    pub async fn history(&self, kind: Kind, name: &str) -> Result<Vec<HistoryEntry>, ApiError> {
        let aggregate_type = kind.info().aggregate_type;
        let events = self.store.log.aggregate_history(aggregate_type, name).await?;
        if events.is_empty() {
            return Err(ApiError::not_found(kind, name));
        }
        Ok(events
            .into_iter()
            .map(|e| {
                let field = |key: &str| e.metadata.get(key).cloned().unwrap_or_default();
                HistoryEntry {
                    resource_version: e.sequence,
                    event_type: e.event_type.clone(),
                    recorded_at: e.recorded_at.clone(),
                    actor: field(metadata::ACTOR),
                    request_id: field(metadata::REQUEST_ID),
                    source: field(metadata::SOURCE),
                }
            })
            .collect())
    }

    /// Runs `command` without recording it: the events it would produce, and the
    /// aggregate's sequence (resourceVersion) before them.
    pub(crate) async fn rehearse<A>(
        &self,
        name: &ResourceName,
        command: A::Command,
    ) -> Result<(Vec<A::Event>, u64), ApiError>
    where
        A: Aggregate<Services = ()>,
        A::Error: Classified + Send + Sync + 'static,
    {
        self.store
            .rehearse::<A>(name.as_str(), command)
            .await
            .map_err(|e| ApiError::from_command(A::TYPE, name.as_str(), e))
    }

    pub(crate) async fn await_projection(
        &self,
        aggregate_type: &'static str,
        name: &ResourceName,
    ) -> Result<(), ApiError> {
        let Some(position) = self.store.log.latest_position_of(aggregate_type, name.as_str()).await? else {
            return Ok(());
        };
        self.store
            .projector
            .wait_for(&models_of(aggregate_type), position, self.projection_wait)
            .await
            .map_err(|e| ApiError::Lagging(format!("the change to {aggregate_type} {name:?} was recorded, but {e}")))
    }
}

/// The read models that events of `aggregate_type` change.
pub(crate) fn models_of(aggregate_type: &str) -> Vec<projections::read_models::ReadModel> {
    projections::read_models::ReadModel::ALL.into_iter().filter(|m| m.handles(aggregate_type)).collect()
}

/// Parses and validates a request body as a document of `I`'s kind.
pub fn parse_document<I: SpecInput>(body: Value, url_name: Option<&str>) -> Result<(ResourceName, I::Spec), ApiError> {
    match parse_valid::<I>(body, url_name) {
        Ok(Ok(parsed)) => Ok(parsed),
        Ok(Err(errors)) => Err(ApiError::Invalid { kind: I::KIND.as_str(), errors }),
        Err(shape) => Err(ApiError::MalformedBody(shape.to_string())),
    }
}

/// A record as a dry run says it would be after `events`, starting from `current` at
/// `sequence`; `fold` applies one event's content to the spec.
fn preview<S: Clone, E>(
    name: &ResourceName,
    current: Option<Record<S>>,
    sequence: u64,
    events: Vec<E>,
    fold: impl Fn(Option<S>, E) -> Option<S>,
) -> Option<Record<S>> {
    let now = jiff::Timestamp::now().to_string();
    let mut record = current;
    for (i, event) in events.into_iter().enumerate() {
        let version = (sequence + 1 + i as u64) as i64;
        record = match fold(record.as_ref().map(|r| r.spec.clone()), event) {
            None => None,
            Some(spec) => Some(Record {
                name: name.to_string(),
                spec,
                resource_version: version,
                created_at: record.map_or_else(|| now.clone(), |r| r.created_at),
                updated_at: now.clone(),
            }),
        };
    }
    record
}

/// A name from a URL: anything that is not a valid name cannot exist.
fn url_name(kind: Kind, raw: &str) -> Result<ResourceName, ApiError> {
    ResourceName::parse(raw).map_err(|_| ApiError::not_found(kind, raw))
}

//! Application services: each turns one API call into a command (after gathering the facts the
//! aggregate needs from the read models), executes it with metadata, and waits until the read
//! models show the change so the caller reads its own write.

mod access;
pub mod access_cache;
mod drivers;
pub mod guard;
mod kind;
mod llms;
pub mod rbac;
mod reads;
mod secret_backends;
mod secrets;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use domain::ResourceName;
use domain::document::{Kind, SpecInput, parse_valid};
use projections::read_models::Record;
use serde_json::Value;

use crate::error::ApiError;
use crate::store::Store;

pub use access::{Bootstrap, Tokens, Users};
pub use drivers::Drivers;
pub use kind::{Answer, Applied, ResourceKind};
pub use llms::Llms;
pub use rbac::{RoleBindings, Roles};
pub use secret_backends::SecretBackends;
pub use secrets::SecretView;
pub use secrets::Secrets;
pub use writer::{Recorded, Writer};

/// One line of a resource's history; the event's payload is not part of it.
pub use wire::HistoryEvent as HistoryEntry;

/// What the API's handlers share: the store, and the capabilities built on it. A handle:
/// cloning it (axum does, for every request's state) is one reference count, not one per part.
#[derive(Clone)]
pub struct Services(Arc<Parts>);

impl std::ops::Deref for Services {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

/// What [`Services`] holds.
pub struct Parts {
    pub store: Store,
    /// The write path: commands executed with metadata, waited for in the read models.
    pub writer: Writer,
    /// The secret backends' drivers.
    pub drivers: Drivers,
    /// One migration runs at a time in this process: the runner holds this while it runs.
    pub migration_slot: Arc<tokio::sync::Mutex<()>>,
    /// When tokens were last used, so that use is written at most once a minute.
    pub usage: access::UsageLog,
    /// Tokens, users and permissions in memory, kept current from the log.
    pub access: access_cache::AccessCache,
    /// Where an Llm may send its key without its author being able to read it.
    pub upstreams: Arc<guard::Upstreams>,
    /// The inference proxy's client, usage counters and the Llms' health.
    pub inference: crate::observed::Inference,
    /// Rate limits, the request timeout, the stream cap, the idempotency-key lifetime.
    pub limits: crate::limits::Limiter,
    /// Set when mcpd begins shutting down: open streams (watches) end with a final line.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// Where refused requests are recorded.
    pub denials: crate::denials::Recorder,
}

impl Services {
    /// Call [`Services::follow_access_changes`] before serving.
    pub fn new(store: Store, projection_wait: Duration, upstreams: guard::Upstreams) -> Self {
        Self::new_tuned(store, projection_wait, upstreams, crate::limits::Tuning::default())
    }

    /// [`Services::new`] with the limits `tuning` sets.
    pub fn new_tuned(
        store: Store,
        projection_wait: Duration,
        upstreams: guard::Upstreams,
        tuning: crate::limits::Tuning,
    ) -> Self {
        let access = access_cache::AccessCache::default();
        let denials = crate::denials::Recorder::start(store.db.clone());
        Services(Arc::new(Parts {
            writer: Writer { store: store.clone(), projection_wait, access: access.clone() },
            access,
            drivers: Drivers::new(store.db.clone()),
            store,
            migration_slot: Arc::default(),
            usage: Default::default(),
            upstreams: Arc::new(upstreams),
            inference: Default::default(),
            limits: crate::limits::Limiter::new(tuning),
            shutdown: tokio::sync::watch::Sender::new(false),
            denials,
        }))
    }
}

impl Services {
    /// In the background: forgets idle tokens' rate state every minute and expired
    /// idempotency keys every hour.
    pub fn spawn_housekeeping(&self) {
        let s = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            for minute in 0u64.. {
                tick.tick().await;
                s.limits.forget_idle();
                if minute % 60 == 0 {
                    let lifetime =
                        jiff::SignedDuration::from_secs(s.limits.tuning.idempotency_lifetime.as_secs() as i64);
                    let before = projections::idempotency::stamp(jiff::Timestamp::now() - lifetime);
                    match projections::idempotency::expire(&s.store.db, &before).await {
                        Ok(gone) if gone > 0 => tracing::info!(gone, "forgot expired idempotency keys"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "forgetting expired idempotency keys failed"),
                    }
                }
            }
        });
    }

    /// Sets where the access cache follows the log from (before the first request, so nothing
    /// it holds predates it), then follows it in the background.
    pub async fn follow_access_changes(&self) -> Result<(), ApiError> {
        self.access.follow(&self.store).await?;
        self.access.spawn_follower(self.store.clone());
        self.inference.usage.spawn_flusher(self.store.db.clone());
        Ok(())
    }
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

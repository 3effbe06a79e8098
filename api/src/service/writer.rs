//! The write path every kind shares: a command executed on its aggregate with the request's
//! metadata (an optimistic-concurrency clash is a 409), then waited for until the read models
//! show it, so the caller reads its own write; rehearsals for dry runs; a resource's history.

use std::time::Duration;

use cqrs_es::Aggregate;
use domain::ResourceName;
use domain::document::Kind;
use domain::error::Classified;
use domain::metadata;

use super::{HistoryEntry, models_of};
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::store::{Cqrs, Store};

#[derive(Clone)]
pub struct Writer {
    pub(super) store: Store,
    /// How long a write waits for the read models before answering 202 instead.
    pub projection_wait: Duration,
}

impl Writer {
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

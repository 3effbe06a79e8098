//! The write path every kind shares: a command executed on its aggregate with the request's
//! metadata (an optimistic-concurrency clash is a 409), then waited for until the read models
//! show it, so the caller reads its own write; rehearsals for dry runs; a resource's history.

use std::future::Future;
use std::time::Duration;

use cqrs_es::Aggregate;
use domain::ResourceName;
use domain::document::Kind;
use domain::error::Classified;
use domain::metadata;

use projections::append::Appended;

use super::HistoryEntry;
use super::kind::Applied;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::store::{Cqrs, Store};
use projections::read_models::ReadModel;

/// What a recorded write came to.
#[must_use = "a write the read models do not show yet is answered 202, not read back"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The read models show it: reading it back sees it.
    Visible,
    /// Recorded, but the read models did not show it within `projection_wait`; it becomes
    /// readable once they catch up. A success (202), never an error: a client that retried
    /// would repeat a change that already happened.
    Lagging(String),
}

impl Recorded {
    /// Both writes' outcome: lagging when either lags.
    pub fn and(self, other: Recorded) -> Recorded {
        match self {
            Recorded::Visible => other,
            lagging => lagging,
        }
    }

    /// The write's outcome: what `read` finds (the resource as it now is) when the read models
    /// show the change; accepted otherwise (`read` is not run then).
    pub async fn then<T>(self, read: impl Future<Output = Result<T, ApiError>>) -> Result<Applied<T>, ApiError> {
        match self {
            Recorded::Visible => Ok(Applied::Done(read.await?)),
            Recorded::Lagging(message) => Ok(Applied::Accepted(message)),
        }
    }
}

#[derive(Clone)]
pub struct Writer {
    pub(super) store: Store,
    /// How long a write waits for the read models before answering 202 instead.
    pub projection_wait: Duration,
    /// Told of every write, so that a change to access takes effect on the next request here.
    pub(super) access: super::access_cache::AccessCache,
}

impl Writer {
    /// Executes `command` on aggregate `name`, then waits until the read models include it.
    pub(crate) async fn execute<A>(
        &self,
        cqrs: &Cqrs<A>,
        ctx: &RequestContext,
        name: &ResourceName,
        command: A::Command,
    ) -> Result<Recorded, ApiError>
    where
        A: Aggregate,
        A::Error: Classified + Send + Sync + 'static,
    {
        match self.record(cqrs, ctx, name, command).await? {
            // The common case: the write's read models took it in its own transaction.
            Some(appended) if ReadModel::changed_by(A::TYPE).iter().all(|m| appended.inlined.contains(m)) => {
                Ok(Recorded::Visible)
            }
            Some(appended) => {
                let recorded = self.await_position(A::TYPE, name, appended.last).await?;
                if recorded == Recorded::Visible {
                    // The cache was told at the append, before the read models showed it: what
                    // a request read from them meanwhile (a binding not there yet) may have
                    // been kept. Told again now, the change takes effect on the next request
                    // here, as it does when the write was inlined.
                    self.access.shown(A::TYPE, name.as_str(), appended.last);
                }
                Ok(recorded)
            }
            // No event (a command that changed nothing): wait for the latest one there is.
            None => self.await_projection(A::TYPE, name).await,
        }
    }

    /// Executes `command` without waiting for the read models: for records nobody reads back
    /// at once (a migration's clean-up and progress), where the wait is pure latency. What its
    /// append came to; `None` when the command produced no event.
    pub(crate) async fn record<A>(
        &self,
        cqrs: &Cqrs<A>,
        ctx: &RequestContext,
        name: &ResourceName,
        command: A::Command,
    ) -> Result<Option<Appended>, ApiError>
    where
        A: Aggregate,
        A::Error: Classified + Send + Sync + 'static,
    {
        let (executed, appended) = crate::store::event_repository::capture(cqrs.execute_with_metadata(
            name.as_str(),
            command,
            ctx.metadata().into_map(),
        ))
        .await;
        executed.map_err(|e| ApiError::from_command(A::TYPE, name.as_str(), e))?;
        if let Some(appended) = &appended {
            crate::request_scope::mark_recorded();
            if ReadModel::changed_by(A::TYPE).iter().all(|m| appended.inlined.contains(m)) {
                self.access.invalidate(A::TYPE, name.as_str());
            } else {
                // A revocation holds from now on, not from when the read models show it.
                self.access.unshown(A::TYPE, &appended.event_types, name.as_str(), appended.last);
            }
            self.store.settle(appended, &ReadModel::changed_by(A::TYPE));
        }
        Ok(appended)
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

    /// A delete: rehearsed for a dry run (every rule checked, nothing recorded), else recorded
    /// and waited for.
    pub(crate) async fn delete<A>(
        &self,
        cqrs: &Cqrs<A>,
        ctx: &RequestContext,
        name: &ResourceName,
        command: A::Command,
        dry_run: bool,
    ) -> Result<Applied<()>, ApiError>
    where
        A: Aggregate<Services = ()>,
        A::Error: Classified + Send + Sync + 'static,
    {
        if dry_run {
            return self.rehearse::<A>(name, command).await.map(|_| Applied::Done(()));
        }
        self.execute(cqrs, ctx, name, command).await?.then(async { Ok(()) }).await
    }

    /// Waits (bounded) until the read models show the latest event of aggregate `name`.
    pub async fn await_projection(
        &self,
        aggregate_type: &'static str,
        name: &ResourceName,
    ) -> Result<Recorded, ApiError> {
        let Some(position) = self.store.log.latest_position_of(aggregate_type, name.as_str()).await? else {
            return Ok(Recorded::Visible);
        };
        self.await_position(aggregate_type, name, position).await
    }

    /// Waits (bounded) until the read models of `aggregate_type` show the event at `position`.
    async fn await_position(
        &self,
        aggregate_type: &'static str,
        name: &ResourceName,
        position: projections::Position,
    ) -> Result<Recorded, ApiError> {
        let waited =
            self.store.projector.wait_for(&ReadModel::changed_by(aggregate_type), position, self.projection_wait).await;
        Ok(match waited {
            Ok(()) => Recorded::Visible,
            Err(e) => Recorded::Lagging(format!("the change to {aggregate_type} {name:?} was recorded, but {e}")),
        })
    }
}

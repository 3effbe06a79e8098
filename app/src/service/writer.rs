//! The write path every kind shares: a command executed on its aggregate with the request's
//! metadata (an optimistic-concurrency clash is a 409), then waited for until the read models
//! show it, so the caller reads its own write; rehearsals for dry runs; a resource's history.

use std::future::Future;
use std::time::Duration;

use cqrs_es::Aggregate;
use domain::Creates;
use domain::ResourceName;
use domain::document::Kind;
use domain::error::Classified;
use domain::metadata;

use projections::append::Appended;

use super::HistoryEntry;
use super::kind::Applied;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::store::Store;
use crate::store::write::{Decided, WriteError, Written};
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
    /// Records `command` on aggregate `name`, then waits until the read models include it.
    pub(crate) async fn execute<A>(
        &self,
        ctx: &RequestContext,
        name: &ResourceName,
        command: A::Command,
    ) -> Result<Recorded, ApiError>
    where
        A: Aggregate<Services = ()>,
        A::Command: Creates + Clone,
        A::Error: Classified + Send + Sync + 'static,
    {
        Ok(self.execute_keeping::<A>(ctx, name, command).await?.0)
    }

    /// [`Writer::execute`], and what the write came to: the aggregate as it left it and where
    /// its last event landed, for an answer built without reading the read models back.
    pub(crate) async fn execute_keeping<A>(
        &self,
        ctx: &RequestContext,
        name: &ResourceName,
        command: A::Command,
    ) -> Result<(Recorded, Written<A>), ApiError>
    where
        A: Aggregate<Services = ()>,
        A::Command: Creates + Clone,
        A::Error: Classified + Send + Sync + 'static,
    {
        let written =
            self.write::<A>(ctx, name, command).await.map_err(|e| ApiError::from_write(A::TYPE, name.as_str(), e))?;
        let recorded = match &written.appended {
            Some(appended) => self.shown::<A>(&[name.as_str()], appended).await,
            // No event (a command that changed nothing): wait for the latest one there is.
            None => self.await_projection(A::TYPE, name).await?,
        };
        Ok((recorded, written))
    }

    /// Records `command` without waiting for the read models: for records nobody reads back
    /// at once (a migration's clean-up and progress), where the wait is pure latency. What its
    /// append came to; `None` when the command produced no event.
    pub(crate) async fn record<A>(
        &self,
        ctx: &RequestContext,
        name: &ResourceName,
        command: A::Command,
    ) -> Result<Option<Appended>, ApiError>
    where
        A: Aggregate<Services = ()>,
        A::Command: Creates + Clone,
        A::Error: Classified + Send + Sync + 'static,
    {
        let written =
            self.write::<A>(ctx, name, command).await.map_err(|e| ApiError::from_write(A::TYPE, name.as_str(), e))?;
        Ok(written.appended)
    }

    /// Records `command`, telling a clash apart from a refusal (for writers that retry one).
    pub(crate) async fn write<A>(
        &self,
        ctx: &RequestContext,
        name: &ResourceName,
        command: A::Command,
    ) -> Result<Written<A>, WriteError<A::Error>>
    where
        A: Aggregate<Services = ()>,
        A::Command: Creates + Clone,
    {
        let written = self.store.write::<A>(name.as_str(), command, &ctx.metadata().into_map()).await?;
        if let Some(appended) = &written.appended {
            self.appended(A::TYPE, &[name.as_str()], appended);
        }
        Ok(written)
    }

    /// Appends events decided on several aggregates of type `A` in one commit (a migration's
    /// batch), then waits until the read models show them.
    pub(crate) async fn execute_batch<A: Aggregate>(
        &self,
        ctx: &RequestContext,
        decided: &[Decided<'_, A>],
    ) -> Result<Recorded, WriteError<std::convert::Infallible>> {
        let names: Vec<&str> = decided.iter().map(|d| d.id).collect();
        match self.record_batch(ctx, decided).await? {
            Some(appended) => Ok(self.shown::<A>(&names, &appended).await),
            None => Ok(Recorded::Visible),
        }
    }

    /// Appends events decided on several aggregates of type `A` in one commit, without waiting.
    pub(crate) async fn record_batch<A: Aggregate>(
        &self,
        ctx: &RequestContext,
        decided: &[Decided<'_, A>],
    ) -> Result<Option<Appended>, WriteError<std::convert::Infallible>> {
        let appended = self.store.append(decided, &ctx.metadata().into_map()).await?;
        if let Some(appended) = &appended {
            let names: Vec<&str> = decided.iter().map(|d| d.id).collect();
            self.appended(A::TYPE, &names, appended);
        }
        Ok(appended)
    }

    /// What every recorded write tells this replica: the request changed something, and the
    /// access cache drops (or, until the read models show it, holds back) what it changed.
    fn appended(&self, aggregate_type: &'static str, names: &[&str], appended: &Appended) {
        crate::request_scope::mark_recorded();
        let inlined = ReadModel::changed_by(aggregate_type).iter().all(|m| appended.inlined.contains(m));
        for name in names {
            if inlined {
                self.access.invalidate(aggregate_type, name);
            } else {
                // A revocation holds from now on, not from when the read models show it.
                self.access.unshown(aggregate_type, &appended.event_types, name, appended.last);
            }
        }
    }

    /// Waits until the read models show `appended` (at once when they took it inline).
    async fn shown<A: Aggregate>(&self, names: &[&str], appended: &Appended) -> Recorded {
        if ReadModel::changed_by(A::TYPE).iter().all(|m| appended.inlined.contains(m)) {
            return Recorded::Visible;
        }
        let what = match names {
            [one] => format!("the change to {} {one:?}", A::TYPE),
            many => format!("the changes to {} {}s", many.len(), A::TYPE),
        };
        let recorded = self.await_position(A::TYPE, &what, appended.last).await;
        if recorded == Recorded::Visible {
            // The cache was told at the append, before the read models showed it: what a
            // request read from them meanwhile (a binding not there yet) may have been kept.
            // Told again now, the change takes effect on the next request here, as it does
            // when the write was inlined.
            for name in names {
                self.access.shown(A::TYPE, name, appended.last);
            }
        }
        recorded
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
            .map_err(|e| ApiError::from_write(A::TYPE, name.as_str(), e))
    }

    /// A delete: rehearsed for a dry run (every rule checked, nothing recorded), else recorded
    /// and waited for.
    pub(crate) async fn delete<A>(
        &self,
        ctx: &RequestContext,
        name: &ResourceName,
        command: A::Command,
        dry_run: bool,
    ) -> Result<Applied<()>, ApiError>
    where
        A: Aggregate<Services = ()>,
        A::Command: Creates + Clone,
        A::Error: Classified + Send + Sync + 'static,
    {
        if dry_run {
            return self.rehearse::<A>(name, command).await.map(|_| Applied::Done(()));
        }
        self.execute::<A>(ctx, name, command).await?.then(async { Ok(()) }).await
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
        Ok(self.await_position(aggregate_type, &format!("the change to {aggregate_type} {name:?}"), position).await)
    }

    /// Waits (bounded) until the read models of `aggregate_type` show the event at `position`.
    async fn await_position(
        &self,
        aggregate_type: &'static str,
        what: &str,
        position: projections::Position,
    ) -> Recorded {
        let waited =
            self.store.projector.wait_for(&ReadModel::changed_by(aggregate_type), position, self.projection_wait).await;
        match waited {
            Ok(()) => Recorded::Visible,
            Err(e) => Recorded::Lagging(format!("{what} was recorded, but {e}")),
        }
    }
}

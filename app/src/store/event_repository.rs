//! One event repository type over both stores, so everything above it (the cqrs-es framework,
//! the services) is written once. The store is picked by the database URL at start.
//!
//! Events are read through sqlite-es and postgres-es, and appended through
//! [`projections::append`], which applies them to the read models in the same transaction when
//! it can (one commit per write). What an append came to is handed to the code that asked for
//! it through [`capture`], since the cqrs-es framework between them returns nothing.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;

use cqrs_es::Aggregate;
use cqrs_es::persist::{PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot};
use postgres_es::PostgresEventRepository;
use projections::append::{AppendError, Appended, NewEvent};
use projections::{Database, ProjectorHandle};
use serde_json::Value;
use sqlite_es::SqliteEventRepository;

pub enum Reader {
    Sqlite(SqliteEventRepository),
    Postgres(PostgresEventRepository),
}

pub struct EventRepository {
    pub(crate) reader: Reader,
    pub(crate) db: Database,
    /// Told of what each append did; asked whether a write may apply its read models inline
    /// (see `append`).
    pub(crate) projector: ProjectorHandle,
}

tokio::task_local! {
    static APPENDED: RefCell<Option<Appended>>;
}

/// Runs `write`; its output, and what the last append inside it came to.
pub async fn capture<F: Future>(write: F) -> (F::Output, Option<Appended>) {
    APPENDED
        .scope(RefCell::new(None), async {
            let output = write.await;
            (output, APPENDED.with(RefCell::take))
        })
        .await
}

impl EventRepository {
    /// Appends `events` (of any aggregates) in one transaction, all or nothing.
    pub async fn append(&self, events: &[SerializedEvent]) -> Result<Appended, PersistenceError> {
        // From here the request is not cut short by its timeout: the commit may land.
        crate::request_scope::mark_changing();
        let events: Vec<NewEvent> = events.iter().map(new_event).collect();
        // Inline when this write is alone; with others in flight, or waiting for the projector,
        // it joins them and the projector applies them all in one transaction (a group commit).
        // Concurrent inline writers meet older transactions (PostgreSQL) and contend with the
        // projector for the checkpoint rows, each paying a commit of its own: measured at 16
        // clients, create p99 41 ms with both at once, 16 ms this way (docs/performance.md).
        // A read model stopped at an event it cannot apply would fail every write's catch-up.
        let (_appending, alone) = self.projector.appending();
        let inline = if alone && !self.projector.has_waiters() { self.projector.healthy_models() } else { Vec::new() };
        let appended = projections::append::append(&self.db, &events, &inline).await.map_err(|e| match e {
            AppendError::Conflict { .. } | AppendError::KeyClaimed => PersistenceError::OptimisticLockError,
            AppendError::Database(e) if crate::outage::unreachable(&e) => {
                PersistenceError::ConnectionError(Box::new(e))
            }
            AppendError::Database(e) => PersistenceError::UnknownError(Box::new(e)),
            e @ AppendError::OutcomeUnknown(_) => PersistenceError::UnknownError(Box::new(e)),
        })?;
        let _ = APPENDED.try_with(|cell| *cell.borrow_mut() = Some(appended.clone()));
        for event in &events {
            metrics::counter!("mcpd_events_appended_total", "kind" => event.aggregate_type.clone(), "type" => event.event_type.clone())
                .increment(1);
        }
        Ok(appended)
    }
}

fn new_event(event: &SerializedEvent) -> NewEvent {
    let metadata = match &event.metadata {
        Value::Object(map) => {
            map.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect()
        }
        _ => HashMap::new(),
    };
    NewEvent {
        aggregate_type: event.aggregate_type.clone(),
        aggregate_id: event.aggregate_id.clone(),
        sequence: event.sequence as i64,
        event_type: event.event_type.clone(),
        event_version: event.event_version.clone(),
        payload: event.payload.clone(),
        metadata,
    }
}

impl PersistedEventRepository for EventRepository {
    async fn get_events<A: Aggregate>(&self, aggregate_id: &str) -> Result<Vec<SerializedEvent>, PersistenceError> {
        match &self.reader {
            Reader::Sqlite(r) => r.get_events::<A>(aggregate_id).await,
            Reader::Postgres(r) => r.get_events::<A>(aggregate_id).await,
        }
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        match &self.reader {
            Reader::Sqlite(r) => r.get_last_events::<A>(aggregate_id, last_sequence).await,
            Reader::Postgres(r) => r.get_last_events::<A>(aggregate_id, last_sequence).await,
        }
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        match &self.reader {
            Reader::Sqlite(r) => r.get_snapshot::<A>(aggregate_id).await,
            Reader::Postgres(r) => r.get_snapshot::<A>(aggregate_id).await,
        }
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        // Snapshots are kept by `crate::store::snapshots`, never through this call.
        debug_assert!(snapshot_update.is_none());
        self.append(events).await.map(drop)
    }

    async fn stream_events<A: Aggregate>(&self, aggregate_id: &str) -> Result<ReplayStream, PersistenceError> {
        match &self.reader {
            Reader::Sqlite(r) => r.stream_events::<A>(aggregate_id).await,
            Reader::Postgres(r) => r.stream_events::<A>(aggregate_id).await,
        }
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        match &self.reader {
            Reader::Sqlite(r) => r.stream_all_events::<A>().await,
            Reader::Postgres(r) => r.stream_all_events::<A>().await,
        }
    }
}

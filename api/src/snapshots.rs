//! Aggregate snapshots: every [`SNAPSHOT_EVERY`] events an aggregate's state is stored, so
//! loading it costs the snapshot and the events after it however long its history is.
//!
//! cqrs-es 0.5 has a snapshot store, but it cannot be used here. It applies a command's events
//! to the aggregate a second time when it takes a snapshot, because the event sink has already
//! applied them. postgres-es commits the events before it checks the snapshot's optimistic
//! lock, so a write that was recorded can come back as an error. And after a snapshot that
//! cannot be read, it inserts a second row. This store wraps the plain event store instead:
//! - loading reads the snapshot, then only the events after it, with the same upcasters;
//! - committing writes the events exactly as before and, when they cross a multiple of
//!   `SNAPSHOT_EVERY` (or the load replayed that many, as for a history older than snapshots
//!   or one whose snapshot was unusable), stores the aggregate's state as it now is. Writing the snapshot is best
//!   effort and happens after the commit, so a snapshot that was not written only costs a
//!   longer load.
//!
//! Snapshots are a cache of the log. Rows written by another mcpd version (`format`) and rows
//! that do not deserialize are ignored, and the events are replayed. Rebuild and verify never
//! read them.

use std::collections::HashMap;

use cqrs_es::persist::{EventStoreAggregateContext, EventUpcaster, PersistedEventRepository, PersistedEventStore};
use cqrs_es::{Aggregate, AggregateError, EventEnvelope, EventStore};
use projections::Database;
use sqlx::Row;

use crate::event_repository::EventRepository;

/// How often an aggregate's state is stored beside its events.
pub const SNAPSHOT_EVERY: usize = 50;

/// Snapshots written by another version are ignored: an aggregate's fields may mean something
/// else there.
const FORMAT: &str = env!("CARGO_PKG_VERSION");

/// The event store every aggregate is loaded from and committed through.
pub struct SnapshotStore<A: Aggregate> {
    events: PersistedEventStore<EventRepository, A>,
    repository: EventRepository,
    db: Database,
    upcasters: Vec<Box<dyn EventUpcaster>>,
}

impl<A: Aggregate> SnapshotStore<A> {
    pub fn new(events: PersistedEventStore<EventRepository, A>, repository: EventRepository, db: Database) -> Self {
        Self { events, repository, db, upcasters: domain::upcast::upcasters() }
    }

    /// The stored state of `id` and the sequence it reached, if it has a usable snapshot.
    async fn snapshot(&self, id: &str) -> Option<(A, usize)> {
        let row = sqlx::query(
            "SELECT last_sequence, format, payload FROM aggregate_snapshots WHERE aggregate_type = $1 AND aggregate_id = $2",
        )
        .bind(A::TYPE)
        .bind(id)
        .fetch_optional(&self.db.pool)
        .await;
        let row = match row {
            Ok(row) => row?,
            Err(e) => {
                tracing::warn!(aggregate = A::TYPE, error = %e, "reading a snapshot failed; replaying the events");
                return None;
            }
        };
        let (sequence, format, payload): (i64, String, String) =
            (row.try_get(0).ok()?, row.try_get(1).ok()?, row.try_get(2).ok()?);
        if format != FORMAT {
            return None;
        }
        match serde_json::from_str(&payload) {
            Ok(aggregate) => Some((aggregate, usize::try_from(sequence).ok()?)),
            Err(e) => {
                tracing::warn!(aggregate = A::TYPE, error = %e, "a snapshot does not read; replaying the events");
                None
            }
        }
    }

    /// Stores `payload` as the state of `id` at `sequence`, unless a later one is stored.
    async fn store(&self, id: &str, sequence: usize, payload: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO aggregate_snapshots (aggregate_type, aggregate_id, last_sequence, format, payload) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET \
             last_sequence = excluded.last_sequence, format = excluded.format, payload = excluded.payload \
             WHERE excluded.last_sequence > aggregate_snapshots.last_sequence OR aggregate_snapshots.format <> excluded.format",
        )
        .bind(A::TYPE)
        .bind(id)
        .bind(sequence as i64)
        .bind(FORMAT)
        .bind(payload)
        .execute(&self.db.pool)
        .await
        .map(drop)
    }
}

impl<A: Aggregate> EventStore<A> for SnapshotStore<A> {
    type AC = EventStoreAggregateContext<A>;

    async fn load_events(&self, id: &str) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        self.events.load_events(id).await
    }

    async fn load_aggregate(&self, id: &str) -> Result<Self::AC, AggregateError<A::Error>> {
        // `current_snapshot` carries how many events the load replayed: a commit after a long
        // replay stores a snapshot whatever its sequence (a history older than snapshots).
        let Some((mut aggregate, mut sequence)) = self.snapshot(id).await else {
            let mut context = self.events.load_aggregate(id).await?;
            context.current_snapshot = Some(context.current_sequence);
            return Ok(context);
        };
        let events = self.repository.get_last_events::<A>(id, sequence).await?;
        let replayed = events.len();
        for event in events {
            let event = self.upcasters.iter().fold(event, |event, upcaster| {
                if upcaster.can_upcast(&event.event_type, &event.event_version) {
                    upcaster.upcast(event)
                } else {
                    event
                }
            });
            sequence = event.sequence;
            aggregate.apply(serde_json::from_value(event.payload)?);
        }
        Ok(EventStoreAggregateContext {
            aggregate_id: id.to_owned(),
            aggregate,
            current_sequence: sequence,
            current_snapshot: Some(replayed),
        })
    }

    async fn commit(
        &self,
        events: Vec<A::Event>,
        context: Self::AC,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let (before, after) = (context.current_sequence, context.current_sequence + events.len());
        // The command's events are already applied to the context's aggregate (the event sink
        // applies them as they are written): it is the state at `after`.
        let replayed = context.current_snapshot.unwrap_or_default();
        let due =
            !events.is_empty() && (before / SNAPSHOT_EVERY != after / SNAPSHOT_EVERY || replayed >= SNAPSHOT_EVERY);
        let snapshot = if due { serde_json::to_string(&context.aggregate).ok() } else { None };
        let id = context.aggregate_id.clone();
        let committed = self.events.commit(events, context, metadata).await?;
        if let Some(payload) = snapshot
            && let Err(e) = self.store(&id, after, &payload).await
        {
            tracing::warn!(aggregate = A::TYPE, error = %e, "storing a snapshot failed; loads replay more events");
        }
        Ok(committed)
    }
}

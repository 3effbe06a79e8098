//! Aggregate snapshots: every [`SNAPSHOT_EVERY`] events an aggregate's state is stored, so
//! loading it costs the snapshot and the events after it however long its history is.
//!
//! cqrs-es 0.5 has a snapshot store, but it cannot be used here. It applies a command's events
//! to the aggregate a second time when it takes a snapshot, because the event sink has already
//! applied them. postgres-es commits the events before it checks the snapshot's optimistic
//! lock, so a write that was recorded can come back as an error. And after a snapshot that
//! cannot be read, it inserts a second row. This store wraps the plain event store instead:
//! - loading reads the snapshot and only the events after it (or, without one, all of them) in
//!   one query, with the same upcasters;
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

use cqrs_es::persist::{EventStoreAggregateContext, EventUpcaster, PersistedEventStore, SerializedEvent};
use cqrs_es::{Aggregate, AggregateError, EventEnvelope, EventStore};
use projections::{Database, Dialect};
use sqlx::Row;

use crate::store::event_repository::EventRepository;

/// How often an aggregate's state is stored beside its events.
pub const SNAPSHOT_EVERY: usize = 50;

/// Snapshots written by another version are ignored: an aggregate's fields may mean something
/// else there.
const FORMAT: &str = env!("CARGO_PKG_VERSION");

/// The event store every aggregate is loaded from and committed through.
pub struct SnapshotStore<A: Aggregate> {
    events: PersistedEventStore<EventRepository, A>,
    db: Database,
    upcasters: Vec<Box<dyn EventUpcaster>>,
}

impl<A: Aggregate> SnapshotStore<A> {
    pub fn new(events: PersistedEventStore<EventRepository, A>, db: Database) -> Self {
        Self { events, db, upcasters: domain::upcast::upcasters() }
    }

    /// The usable snapshot of `id` (its state, as stored, and the sequence it reached) and the
    /// events after it, or all of its events when it has none: one query.
    async fn read(&self, id: &str) -> Result<(Option<(String, usize)>, Vec<SerializedEvent>), sqlx::Error> {
        let events = "SELECT CAST(1 AS bigint), sequence, event_type, event_version, {payload} FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > COALESCE((SELECT last_sequence \
               FROM aggregate_snapshots WHERE aggregate_type = $1 AND aggregate_id = $2 AND format = $3), 0)";
        let events = match self.db.dialect {
            Dialect::Sqlite => events.replace("{payload}", "payload"),
            // Ordered as the primary key is: PostgreSQL's generic plan for this prepared
            // statement otherwise picks `events_kind_name` and filters every event of the
            // aggregate by sequence, which is what the snapshot exists to avoid.
            Dialect::Postgres => {
                format!(
                    "({} ORDER BY aggregate_type, aggregate_id, sequence)",
                    events.replace("{payload}", "payload::text")
                )
            }
        };
        let rows = sqlx::query(&format!(
            "SELECT CAST(0 AS bigint) AS part, last_sequence AS sequence, '' AS event_type, '' AS event_version, \
               payload FROM aggregate_snapshots WHERE aggregate_type = $1 AND aggregate_id = $2 AND format = $3 \
             UNION ALL {events} ORDER BY part, sequence"
        ))
        .bind(A::TYPE)
        .bind(id)
        .bind(FORMAT)
        .fetch_all(&self.db.pool)
        .await?;
        let mut snapshot = None;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            let (part, sequence, payload): (i64, i64, String) = (row.try_get(0)?, row.try_get(1)?, row.try_get(4)?);
            let sequence = usize::try_from(sequence).unwrap_or_default();
            if part == 0 {
                snapshot = Some((payload, sequence));
                continue;
            }
            let payload = serde_json::from_str(&payload)
                .map_err(|e| sqlx::Error::ColumnDecode { index: "payload".into(), source: Box::new(e) })?;
            let event = SerializedEvent::new(
                id.to_owned(),
                sequence,
                A::TYPE.to_owned(),
                row.try_get(2)?,
                row.try_get(3)?,
                payload,
                serde_json::Value::Null,
            );
            events.push(self.upcasters.iter().fold(event, |event, upcaster| {
                if upcaster.can_upcast(&event.event_type, &event.event_version) {
                    upcaster.upcast(event)
                } else {
                    event
                }
            }));
        }
        Ok((snapshot, events))
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
        let (snapshot, events) = self.read(id).await.map_err(|e| {
            if crate::outage::unreachable(&e) {
                AggregateError::DatabaseConnectionError(Box::new(e))
            } else {
                AggregateError::UnexpectedError(Box::new(e))
            }
        })?;
        let (mut aggregate, mut sequence) = match snapshot {
            None => (A::default(), 0),
            Some((payload, sequence)) => match serde_json::from_str::<A>(&payload) {
                Ok(aggregate) => (aggregate, sequence),
                Err(e) => {
                    tracing::warn!(aggregate = A::TYPE, error = %e, "a snapshot does not read; replaying the events");
                    let mut context = self.events.load_aggregate(id).await?;
                    context.current_snapshot = Some(context.current_sequence);
                    return Ok(context);
                }
            },
        };
        let replayed = events.len();
        for event in events {
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

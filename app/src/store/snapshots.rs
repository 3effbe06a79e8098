//! Aggregate snapshots: every [`SNAPSHOT_EVERY`] events an aggregate's state is stored, so
//! loading it costs the snapshot and the events after it however long its history is.
//!
//! cqrs-es 0.5 has a snapshot store, but it cannot be used here. It applies a command's events
//! to the aggregate a second time when it takes a snapshot, because the event sink has already
//! applied them. postgres-es commits the events before it checks the snapshot's optimistic
//! lock, so a write that was recorded can come back as an error. And after a snapshot that
//! cannot be read, it inserts a second row. So the write path (`super::write`) keeps them:
//! - loading reads the snapshot and only the events after it (or, without one, all of them) in
//!   one query, upcast as every reader of the log upcasts;
//! - after a commit whose events cross a multiple of `SNAPSHOT_EVERY` (or whose load replayed
//!   that many, as for a history older than snapshots or one whose snapshot was unusable), the
//!   aggregate's state as it now is is stored. Writing the snapshot is best effort and happens
//!   after the commit, so a snapshot that was not written only costs a longer load.
//!
//! Snapshots are a cache of the log. Rows written by another mcpd version (`format`) and rows
//! that do not deserialize are ignored, and the events are replayed. Rebuild and verify never
//! read them.

use projections::{Database, Dialect};
use serde_json::Value;
use sqlx::Row;

/// How often an aggregate's state is stored beside its events.
pub const SNAPSHOT_EVERY: u64 = 50;

/// Snapshots written by another version are ignored: an aggregate's fields may mean something
/// else there.
const FORMAT: &str = env!("CARGO_PKG_VERSION");

/// One stored event of a stream being loaded, in the current shape.
pub(super) struct Replayed {
    pub sequence: u64,
    pub payload: Value,
}

/// What a load reads: the usable snapshot (its state as stored, and the sequence it reached)
/// and the events after it.
pub(super) struct Read {
    pub snapshot: Option<(String, u64)>,
    pub events: Vec<Replayed>,
}

/// The snapshot of `id` (unless `with_snapshot` is false) and the events after it, or all of
/// its events when it has none: one query.
pub(super) async fn read(
    db: &Database,
    aggregate_type: &str,
    id: &str,
    with_snapshot: bool,
) -> Result<Read, sqlx::Error> {
    let events = "SELECT CAST(1 AS bigint), sequence, event_type, event_version, {payload} FROM events \
         WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > COALESCE((SELECT last_sequence \
           FROM aggregate_snapshots WHERE aggregate_type = $1 AND aggregate_id = $2 AND format = $3), 0)";
    let events = match db.dialect {
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
    .bind(aggregate_type)
    .bind(id)
    // No stored row has an empty format: without the snapshot, every event comes back.
    .bind(if with_snapshot { FORMAT } else { "" })
    .fetch_all(&db.pool)
    .await?;
    let mut snapshot = None;
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        let (part, sequence, payload): (i64, i64, String) = (row.try_get(0)?, row.try_get(1)?, row.try_get(4)?);
        let sequence = u64::try_from(sequence).unwrap_or_default();
        if part == 0 {
            snapshot = Some((payload, sequence));
            continue;
        }
        let payload = serde_json::from_str(&payload)
            .map_err(|e| sqlx::Error::ColumnDecode { index: "payload".into(), source: Box::new(e) })?;
        let (event_type, event_version): (String, String) = (row.try_get(2)?, row.try_get(3)?);
        let (_, payload) = domain::upcast::upcast(&event_type, &event_version, payload);
        events.push(Replayed { sequence, payload });
    }
    Ok(Read { snapshot, events })
}

/// Stores `payload` as the state of `id` at `sequence`, unless a later one is stored.
pub(super) async fn store(
    db: &Database,
    aggregate_type: &str,
    id: &str,
    sequence: u64,
    payload: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO aggregate_snapshots (aggregate_type, aggregate_id, last_sequence, format, payload) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET \
         last_sequence = excluded.last_sequence, format = excluded.format, payload = excluded.payload \
         WHERE excluded.last_sequence > aggregate_snapshots.last_sequence OR aggregate_snapshots.format <> excluded.format",
    )
    .bind(aggregate_type)
    .bind(id)
    .bind(sequence as i64)
    .bind(FORMAT)
    .bind(payload)
    .execute(&db.pool)
    .await
    .map(drop)
}

/// Whether a write that took the stream from `before` to `after`, after a load that replayed
/// `replayed` events, should store a snapshot.
pub(super) fn due(before: u64, after: u64, replayed: u64) -> bool {
    after > before && (before / SNAPSHOT_EVERY != after / SNAPSHOT_EVERY || replayed >= SNAPSHOT_EVERY)
}

//! Reading the event log in commit order, by global position.
//!
//! SQLite: one writer at a time, so `position` order is commit order. PostgreSQL: rows are read
//! only once their transaction is older than every transaction still running, ordered by
//! `(transaction_id, position)`; a transaction that took a position early and commits late is
//! therefore read after the ones that committed before it, never skipped.

use std::collections::HashMap;

use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{Database, DbResult, Dialect};

/// A point in the log's commit order. On SQLite `transaction_id` is always 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Position {
    pub transaction_id: i64,
    pub position: i64,
}

/// One event as stored, with its place in the log.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub position: Position,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: HashMap<String, String>,
    /// The time the row was written, RFC 3339 UTC.
    pub recorded_at: String,
    /// The payload as stored, when it was left undecoded (`payload` is then null): a replay
    /// decodes it straight into the event type instead of through a `Value`.
    pub(crate) raw_payload: Option<String>,
}

const SQLITE_COLUMNS: &str = "0 AS transaction_id, position, aggregate_type, aggregate_id, sequence, event_type, \
     event_version, payload, metadata, recorded_at";
const POSTGRES_COLUMNS: &str = "transaction_id::text::bigint AS transaction_id, position, aggregate_type, aggregate_id, \
     sequence, event_type, event_version, payload::text AS payload, metadata::text AS metadata, \
     to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS recorded_at";

#[derive(Debug, Clone)]
pub struct EventLog {
    db: Database,
}

/// One event as [`EventLog::changed_after`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub position: Position,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub event_type: String,
}

impl EventLog {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Up to `limit` events after `after`, in commit order.
    pub async fn read_after(&self, after: Position, limit: i64) -> DbResult<Vec<StoredEvent>> {
        let rows = match self.db.dialect {
            Dialect::Sqlite => {
                sqlx::query(&format!(
                    "SELECT {SQLITE_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2"
                ))
                .bind(after.position)
                .bind(limit)
                .fetch_all(&self.db.pool)
                .await?
            }
            Dialect::Postgres => {
                sqlx::query(&format!(
                    "SELECT {POSTGRES_COLUMNS} FROM events \
                     WHERE (transaction_id, position) > ($1::text::xid8, $2) \
                       AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
                     ORDER BY events.transaction_id, events.position LIMIT $3"
                ))
                .bind(after.transaction_id.to_string())
                .bind(after.position)
                .bind(limit)
                .fetch_all(&self.db.pool)
                .await?
            }
        };
        rows.iter().map(decode).collect()
    }

    /// Where the newest event sits in the log; the start when it is empty.
    pub async fn head(&self) -> DbResult<Position> {
        let sql = match self.db.dialect {
            Dialect::Sqlite => "SELECT 0 AS transaction_id, position FROM events ORDER BY position DESC LIMIT 1",
            Dialect::Postgres => {
                "SELECT transaction_id::text::bigint AS transaction_id, position FROM events \
                 ORDER BY events.transaction_id DESC, events.position DESC LIMIT 1"
            }
        };
        let row = sqlx::query(sql).fetch_optional(&self.db.pool).await?;
        row.map(|r| Ok(Position { transaction_id: r.try_get("transaction_id")?, position: r.try_get("position")? }))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// Every event of one aggregate, oldest first.
    pub async fn aggregate_history(&self, aggregate_type: &str, aggregate_id: &str) -> DbResult<Vec<StoredEvent>> {
        let columns = self.columns();
        let rows = sqlx::query(&format!(
            "SELECT {columns} FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence"
        ))
        .bind(aggregate_type)
        .bind(aggregate_id)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Every event of several aggregates of one type, in one query: by aggregate, oldest first.
    pub async fn aggregate_histories(
        &self,
        aggregate_type: &str,
        aggregate_ids: &[String],
    ) -> DbResult<Vec<StoredEvent>> {
        if aggregate_ids.is_empty() {
            return Ok(Vec::new());
        }
        let columns = self.columns();
        let placeholders: Vec<String> = (2..=aggregate_ids.len() + 1).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {columns} FROM events WHERE aggregate_type = $1 AND aggregate_id IN ({}) \
             ORDER BY aggregate_id, sequence",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(aggregate_type);
        for id in aggregate_ids {
            query = query.bind(id);
        }
        query.fetch_all(&self.db.pool).await?.iter().map(decode).collect()
    }

    /// Where the latest event of one aggregate sits in the log, if it has any.
    pub async fn latest_position_of(&self, aggregate_type: &str, aggregate_id: &str) -> DbResult<Option<Position>> {
        let txid = match self.db.dialect {
            Dialect::Sqlite => "0",
            Dialect::Postgres => "transaction_id::text::bigint",
        };
        let row = sqlx::query(&format!(
            "SELECT {txid} AS transaction_id, position FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence DESC LIMIT 1"
        ))
        .bind(aggregate_type)
        .bind(aggregate_id)
        .fetch_optional(&self.db.pool)
        .await?;
        row.map(|r| Ok(Position { transaction_id: r.try_get("transaction_id")?, position: r.try_get("position")? }))
            .transpose()
    }

    /// Which aggregates of `aggregate_types` have events after `after`, and which events, in
    /// commit order. On PostgreSQL a transaction still running is not seen; a caller that
    /// trusts a position must check that the read models have passed it.
    pub async fn changed_after(&self, after: Position, aggregate_types: &[&str]) -> DbResult<Vec<Change>> {
        if aggregate_types.is_empty() {
            return Ok(Vec::new());
        }
        let types: Vec<String> = (0..aggregate_types.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = match self.db.dialect {
            Dialect::Sqlite => format!(
                "SELECT 0 AS transaction_id, position, aggregate_type, aggregate_id, event_type FROM events \
                 WHERE position > $2 AND $1 = $1 AND aggregate_type IN ({}) ORDER BY position",
                types.join(", ")
            ),
            Dialect::Postgres => format!(
                "SELECT transaction_id::text::bigint AS transaction_id, position, aggregate_type, aggregate_id, \
                 event_type FROM events WHERE (transaction_id, position) > ($1::text::xid8, $2) AND aggregate_type IN ({}) \
                 ORDER BY events.transaction_id, events.position",
                types.join(", ")
            ),
        };
        let mut query = sqlx::query(&sql).bind(after.transaction_id.to_string()).bind(after.position);
        for t in aggregate_types {
            query = query.bind(*t);
        }
        let rows = query.fetch_all(&self.db.pool).await?;
        rows.iter()
            .map(|r| {
                let position =
                    Position { transaction_id: r.try_get("transaction_id")?, position: r.try_get("position")? };
                Ok(Change {
                    position,
                    aggregate_type: r.try_get("aggregate_type")?,
                    aggregate_id: r.try_get("aggregate_id")?,
                    event_type: r.try_get("event_type")?,
                })
            })
            .collect()
    }

    fn columns(&self) -> &'static str {
        match self.db.dialect {
            Dialect::Sqlite => SQLITE_COLUMNS,
            Dialect::Postgres => POSTGRES_COLUMNS,
        }
    }
}

/// The columns of an event row as [`decode_event`] reads them.
pub(crate) fn event_columns(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => SQLITE_COLUMNS,
        Dialect::Postgres => POSTGRES_COLUMNS,
    }
}

pub(crate) fn decode_event(row: &AnyRow) -> DbResult<StoredEvent> {
    decode(row)
}

fn decode(row: &AnyRow) -> DbResult<StoredEvent> {
    let json = |column: &str| -> DbResult<Value> {
        let text: String = row.try_get(column)?;
        serde_json::from_str(&text)
            .map_err(|e| sqlx::Error::ColumnDecode { index: column.to_owned(), source: Box::new(e) })
    };
    let metadata = match json("metadata")? {
        Value::Object(map) => {
            map.into_iter().map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect()
        }
        _ => HashMap::new(),
    };
    // Old shapes are upcast on read; what is stored never changes.
    let event_type: String = row.try_get("event_type")?;
    let (event_version, payload) =
        domain::upcast::upcast(&event_type, row.try_get::<&str, _>("event_version")?, json("payload")?);
    Ok(StoredEvent {
        position: Position { transaction_id: row.try_get("transaction_id")?, position: row.try_get("position")? },
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type,
        event_version,
        payload,
        metadata,
        recorded_at: row.try_get("recorded_at")?,
        raw_payload: None,
    })
}

/// What a replay reads of an event: no metadata, the payload left as text unless it needs
/// upcasting. In the order [`decode_for_replay`] reads them.
const SQLITE_REPLAY: &str =
    "0, position, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, recorded_at";
const POSTGRES_REPLAY: &str = "transaction_id::text::bigint, position, aggregate_type, aggregate_id, sequence, \
     event_type, event_version, payload::text, \
     to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";

/// Up to `limit` events of the given aggregate types after `after`, in commit order, as a
/// replay needs them (see [`StoredEvent::raw_payload`]); metadata is left out.
pub(crate) async fn read_for_replay(
    conn: &mut sqlx::AnyConnection,
    dialect: Dialect,
    after: Position,
    aggregate_types: &[&str],
    limit: i64,
) -> DbResult<Vec<StoredEvent>> {
    let types: Vec<String> = (0..aggregate_types.len()).map(|i| format!("${}", i + 4)).collect();
    let types = types.join(", ");
    let sql = match dialect {
        Dialect::Sqlite => format!(
            "SELECT {SQLITE_REPLAY} FROM events WHERE position > $2 AND $1 = $1 AND aggregate_type IN ({types}) \
             ORDER BY position LIMIT $3"
        ),
        Dialect::Postgres => format!(
            "SELECT {POSTGRES_REPLAY} FROM events \
             WHERE (transaction_id, position) > ($1::text::xid8, $2) \
               AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) AND aggregate_type IN ({types}) \
             ORDER BY events.transaction_id, events.position LIMIT $3"
        ),
    };
    let mut query = sqlx::query(&sql).bind(after.transaction_id.to_string()).bind(after.position).bind(limit);
    for t in aggregate_types {
        query = query.bind(*t);
    }
    query.fetch_all(&mut *conn).await?.iter().map(decode_for_replay).collect()
}

fn decode_for_replay(row: &AnyRow) -> DbResult<StoredEvent> {
    let event_type: String = row.try_get(5)?;
    let event_version: String = row.try_get(6)?;
    let text: String = row.try_get(7)?;
    let (event_version, payload, raw_payload) = if domain::upcast::is_current(&event_type, &event_version) {
        (event_version, Value::Null, Some(text))
    } else {
        let value = serde_json::from_str(&text)
            .map_err(|e| sqlx::Error::ColumnDecode { index: "payload".to_owned(), source: Box::new(e) })?;
        let (version, value) = domain::upcast::upcast(&event_type, &event_version, value);
        (version, value, None)
    };
    Ok(StoredEvent {
        position: Position { transaction_id: row.try_get(0)?, position: row.try_get(1)? },
        aggregate_type: row.try_get(2)?,
        aggregate_id: row.try_get(3)?,
        sequence: row.try_get(4)?,
        event_type,
        event_version,
        payload,
        metadata: HashMap::new(),
        recorded_at: row.try_get(8)?,
        raw_payload,
    })
}

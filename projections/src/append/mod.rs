//! Appending events, with their read-model changes in the same transaction when that is safe:
//! one commit per write on the common path (Marten calls these "inline" projections).
//!
//! A read model takes a write's events inline only when nothing of its own lies between its
//! checkpoint and them, so applying them now is applying them in log order:
//! - its stored checkpoint has no event of its kinds after it and before the write's first
//!   event (a stopped or lagging read model never qualifies);
//! - on PostgreSQL, no older transaction is still running
//!   (`pg_snapshot_xmin(pg_current_snapshot()) = pg_current_xact_id()`). An older one may
//!   append events that sort before ours and commit later; moving the checkpoint past them would
//!   skip them. On SQLite the write holds the only write lock, so there are none.
//!
//! Both are checked by the checkpoint's own conditional `UPDATE`, which also locks the row: a
//! projector, a rebuild or another inline writer working on that read model waits for this
//! transaction (or this one for them, then re-checks against the row they left). Rows are taken
//! in the order of [`ReadModel::ALL`], like everywhere else, so none of them wait in a cycle.
//! A read model with events of its own committed before the write and not yet applied (another
//! write met an older transaction and left them to the projector) takes those first, in the
//! same transaction, up to [`CATCH_UP`] of them: then one write that falls back does not send
//! every write after it to the projector too. When a read model does not qualify, the events
//! are left to the projector as before, and the write waits for it. Crash safety is unchanged: the events, the rows and the checkpoint
//! commit together or not at all.

use std::collections::HashMap;

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

mod combined;

use crate::db::{Database, Dialect};
use crate::log::{Position, StoredEvent};
use crate::read_models::{ApplyError, ReadModel};

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: HashMap<String, String>,
}

/// What an append came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Appended {
    /// Where the last appended event sits in the log.
    pub last: Position,
    /// The read models that took the events inline: they show them already.
    pub inlined: Vec<ReadModel>,
    /// The appended events' types, in order.
    pub event_types: Vec<String>,
    /// When the last of them was recorded, as the read models show it (`createdAt`,
    /// `updatedAt`): an answer built from the write needs no read-back.
    pub recorded_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// An event with the same aggregate and sequence exists: another write got there first.
    #[error("an event of {aggregate_type} {aggregate_id:?} at sequence {sequence} already exists")]
    Conflict { aggregate_type: String, aggregate_id: String, sequence: i64 },
    /// Another request claimed the write's `Idempotency-Key` first.
    #[error("another request holds this Idempotency-Key")]
    KeyClaimed,
    #[error("appending events")]
    Database(#[from] sqlx::Error),
    /// PostgreSQL: the connection broke while the transaction committed, and whether it did
    /// could not be found out within [`RESOLVE_FOR`] (the database stayed out of reach).
    #[error("the connection to the database broke while the change was committing; whether it was recorded is unknown")]
    OutcomeUnknown(#[source] sqlx::Error),
}

/// How long a commit whose connection broke is looked into before its outcome is called unknown.
pub const RESOLVE_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// Appends `events` in one transaction, applying them inline to each of the read models
/// `inline` names that qualifies (module docs). Nothing is written when any event clashes with
/// a stored one. `committing` is called just before the transaction's `COMMIT` is sent: until
/// then, dropping the returned future rolls everything back (a request cut by its timeout
/// while its `INSERT` waits for a lock has changed nothing); from then on the change may land.
pub async fn append(
    db: &Database,
    events: &[NewEvent],
    inline: &[ReadModel],
    committing: fn(),
) -> Result<Appended, AppendError> {
    if events.is_empty() {
        return Ok(Appended::default());
    }
    match append_once(db, events, inline, committing).await {
        Ok(appended) => Ok(appended),
        Err(Failed::Append(e)) => Err(e),
        // An inline apply that fails (an event a read model cannot read, a table in a bad
        // state) must not fail the write: the transaction is rolled back and the events are
        // appended alone; the projector then applies them, and reports and stops or retries
        // that read model as it does for any event.
        Err(Failed::Inline(error)) => {
            let error = crate::projector::error_chain(&error);
            tracing::warn!(%error, "applying a write inline failed; the projector applies it");
            append_once(db, events, &[], committing).await.map_err(|failed| match failed {
                Failed::Append(e) => e,
                Failed::Inline(e) => AppendError::Database(sqlx::Error::Decode(Box::new(e))),
            })
        }
    }
}

/// Why an attempt rolled back.
enum Failed {
    Append(AppendError),
    /// Only when inlining.
    Inline(ApplyError),
}

impl From<sqlx::Error> for Failed {
    fn from(error: sqlx::Error) -> Self {
        Failed::Append(AppendError::Database(error))
    }
}

impl From<AppendError> for Failed {
    fn from(error: AppendError) -> Self {
        Failed::Append(error)
    }
}

async fn append_once(
    db: &Database,
    events: &[NewEvent],
    inline: &[ReadModel],
    committing: fn(),
) -> Result<Appended, Failed> {
    let mut tx = db.pool.begin().await?;
    let mut stored = Vec::with_capacity(events.len());
    let mut inlined = Vec::new();
    let first = &events[0];
    // One event, one read model to take it, no key to claim: in one statement (`combined`).
    let alone = match (events, db.dialect) {
        ([event], Dialect::Postgres) if !crate::idempotency::claims(&event.metadata) => {
            inline.iter().copied().find(|m| m.handles(&event.aggregate_type))
        }
        _ => None,
    };
    match alone {
        Some(model) => match combined::append(&mut tx, first, model).await? {
            Some(done) => {
                stored.push(done.stored);
                if done.inlined {
                    inlined.push(model);
                }
            }
            None => stored.push(insert(&mut tx, db.dialect, first).await?),
        },
        None => {
            for event in events {
                stored.push(insert(&mut tx, db.dialect, event).await?);
            }
        }
    }
    if !crate::idempotency::claim(&mut tx, &first.metadata, (&first.aggregate_type, &first.aggregate_id)).await? {
        return Err(AppendError::KeyClaimed.into());
    }
    let last = stored.last().map(|e: &StoredEvent| e.position).unwrap_or_default();
    let recorded_at = stored.last().map(|e| e.recorded_at.clone()).unwrap_or_default();
    if !inline.is_empty() {
        let first = stored[0].position;
        let taken = inlined.clone();
        for model in ReadModel::ALL.into_iter().filter(|m| inline.contains(m) && !taken.contains(m)) {
            let own: Vec<&StoredEvent> = stored.iter().filter(|e| model.handles(&e.aggregate_type)).collect();
            let Some(model_last) = own.last() else {
                continue;
            };
            let pending = if take_checkpoint(&mut tx, db.dialect, model, first, model_last).await? {
                Vec::new()
            } else {
                match catch_up(&mut tx, db.dialect, model, first, model_last).await? {
                    Some(pending) => pending,
                    None => continue,
                }
            };
            let all: Vec<&StoredEvent> = pending.iter().chain(own).collect();
            model.apply_all(&mut tx, &all).await.map_err(Failed::Inline)?;
            inlined.push(model);
        }
    }
    committing();
    if let Err(error) = tx.commit().await {
        // The connection may have broken after the server committed, before it said so: a
        // client told "nothing changed" would then be wrong. On PostgreSQL the transaction's
        // id tells: `pg_xact_status` on another connection. (SQLite's commit is local: an error
        // is an error.)
        if db.dialect == Dialect::Sqlite || !committed(db, stored[0].position.transaction_id, &error).await? {
            return Err(AppendError::Database(error).into());
        }
        tracing::warn!(%error, "the connection broke while committing; the transaction did commit");
    }
    Ok(Appended { last, inlined, event_types: events.iter().map(|e| e.event_type.clone()).collect(), recorded_at })
}

/// Whether PostgreSQL transaction `transaction_id`, whose commit failed with `error`, committed
/// after all: asked on a fresh connection until the database answers with a final status, for
/// up to [`RESOLVE_FOR`].
async fn committed(db: &Database, transaction_id: i64, error: &sqlx::Error) -> Result<bool, AppendError> {
    let deadline = tokio::time::Instant::now() + RESOLVE_FOR;
    loop {
        // Each attempt within what is left: a database that hangs must not hold the answer past
        // RESOLVE_FOR.
        let ask = sqlx::query_scalar("SELECT pg_xact_status(CAST(CAST($1 AS bigint) AS text)::xid8)")
            .bind(transaction_id)
            .fetch_one(&db.pool);
        let status: Option<Option<String>> = tokio::time::timeout_at(deadline, ask).await.ok().and_then(Result::ok);
        match status.as_ref().map(Option::as_deref) {
            Some(Some("committed")) => return Ok(true),
            Some(Some("aborted")) => return Ok(false),
            // "in progress": the server has not finished with it yet (it ends it when it
            // notices the client gone); an error: the database is still out of reach.
            _ if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
            _ => {
                tracing::warn!(%error, "the connection broke while committing, and the outcome could not be found out");
                return Err(AppendError::OutcomeUnknown(clone_error(error)));
            }
        }
    }
}

/// `sqlx::Error` is not `Clone`: its message, kept as an I/O error.
fn clone_error(error: &sqlx::Error) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(error.to_string()))
}

/// Inserts one event; where it landed and when.
async fn insert(conn: &mut AnyConnection, dialect: Dialect, event: &NewEvent) -> Result<StoredEvent, AppendError> {
    let payload = event.payload.to_string();
    let metadata = serde_json::to_string(&event.metadata).expect("a map of strings serialises");
    let sql = match dialect {
        Dialect::Sqlite => {
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)"
        }
        Dialect::Postgres => {
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             VALUES ($1, $2, $3, $4, $5, $6::json, $7::json) \
             RETURNING transaction_id::text::bigint AS transaction_id, position, \
             to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS recorded_at"
        }
    };
    let query = sqlx::query(sql)
        .bind(&event.aggregate_type)
        .bind(&event.aggregate_id)
        .bind(event.sequence)
        .bind(&event.event_type)
        .bind(&event.event_version)
        .bind(payload)
        .bind(metadata);
    let clash = |e: sqlx::Error| match &e {
        sqlx::Error::Database(d) if d.kind() == sqlx::error::ErrorKind::UniqueViolation => AppendError::Conflict {
            aggregate_type: event.aggregate_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
            sequence: event.sequence,
        },
        _ => AppendError::Database(e),
    };
    let row: AnyRow = match dialect {
        Dialect::Postgres => query.fetch_one(&mut *conn).await.map_err(clash)?,
        Dialect::Sqlite => {
            // The position is assigned by a trigger, after what `RETURNING` would show.
            query.execute(&mut *conn).await.map_err(clash)?;
            sqlx::query(
                "SELECT 0 AS transaction_id, position, recorded_at FROM events \
                 WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $3",
            )
            .bind(&event.aggregate_type)
            .bind(&event.aggregate_id)
            .bind(event.sequence)
            .fetch_one(&mut *conn)
            .await?
        }
    };
    let position = Position { transaction_id: row.try_get("transaction_id")?, position: row.try_get("position")? };
    let recorded_at: String = row.try_get("recorded_at")?;
    Ok(stored(event, position, &recorded_at))
}

/// `event` as it was stored: at `position`, recorded at `recorded_at`.
fn stored(event: &NewEvent, position: Position, recorded_at: &str) -> StoredEvent {
    StoredEvent {
        position,
        aggregate_type: event.aggregate_type.clone(),
        aggregate_id: event.aggregate_id.clone(),
        sequence: event.sequence,
        event_type: event.event_type.clone(),
        event_version: event.event_version.clone(),
        payload: event.payload.clone(),
        metadata: event.metadata.clone(),
        recorded_at: recorded_at.to_owned(),
        raw_payload: None,
    }
}

/// At most this many events of a read model, committed before a write and not applied yet, are
/// applied in the write's transaction; a read model further behind is left to the projector.
const CATCH_UP: usize = 100;

/// When `model` has events of its own committed before the write and not applied yet (another
/// write met an older transaction and left them to the projector), and no older transaction
/// runs: locks its checkpoint row, moves it to `last` and returns those events, for the write
/// to apply before its own. `None`, having moved nothing, when an older transaction runs or
/// more than [`CATCH_UP`] events are pending.
async fn catch_up(
    conn: &mut AnyConnection,
    dialect: Dialect,
    model: ReadModel,
    first: Position,
    last: &StoredEvent,
) -> Result<Option<Vec<StoredEvent>>, sqlx::Error> {
    let lock = match dialect {
        Dialect::Sqlite => "SELECT transaction_id, position FROM projection_checkpoints WHERE name = $1",
        Dialect::Postgres => {
            "SELECT transaction_id, position FROM projection_checkpoints WHERE name = $1 \
             AND pg_snapshot_xmin(pg_current_snapshot()) = pg_current_xact_id() FOR UPDATE"
        }
    };
    let Some(row) = sqlx::query(lock).bind(model.name()).fetch_optional(&mut *conn).await? else {
        return Ok(None);
    };
    let checkpoint = Position { transaction_id: row.try_get(0)?, position: row.try_get(1)? };
    if checkpoint >= first {
        return Ok(None);
    }
    let types = model.aggregate_types();
    let placeholders: Vec<String> = (0..types.len()).map(|i| format!("${}", i + 6)).collect();
    let columns = crate::log::event_columns(dialect);
    let sql = match dialect {
        Dialect::Sqlite => format!(
            "SELECT {columns} FROM events WHERE position > $2 AND position < $4 AND $1 = $1 AND $3 = $3 \
             AND aggregate_type IN ({}) ORDER BY position LIMIT $5",
            placeholders.join(", ")
        ),
        Dialect::Postgres => format!(
            "SELECT {columns} FROM events WHERE (transaction_id, position) > ($1::text::xid8, $2) \
             AND (transaction_id, position) < ($3::text::xid8, $4) AND aggregate_type IN ({}) \
             ORDER BY events.transaction_id, events.position LIMIT $5",
            placeholders.join(", ")
        ),
    };
    let mut query = sqlx::query(&sql)
        .bind(checkpoint.transaction_id.to_string())
        .bind(checkpoint.position)
        .bind(first.transaction_id.to_string())
        .bind(first.position)
        .bind(CATCH_UP as i64 + 1);
    for t in types {
        query = query.bind(t);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    if rows.len() > CATCH_UP {
        return Ok(None);
    }
    let pending = rows.iter().map(crate::log::decode_event).collect::<Result<Vec<_>, _>>()?;
    sqlx::query(
        "UPDATE projection_checkpoints SET transaction_id = $2, position = $3, updated_at = $4 WHERE name = $1",
    )
    .bind(model.name())
    .bind(last.position.transaction_id)
    .bind(last.position.position)
    .bind(last.recorded_at.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(Some(pending))
}

/// Moves `model`'s checkpoint to `last` if it may take the write inline (module docs),
/// locking its row until the transaction ends. False, having changed nothing, when it may not.
async fn take_checkpoint(
    conn: &mut AnyConnection,
    dialect: Dialect,
    model: ReadModel,
    first: Position,
    last: &StoredEvent,
) -> Result<bool, sqlx::Error> {
    let types = model.aggregate_types();
    let placeholders: Vec<String> = (0..types.len()).map(|i| format!("${}", i + 7)).collect();
    let placeholders = placeholders.join(", ");
    let sql = match dialect {
        Dialect::Sqlite => format!(
            "UPDATE projection_checkpoints SET transaction_id = $2, position = $3, updated_at = $4 \
             WHERE name = $1 AND position < $3 AND $5 = $5 \
               AND NOT EXISTS (SELECT 1 FROM events e WHERE e.position > projection_checkpoints.position \
                 AND e.position < $6 AND e.aggregate_type IN ({placeholders}))"
        ),
        // Per kind, the checkpoint is at or past the kind's latest event before the write: one
        // backward step on `events_kind` each, whatever the log holds. (A correlated NOT EXISTS
        // was planned as a scan of every event of the kind when the table's statistics were
        // fresh: 5-15 ms a write and growing.)
        Dialect::Postgres => {
            let latest: Vec<String> = (0..types.len())
                .map(|i| {
                    format!(
                        "AND (transaction_id, position) >= ALL (SELECT e.transaction_id::text::bigint, e.position \
                         FROM events e WHERE e.aggregate_type = ${} AND (e.transaction_id, e.position) < ($5::text::xid8, $6) \
                         ORDER BY e.aggregate_type DESC, e.transaction_id DESC, e.position DESC LIMIT 1)",
                        i + 7
                    )
                })
                .collect();
            format!(
                "UPDATE projection_checkpoints SET transaction_id = $2, position = $3, updated_at = $4 \
                 WHERE name = $1 AND (transaction_id, position) < ($2, $3) \
                   AND pg_snapshot_xmin(pg_current_snapshot()) = pg_current_xact_id() {}",
                latest.join(" ")
            )
        }
    };
    let mut query = sqlx::query(&sql)
        .bind(model.name())
        .bind(last.position.transaction_id)
        .bind(last.position.position)
        .bind(last.recorded_at.as_str())
        .bind(first.transaction_id.to_string())
        .bind(first.position);
    for t in types {
        query = query.bind(t);
    }
    Ok(query.execute(&mut *conn).await?.rows_affected() == 1)
}

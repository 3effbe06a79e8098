//! PostgreSQL, a write of one event that one read model takes inline: the event, the read
//! model's checkpoint and its row change sent as one statement (a data-modifying `WITH`), so
//! the write costs BEGIN, that statement and COMMIT: three round trips instead of five.
//!
//! The statement holds the same conditions as the step-by-step path (module docs above), with
//! one difference that only makes it more careful: its snapshot is taken before the event's
//! transaction id is assigned, so "no older transaction runs" also fails when another
//! transaction took an id between the two. The event itself is invisible to the statement's own
//! look at the log, which therefore sees exactly the events before it. When the checkpoint does
//! not qualify, nothing but the event is written, and the caller goes on as it would have after
//! appending it (catching the read model up, or leaving it to the projector).
//!
//! The read model's change is computed before the event exists; where it holds what only the
//! database knows (when the event was recorded, where it sits), it holds a placeholder that the
//! statement replaces with the inserted row's value. A change this cannot express (several
//! changes, `Only`, a placeholder inside a longer value) is not sent this way at all.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{AppendError, Failed, NewEvent, stored};
use crate::log::{Position, StoredEvent};
use crate::read_models::ReadModel;
use crate::read_models::change::{Cell, Change, Set};

const RECORDED_AT: &str = "\u{1}mcpd:recorded_at\u{1}";
const POSITION: i64 = i64::MIN + 1;
const TRANSACTION_ID: i64 = i64::MIN + 2;

/// The columns of the inserted event the statement answers with, as `StoredEvent` reads them.
const EVENT: &str = "x AS (SELECT transaction_id::text::bigint AS txid, position, \
     to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS recorded_at FROM ev)";

/// What the statement came to: the event as stored, and whether `model` took it.
pub(super) struct Combined {
    pub stored: StoredEvent,
    pub inlined: bool,
}

/// Appends `event` with `model`'s change and checkpoint in one statement on `conn` (inside the
/// caller's transaction). `None`, having sent nothing, when the change cannot be sent this way.
pub(super) async fn append(
    conn: &mut AnyConnection,
    event: &NewEvent,
    model: ReadModel,
) -> Result<Option<Combined>, Failed> {
    let provisional = stored(event, Position { transaction_id: TRANSACTION_ID, position: POSITION }, RECORDED_AT);
    let change = match model.changes(&provisional).map_err(Failed::Inline)?.as_slice() {
        [change] => change.clone(),
        _ => return Ok(None),
    };
    let types = model.aggregate_types();
    let mut next = 9 + types.len();
    let Some((change_sql, cells)) = render(&change, &mut next) else {
        return Ok(None);
    };
    let latest: Vec<String> = (0..types.len())
        .map(|i| {
            format!(
                "AND (projection_checkpoints.transaction_id, projection_checkpoints.position) >= ALL \
                 (SELECT e.transaction_id::text::bigint, e.position FROM events e WHERE e.aggregate_type = ${} \
                 ORDER BY e.aggregate_type DESC, e.transaction_id DESC, e.position DESC LIMIT 1)",
                i + 9
            )
        })
        .collect();
    let sql = format!(
        "WITH ev AS (INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, \
         metadata) VALUES ($1, $2, $3, $4, $5, $6::json, $7::json) RETURNING transaction_id, position, recorded_at), \
         {EVENT}, \
         cp AS (UPDATE projection_checkpoints SET transaction_id = x.txid, position = x.position, \
         updated_at = x.recorded_at FROM x WHERE name = $8 \
         AND (projection_checkpoints.transaction_id, projection_checkpoints.position) < (x.txid, x.position) \
         AND pg_snapshot_xmin(pg_current_snapshot()) = pg_current_xact_id() {} RETURNING 1), \
         rm AS ({change_sql}) \
         SELECT txid AS transaction_id, position, recorded_at, EXISTS (SELECT 1 FROM cp) AS inlined FROM x",
        latest.join(" ")
    );
    let mut query = sqlx::query(&sql)
        .bind(&event.aggregate_type)
        .bind(&event.aggregate_id)
        .bind(event.sequence)
        .bind(&event.event_type)
        .bind(&event.event_version)
        .bind(event.payload.to_string())
        .bind(serde_json::to_string(&event.metadata).expect("a map of strings serialises"))
        .bind(model.name());
    for t in types {
        query = query.bind(t);
    }
    for cell in &cells {
        query = match cell {
            Cell::Null => query.bind(None::<String>),
            Cell::Int(n) => query.bind(*n),
            Cell::Text(s) => query.bind(s.as_str()),
        };
    }
    let row: AnyRow = query.fetch_one(&mut *conn).await.map_err(|e| clash_or_retry(e, event))?;
    let position = Position { transaction_id: row.try_get("transaction_id")?, position: row.try_get("position")? };
    let recorded_at: String = row.try_get("recorded_at")?;
    Ok(Some(Combined { stored: stored(event, position, &recorded_at), inlined: row.try_get("inlined")? }))
}

/// The event's own key taken is a clash, as on the step-by-step path; any other failure rolls
/// the transaction back and the write is made again without inlining (as when an inline apply
/// fails), so a read model's table never fails a write.
fn clash_or_retry(error: sqlx::Error, event: &NewEvent) -> Failed {
    match &error {
        sqlx::Error::Database(d)
            if d.kind() == sqlx::error::ErrorKind::UniqueViolation && d.constraint() == Some("events_pkey") =>
        {
            Failed::Append(AppendError::Conflict {
                aggregate_type: event.aggregate_type.clone(),
                aggregate_id: event.aggregate_id.clone(),
                sequence: event.sequence,
            })
        }
        _ => Failed::Inline(error.into()),
    }
}

/// A value in the statement: the inserted event's own where the change holds a placeholder, a
/// parameter otherwise. `None` when a placeholder hides inside a longer value.
fn value(cell: &Cell, next: &mut usize, cells: &mut Vec<Cell>) -> Option<String> {
    match cell {
        Cell::Text(t) if t == RECORDED_AT => return Some("(SELECT recorded_at FROM x)".into()),
        Cell::Text(t) if t.contains(RECORDED_AT) => return None,
        Cell::Int(POSITION) => return Some("(SELECT position FROM x)".into()),
        Cell::Int(TRANSACTION_ID) => return Some("(SELECT txid FROM x)".into()),
        _ => {}
    }
    cells.push(cell.clone());
    *next += 1;
    Some(format!("${}", *next - 1))
}

/// `change` as the statement's last part, applied only when the checkpoint moved (`cp` has a
/// row), with the values it binds after the ones before it (from `$next`).
fn render(change: &Change, next: &mut usize) -> Option<(String, Vec<Cell>)> {
    let mut cells = Vec::new();
    let taken = "EXISTS (SELECT 1 FROM cp)";
    let sql = match change {
        Change::InsertNew { table, row } | Change::Upsert { table, row, .. } => {
            let columns: Vec<&str> = row.iter().map(|(c, _)| *c).collect();
            let values = row.iter().map(|(_, v)| value(v, next, &mut cells)).collect::<Option<Vec<_>>>()?;
            let conflict = match change {
                Change::Upsert { keep, .. } => {
                    let updates: Vec<String> = columns
                        .iter()
                        .filter(|c| **c != table.key && !keep.contains(c))
                        .map(|c| format!("{c} = excluded.{c}"))
                        .collect();
                    if updates.is_empty() {
                        "DO NOTHING".to_owned()
                    } else {
                        format!("DO UPDATE SET {}", updates.join(", "))
                    }
                }
                _ => "DO NOTHING".to_owned(),
            };
            format!(
                "INSERT INTO {} ({}) SELECT {} WHERE {taken} ON CONFLICT ({}) {conflict}",
                table.name,
                columns.join(", "),
                values.join(", "),
                table.key
            )
        }
        Change::Update { table, key, set } => {
            let key = value(&Cell::Text(key.clone()), next, &mut cells)?;
            let mut assignments = Vec::new();
            for (column, v) in set {
                assignments.push(match v {
                    Set::To(cell) => format!("{column} = {}", value(cell, next, &mut cells)?),
                    Set::Add(n) => format!("{column} = {column} + {}", value(&Cell::Int(*n), next, &mut cells)?),
                });
            }
            format!("UPDATE {} SET {} WHERE {} = {key} AND {taken}", table.name, assignments.join(", "), table.key)
        }
        Change::Delete { table, key } => {
            let key = value(&Cell::Text(key.clone()), next, &mut cells)?;
            format!("DELETE FROM {} WHERE {} = {key} AND {taken}", table.name, table.key)
        }
        Change::Only { .. } => return None,
    };
    Some((sql, cells))
}

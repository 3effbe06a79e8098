//! Audit queries straight over the event log: newest first, filtered by resource, actor, event
//! type and time, with a cursor that neither skips nor repeats a row while events keep being
//! appended. On PostgreSQL a row is shown only once every transaction that could commit before
//! it has ended (the projector's horizon), so rows appear in commit order and a page read later
//! never gains a row older than the cursor.

use crate::db::{Database, DbResult, Dialect};
use crate::log::{Position, StoredEvent, decode_event, event_columns};

/// What to look for; every field narrows the result.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub actor: Option<String>,
    pub event_type: Option<String>,
    /// RFC 3339, UTC, inclusive.
    pub since: Option<jiff::Timestamp>,
    /// RFC 3339, UTC, exclusive.
    pub until: Option<jiff::Timestamp>,
}

/// Which way to read from the cursor.
#[derive(Debug, Clone, Copy)]
pub enum Direction {
    /// Newest first, older than the cursor (pages).
    Older(Option<Position>),
    /// Oldest first, newer than the cursor (following the log).
    Newer(Position),
    /// Newest first, older than `before` and newer than `after`: a page of a stretch of the log.
    Between { before: Position, after: Position },
}

pub async fn query(
    db: &Database,
    filter: &AuditFilter,
    direction: Direction,
    limit: i64,
) -> DbResult<Vec<StoredEvent>> {
    let mut conditions = Vec::new();
    let mut binds: Vec<String> = Vec::new();
    let mut bind = |value: String| {
        binds.push(value);
        format!("${}", binds.len())
    };
    let pg = db.dialect == Dialect::Postgres;
    if let Some(t) = &filter.aggregate_type {
        conditions.push(format!("aggregate_type = {}", bind(t.clone())));
    }
    if let Some(id) = &filter.aggregate_id {
        conditions.push(format!("aggregate_id = {}", bind(id.clone())));
    }
    if let Some(actor) = &filter.actor {
        let column = if pg { "(metadata ->> 'actor')" } else { "json_extract(metadata, '$.actor')" };
        conditions.push(format!("{column} = {}", bind(actor.clone())));
    }
    if let Some(event_type) = &filter.event_type {
        conditions.push(format!("event_type = {}", bind(event_type.clone())));
    }
    let time = |t: &jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let cast = if pg { "::timestamptz" } else { "" };
    if let Some(since) = &filter.since {
        conditions.push(format!("recorded_at >= {}{cast}", bind(time(since))));
    }
    if let Some(until) = &filter.until {
        conditions.push(format!("recorded_at < {}{cast}", bind(time(until))));
    }
    let (order, cursors) = match direction {
        Direction::Older(cursor) => ("DESC", cursor.map(|c| (c, "<")).into_iter().collect()),
        Direction::Newer(cursor) => ("ASC", vec![(cursor, ">")]),
        Direction::Between { before, after } => ("DESC", vec![(before, "<"), (after, ">")]),
    };
    if pg {
        conditions.push("transaction_id < pg_snapshot_xmin(pg_current_snapshot())".into());
    }
    for (c, op) in cursors {
        if pg {
            conditions.push(format!(
                "(transaction_id, position) {op} ({}::text::xid8, {}::bigint)",
                bind(c.transaction_id.to_string()),
                bind(c.position.to_string())
            ));
        } else {
            conditions.push(format!("position {op} {}::integer", bind(c.position.to_string())));
        }
    }
    let filter_sql = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
    // Qualified: the select list has a column named transaction_id too (cast for the reader), and
    // ordering by that one would sort every matching row instead of reading the index.
    let order_by = if pg {
        format!("events.transaction_id {order}, events.position {order}")
    } else {
        format!("position {order}")
    };
    let sql = format!(
        "SELECT {} FROM events {filter_sql} ORDER BY {order_by} LIMIT {}",
        event_columns(db.dialect),
        limit.clamp(1, 10_000)
    );
    let mut query = sqlx::query(&sql);
    for value in binds {
        query = query.bind(value);
    }
    query.fetch_all(&db.pool).await?.iter().map(decode_event).collect()
}

/// The latest event before `sequence` of one aggregate that set its state (`…Created` or
/// `…Updated`): what an update replaced.
pub async fn previous_state(
    db: &Database,
    aggregate_type: &str,
    aggregate_id: &str,
    sequence: i64,
) -> DbResult<Option<StoredEvent>> {
    let sql = format!(
        "SELECT {} FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence < $3 \
           AND (event_type LIKE '%Created' OR event_type LIKE '%Updated') \
         ORDER BY sequence DESC LIMIT 1",
        event_columns(db.dialect)
    );
    let row = sqlx::query(&sql).bind(aggregate_type).bind(aggregate_id).bind(sequence).fetch_optional(&db.pool).await?;
    row.as_ref().map(decode_event).transpose()
}

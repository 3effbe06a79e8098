//! The `access_denials` table: requests mcpd refused (401, 403), an audit stream of its own
//! beside the event log, which records changes only. Rows are written in batches by mcpd's
//! recorder and kept to a bounded number ([`trim`]); they never hold a token or a value.

use sqlx::Row;

use crate::db::{Database, DbResult};

/// One refusal, or (`suppressed` > 0) a row standing for that many not recorded one by one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Denial {
    pub id: i64,
    /// When, as [`stamp`] writes it (fixed width, so text compares as time).
    pub at: String,
    pub request_id: String,
    pub actor: Option<String>,
    pub token_id: Option<String>,
    pub source_address: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub reason: String,
    pub suppressed: i64,
}

/// What a query of the refusals asks for.
#[derive(Debug, Clone, Default)]
pub struct DenialFilter {
    pub actor: Option<String>,
    pub status: Option<u16>,
    pub since: Option<jiff::Timestamp>,
    pub until: Option<jiff::Timestamp>,
    /// Rows older than this id (the next page).
    pub before: Option<i64>,
}

/// A time as the table holds it.
pub fn stamp(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Appends `rows` in one transaction.
pub async fn insert(db: &Database, rows: &[Denial]) -> DbResult<()> {
    let mut tx = db.pool.begin().await?;
    for row in rows {
        sqlx::query(
            "INSERT INTO access_denials (at, request_id, actor, token_id, source_address, method, path, status, \
             reason, suppressed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&row.at)
        .bind(&row.request_id)
        .bind(&row.actor)
        .bind(&row.token_id)
        .bind(&row.source_address)
        .bind(&row.method)
        .bind(&row.path)
        .bind(i64::from(row.status))
        .bind(&row.reason)
        .bind(row.suppressed)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Deletes all but the newest `keep` rows; how many went.
pub async fn trim(db: &Database, keep: i64) -> DbResult<u64> {
    let newest: Option<i64> =
        sqlx::query("SELECT MAX(id) AS newest FROM access_denials").fetch_one(&db.pool).await?.try_get("newest")?;
    let Some(newest) = newest else { return Ok(0) };
    let done = sqlx::query("DELETE FROM access_denials WHERE id <= $1").bind(newest - keep).execute(&db.pool).await?;
    Ok(done.rows_affected())
}

/// The refusals `filter` names, newest first, at most `limit`.
pub async fn query(db: &Database, filter: &DenialFilter, limit: i64) -> DbResult<Vec<Denial>> {
    let mut conditions = Vec::new();
    let mut binds: Vec<String> = Vec::new();
    let mut bind = |value: String| {
        binds.push(value);
        format!("${}", binds.len())
    };
    if let Some(actor) = &filter.actor {
        conditions.push(format!("actor = {}", bind(actor.clone())));
    }
    // Numbers are written into the statement: they are integers mcpd made, and both dialects
    // read them alike there (a bound text would not compare as a number on PostgreSQL).
    if let Some(status) = filter.status {
        conditions.push(format!("status = {status}"));
    }
    if let Some(since) = &filter.since {
        conditions.push(format!("at >= {}", bind(stamp(*since))));
    }
    if let Some(until) = &filter.until {
        conditions.push(format!("at < {}", bind(stamp(*until))));
    }
    if let Some(before) = filter.before {
        conditions.push(format!("id < {before}"));
    }
    let condition = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
    let sql = format!(
        "SELECT id, at, request_id, actor, token_id, source_address, method, path, status, reason, suppressed \
         FROM access_denials {condition} ORDER BY id DESC LIMIT {}",
        limit.max(0)
    );
    let mut query = sqlx::query(&sql);
    for value in &binds {
        query = query.bind(value);
    }
    let rows = query.fetch_all(&db.pool).await?;
    rows.iter()
        .map(|row| {
            Ok(Denial {
                id: row.try_get("id")?,
                at: row.try_get("at")?,
                request_id: row.try_get("request_id")?,
                actor: row.try_get("actor")?,
                token_id: row.try_get("token_id")?,
                source_address: row.try_get("source_address")?,
                method: row.try_get("method")?,
                path: row.try_get("path")?,
                status: u16::try_from(row.try_get::<i64, _>("status")?).unwrap_or(0),
                reason: row.try_get("reason")?,
                suppressed: row.try_get("suppressed")?,
            })
        })
        .collect()
}

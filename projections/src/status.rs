//! How far each read model is, read from the database so that any replica answers the same:
//! its checkpoint, the log's head, the events it has still to apply and how old the oldest of
//! them is, the error it last stopped or retried on, and its latest rebuild.

use serde::Serialize;
use sqlx::Row;

use crate::db::{Database, DbResult, Dialect};
use crate::log::{EventLog, Position};
use crate::read_models::ReadModel;
use crate::rebuild::STALE_AFTER;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionStatus {
    pub name: &'static str,
    pub checkpoint: Position,
    pub head: Position,
    /// Events of this read model's kinds recorded after its checkpoint.
    pub lag_events: i64,
    /// How long ago the oldest of them was recorded; 0 when there are none.
    pub lag_seconds: f64,
    pub last_error: Option<String>,
    pub error_at: Option<String>,
    pub rebuild: Option<RebuildStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RebuildStatus {
    /// running, completed, failed, or interrupted (running, with no progress for a while: the
    /// process doing it died).
    pub status: String,
    pub replayed: i64,
    pub total: i64,
    pub requested_by: String,
    pub started_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    /// Events replayed per second, from the start to the latest progress report.
    pub rate: f64,
    /// Seconds left at that rate, while it runs.
    pub eta_seconds: Option<f64>,
}

impl RebuildStatus {
    pub fn running(&self) -> bool {
        self.status == "running"
    }
}

/// The status of `models`.
pub async fn status(db: &Database, models: &[ReadModel]) -> DbResult<Vec<ProjectionStatus>> {
    crate::projector::ensure_checkpoints(db).await?;
    let head = EventLog::new(db.clone()).head().await?;
    let mut out = Vec::new();
    for model in models {
        let row = sqlx::query(
            "SELECT transaction_id, position, last_error, error_at FROM projection_checkpoints WHERE name = $1",
        )
        .bind(model.name())
        .fetch_one(&db.pool)
        .await?;
        let checkpoint =
            Position { transaction_id: row.try_get("transaction_id")?, position: row.try_get("position")? };
        let (lag_events, lag_seconds) = lag(db, *model, checkpoint).await?;
        out.push(ProjectionStatus {
            name: model.name(),
            checkpoint,
            head,
            lag_events,
            lag_seconds,
            last_error: row.try_get("last_error")?,
            error_at: row.try_get("error_at")?,
            rebuild: rebuild_status(db, *model).await?,
        });
    }
    Ok(out)
}

async fn lag(db: &Database, model: ReadModel, checkpoint: Position) -> DbResult<(i64, f64)> {
    let types = model.aggregate_types();
    let placeholders: Vec<String> = (0..types.len()).map(|i| format!("${}", i + 3)).collect();
    let placeholders = placeholders.join(", ");
    let sql = match db.dialect {
        Dialect::Sqlite => format!(
            "SELECT count(*) AS n, \
               COALESCE((julianday('now') - julianday(min(recorded_at))) * 86400.0, 0.0) AS age \
             FROM events WHERE position > $2 AND $1 = $1 AND aggregate_type IN ({placeholders})"
        ),
        Dialect::Postgres => format!(
            "SELECT count(*) AS n, COALESCE(EXTRACT(EPOCH FROM now() - min(recorded_at))::float8, 0.0) AS age \
             FROM events WHERE (transaction_id, position) > ($1::text::xid8, $2) \
               AND aggregate_type IN ({placeholders})"
        ),
    };
    let mut query = sqlx::query(&sql).bind(checkpoint.transaction_id.to_string()).bind(checkpoint.position);
    for t in types {
        query = query.bind(t);
    }
    let row = query.fetch_one(&db.pool).await?;
    Ok((row.try_get("n")?, row.try_get::<f64, _>("age")?.max(0.0)))
}

/// The latest rebuild of `model`, if there was one.
pub async fn rebuild_status(db: &Database, model: ReadModel) -> DbResult<Option<RebuildStatus>> {
    let row = sqlx::query(
        "SELECT status, replayed, total, requested_by, started_at, updated_at, finished_at, error \
         FROM projection_rebuilds WHERE name = $1",
    )
    .bind(model.name())
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut status: String = row.try_get("status")?;
    let updated_at: String = row.try_get("updated_at")?;
    // By the database's clock, as the claim is judged (`rebuild::claim`).
    if status == "running"
        && let Ok(at) = updated_at.parse::<jiff::Timestamp>()
        && db.now().await?.duration_since(at).unsigned_abs() > STALE_AFTER
    {
        status = "interrupted".to_owned();
    }
    let (replayed, total): (i64, i64) = (row.try_get("replayed")?, row.try_get("total")?);
    let started_at: String = row.try_get("started_at")?;
    let elapsed = match (started_at.parse::<jiff::Timestamp>(), updated_at.parse::<jiff::Timestamp>()) {
        (Ok(start), Ok(end)) => end.duration_since(start).as_secs_f64(),
        _ => 0.0,
    };
    let rate = if elapsed > 0.0 { replayed as f64 / elapsed } else { 0.0 };
    let eta_seconds = (status == "running" && rate > 0.0).then(|| (total - replayed).max(0) as f64 / rate);
    Ok(Some(RebuildStatus {
        status,
        replayed,
        total,
        requested_by: row.try_get("requested_by")?,
        started_at,
        updated_at,
        finished_at: row.try_get("finished_at")?,
        error: row.try_get("error")?,
        rate,
        eta_seconds,
    }))
}

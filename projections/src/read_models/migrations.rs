//! The `migrations` table: one row per secret migration run, with its counts and status.

use domain::migration::MigrationEvent;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{ApplyError, Record, payload};
use crate::db::{Database, DbResult};
use crate::log::StoredEvent;

/// A run as the read model knows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationState {
    pub from: String,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
    pub keep_source: bool,
    /// running | completed | failed
    pub status: String,
    pub moved: i64,
    pub skipped: i64,
    pub failed: i64,
    /// How often mcpd picked the run up again after a restart.
    pub resumed: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

pub(crate) async fn apply(conn: &mut AnyConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    let id = &event.aggregate_id;
    let update =
        |sql: &'static str| sqlx::query(sql).bind(id.clone()).bind(event.sequence).bind(event.recorded_at.clone());
    match payload::<MigrationEvent>(event)? {
        MigrationEvent::MigrationStarted { from, to, names, keep_source } => {
            sqlx::query(
                "INSERT INTO migrations (id, from_backend, to_backend, names, keep_source, status, moved, skipped, \
                                         failed, resumed, last_error, resource_version, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, 'running', 0, 0, 0, 0, NULL, $6, $7, $7) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(names.map(|n| serde_json::to_string(&n).expect("names serialise")))
            .bind(i64::from(keep_source))
            .bind(event.sequence)
            .bind(&event.recorded_at)
            .execute(&mut *conn)
            .await?;
        }
        MigrationEvent::MigrationProgressed { moved, skipped } => {
            update("UPDATE migrations SET moved = moved + $4, skipped = skipped + $5, resource_version = $2, updated_at = $3 WHERE id = $1")
                .bind(moved.len() as i64)
                .bind(skipped.len() as i64)
                .execute(&mut *conn)
                .await?;
        }
        MigrationEvent::MigrationResumed { .. } => {
            update("UPDATE migrations SET resumed = resumed + 1, status = 'running', resource_version = $2, updated_at = $3 WHERE id = $1")
                .execute(&mut *conn)
                .await?;
        }
        MigrationEvent::MigrationCompleted { failed, .. } => {
            update("UPDATE migrations SET status = 'completed', failed = $4, resource_version = $2, updated_at = $3 WHERE id = $1")
                .bind(failed as i64)
                .execute(&mut *conn)
                .await?;
        }
        MigrationEvent::MigrationFailed { secret, reason } => {
            let error = match secret {
                Some(secret) => format!("secret {secret:?}: {reason}"),
                None => reason,
            };
            update("UPDATE migrations SET status = 'failed', failed = failed + 1, last_error = $4, resource_version = $2, updated_at = $3 WHERE id = $1")
                .bind(error)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

const COLUMNS: &str = "id, from_backend, to_backend, names, keep_source, status, moved, skipped, failed, resumed, \
                       last_error, resource_version, created_at, updated_at";

fn decode(row: &AnyRow) -> DbResult<Record<MigrationState>> {
    let names: Option<String> = row.try_get("names")?;
    Ok(Record {
        name: row.try_get("id")?,
        spec: MigrationState {
            from: row.try_get("from_backend")?,
            to: row.try_get("to_backend")?,
            names: names.and_then(|n| serde_json::from_str(&n).ok()),
            keep_source: row.try_get::<i64, _>("keep_source")? != 0,
            status: row.try_get("status")?,
            moved: row.try_get("moved")?,
            skipped: row.try_get("skipped")?,
            failed: row.try_get("failed")?,
            resumed: row.try_get("resumed")?,
            last_error: row.try_get("last_error")?,
        },
        resource_version: row.try_get("resource_version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Every run, newest first.
pub async fn list(db: &Database) -> DbResult<Vec<Record<MigrationState>>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM migrations ORDER BY created_at DESC, id"))
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(decode).collect()
}

pub async fn get(db: &Database, id: &str) -> DbResult<Option<Record<MigrationState>>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM migrations WHERE id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(decode).transpose()
}

/// Runs that have not finished: after a restart, these were interrupted.
pub async fn unfinished(db: &Database) -> DbResult<Vec<Record<MigrationState>>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM migrations WHERE status = 'running' ORDER BY created_at"))
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(decode).collect()
}

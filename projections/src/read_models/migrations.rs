//! The `migrations` table: one row per secret migration run, with its counts and status.

use domain::migration::{MigrationEvent, MigrationStatus};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::change::{Cell, Change, Set, Table};
use super::page::{self, Order, Page};
use super::{ApplyError, Record, payload};
use crate::db::{Database, DbResult};
use crate::log::StoredEvent;

pub use wire::migration::MigrationState;

pub(crate) const TABLE: Table = Table { name: "migrations", key: "id" };

pub(crate) fn changes(event: &StoredEvent) -> Result<Vec<Change>, ApplyError> {
    let update = |mut set: Vec<(&'static str, Set)>| {
        set.push(("resource_version", Set::To(event.sequence.into())));
        set.push(("updated_at", Set::To(event.recorded_at.as_str().into())));
        Change::Update { table: TABLE, key: event.aggregate_id.clone(), set }
    };
    Ok(vec![match payload::<MigrationEvent>(event)? {
        MigrationEvent::MigrationStarted { from, to, names, keep_source } => Change::InsertNew {
            table: TABLE,
            row: vec![
                ("id", event.aggregate_id.as_str().into()),
                ("from_backend", from.as_str().into()),
                ("to_backend", to.as_str().into()),
                ("names", names.map(|n| serde_json::to_string(&n).expect("names serialise")).into()),
                ("keep_source", i64::from(keep_source).into()),
                ("status", MigrationStatus::Running.as_str().into()),
                ("moved", 0.into()),
                ("skipped", 0.into()),
                ("failed", 0.into()),
                ("resumed", 0.into()),
                ("last_error", Cell::Null),
                ("resource_version", event.sequence.into()),
                ("created_at", event.recorded_at.as_str().into()),
                ("updated_at", event.recorded_at.as_str().into()),
            ],
        },
        MigrationEvent::MigrationProgressed { moved, skipped } => {
            update(vec![("moved", Set::Add(moved.len() as i64)), ("skipped", Set::Add(skipped.len() as i64))])
        }
        MigrationEvent::MigrationResumed { .. } => {
            update(vec![("resumed", Set::Add(1)), ("status", Set::To(MigrationStatus::Running.as_str().into()))])
        }
        MigrationEvent::MigrationCompleted { failed, .. } => update(vec![
            ("status", Set::To(MigrationStatus::Completed.as_str().into())),
            ("failed", Set::To((failed as i64).into())),
        ]),
        MigrationEvent::MigrationFailed { secret, reason } => {
            let error = match secret {
                Some(secret) => format!("secret {secret:?}: {reason}"),
                None => reason,
            };
            update(vec![
                ("status", Set::To(MigrationStatus::Failed.as_str().into())),
                ("failed", Set::Add(1)),
                ("last_error", Set::To(error.into())),
            ])
        }
    }])
}

const COLUMNS: &str = "id, from_backend, to_backend, names, keep_source, status, moved, skipped, failed, resumed, \
                       last_error, resource_version, created_at, updated_at";

/// The stored status; one no release writes is a decode error, not a guess.
fn status(row: &AnyRow) -> DbResult<MigrationStatus> {
    let raw: String = row.try_get("status")?;
    MigrationStatus::parse(&raw).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: "status".into(),
        source: format!("unknown migration status {raw:?}").into(),
    })
}

fn decode(row: &AnyRow) -> DbResult<Record<MigrationState>> {
    let names: Option<String> = row.try_get("names")?;
    Ok(Record {
        name: row.try_get("id")?,
        spec: MigrationState {
            from: row.try_get("from_backend")?,
            to: row.try_get("to_backend")?,
            names: names.and_then(|n| serde_json::from_str(&n).ok()),
            keep_source: row.try_get::<i64, _>("keep_source")? != 0,
            status: status(row)?,
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

/// The order lists come in.
pub const ORDER: Order = Order::Newest;

/// Every run, newest first.
pub async fn list(db: &Database) -> DbResult<Vec<Record<MigrationState>>> {
    list_page(db, &Page::default()).await
}

/// One page of the list, newest first.
pub async fn list_page(db: &Database, page: &Page) -> DbResult<Vec<Record<MigrationState>>> {
    let (condition, values, order) = page::sql(ORDER, "id", "created_at", page, 1);
    let sql = format!("SELECT {COLUMNS} FROM migrations WHERE {condition} {order}");
    let rows = values.iter().fold(sqlx::query(&sql), |q, v| q.bind(v)).fetch_all(&db.pool).await?;
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

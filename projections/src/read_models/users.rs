//! The `users` table.

use domain::user::UserEvent;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{ApplyError, Record, payload};
use crate::db::{Database, DbResult};
use crate::log::StoredEvent;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserState {
    pub description: String,
}

pub(crate) async fn apply(conn: &mut AnyConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    match payload::<UserEvent>(event)? {
        UserEvent::UserCreated { description } => {
            sqlx::query(
                "INSERT INTO users (name, description, resource_version, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4) \
                 ON CONFLICT (name) DO UPDATE SET description = excluded.description, \
                   resource_version = excluded.resource_version, created_at = excluded.created_at, \
                   updated_at = excluded.updated_at",
            )
            .bind(&event.aggregate_id)
            .bind(&description)
            .bind(event.sequence)
            .bind(&event.recorded_at)
            .execute(&mut *conn)
            .await?;
        }
        UserEvent::UserDeleted {} => {
            sqlx::query("DELETE FROM users WHERE name = $1").bind(&event.aggregate_id).execute(&mut *conn).await?;
        }
    }
    Ok(())
}

const COLUMNS: &str = "name, description, resource_version, created_at, updated_at";

fn decode(row: &AnyRow) -> DbResult<Record<UserState>> {
    Ok(Record {
        name: row.try_get("name")?,
        spec: UserState { description: row.try_get("description")? },
        resource_version: row.try_get("resource_version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub async fn list(db: &Database) -> DbResult<Vec<Record<UserState>>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM users ORDER BY name")).fetch_all(&db.pool).await?;
    rows.iter().map(decode).collect()
}

pub async fn get(db: &Database, name: &str) -> DbResult<Option<Record<UserState>>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE name = $1"))
        .bind(name)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(decode).transpose()
}

/// Whether any user exists (an empty store is bootstrapped).
pub async fn any(db: &Database) -> DbResult<bool> {
    Ok(sqlx::query("SELECT name FROM users LIMIT 1").fetch_optional(&db.pool).await?.is_some())
}

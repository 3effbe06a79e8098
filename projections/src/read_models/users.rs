//! The `users` table.

use domain::user::UserEvent;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::change::{Change, Table};
use super::page::{self, Order, Page};
use super::{ApplyError, Record, payload};
use crate::db::{Database, DbResult};
use crate::log::StoredEvent;

pub use wire::user::UserState;

pub(crate) const TABLE: Table = Table { name: "users", key: "name" };

pub(crate) fn changes(event: &StoredEvent) -> Result<Vec<Change>, ApplyError> {
    Ok(vec![match payload::<UserEvent>(event)? {
        UserEvent::UserCreated { description } => Change::Upsert {
            table: TABLE,
            row: vec![
                ("name", event.aggregate_id.as_str().into()),
                ("description", description.into()),
                ("resource_version", event.sequence.into()),
                ("created_at", event.recorded_at.as_str().into()),
                ("updated_at", event.recorded_at.as_str().into()),
            ],
            keep: &[],
        },
        UserEvent::UserDeleted {} => Change::Delete { table: TABLE, key: event.aggregate_id.clone() },
    }])
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

/// The order lists come in.
pub const ORDER: Order = Order::Key;

pub async fn list(db: &Database) -> DbResult<Vec<Record<UserState>>> {
    list_page(db, &Page::default()).await
}

/// One page of the list, by name.
pub async fn list_page(db: &Database, page: &Page) -> DbResult<Vec<Record<UserState>>> {
    let (condition, values, order) = page::sql(ORDER, "name", "created_at", page, 1);
    let sql = format!("SELECT {COLUMNS} FROM users WHERE {condition} {order}");
    let rows = values.iter().fold(sqlx::query(&sql), |q, v| q.bind(v)).fetch_all(&db.pool).await?;
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

//! The `tokens` table: who each token belongs to, its hash, expiry and whether it was revoked;
//! never a token itself. `token_usage` (last use) is written by authentication, not here.

use domain::token::TokenEvent;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::change::{Change, Set, Table};
use super::page::{self, Order, Page};
use super::{ApplyError, Record, payload};
use crate::db::{Database, DbResult};
use crate::log::StoredEvent;

pub use wire::user::TokenState;

pub(crate) const TABLE: Table = Table { name: "tokens", key: "id" };

pub(crate) fn changes(event: &StoredEvent) -> Result<Vec<Change>, ApplyError> {
    Ok(vec![match payload::<TokenEvent>(event)? {
        TokenEvent::TokenIssued { user, hash, expires_at, description } => Change::InsertNew {
            table: TABLE,
            row: vec![
                ("id", event.aggregate_id.as_str().into()),
                ("user_name", user.as_str().into()),
                ("hash", hash.into()),
                ("expires_at", expires_at.into()),
                ("description", description.into()),
                ("revoked", 0.into()),
                ("resource_version", event.sequence.into()),
                ("created_at", event.recorded_at.as_str().into()),
                ("updated_at", event.recorded_at.as_str().into()),
            ],
        },
        TokenEvent::TokenRevoked {} => Change::Update {
            table: TABLE,
            key: event.aggregate_id.clone(),
            set: vec![
                ("revoked", Set::To(1.into())),
                ("resource_version", Set::To(event.sequence.into())),
                ("updated_at", Set::To(event.recorded_at.as_str().into())),
            ],
        },
    }])
}

const COLUMNS: &str = "t.id, t.user_name, t.hash, t.expires_at, t.description, t.revoked, t.resource_version, \
                       t.created_at, t.updated_at, u.last_used_at";
const FROM: &str = "tokens t LEFT JOIN token_usage u ON u.id = t.id";

fn decode(row: &AnyRow) -> DbResult<Record<TokenState>> {
    Ok(Record {
        name: row.try_get("id")?,
        spec: TokenState {
            user: row.try_get("user_name")?,
            hash: row.try_get("hash")?,
            expires_at: row.try_get("expires_at")?,
            description: row.try_get("description")?,
            revoked: row.try_get::<i64, _>("revoked")? != 0,
            last_used_at: row.try_get("last_used_at")?,
        },
        resource_version: row.try_get("resource_version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The order lists come in.
pub const ORDER: Order = Order::Oldest;

/// Every token that was not revoked, oldest first.
pub async fn list(db: &Database) -> DbResult<Vec<Record<TokenState>>> {
    list_page(db, &Page::default()).await
}

/// One page of the list, oldest first.
pub async fn list_page(db: &Database, page: &Page) -> DbResult<Vec<Record<TokenState>>> {
    let (condition, values, order) = page::sql(ORDER, "t.id", "t.created_at", page, 1);
    let sql = format!("SELECT {COLUMNS} FROM {FROM} WHERE t.revoked = 0 AND {condition} {order}");
    let rows = values.iter().fold(sqlx::query(&sql), |q, v| q.bind(v)).fetch_all(&db.pool).await?;
    rows.iter().map(decode).collect()
}

pub async fn get(db: &Database, id: &str) -> DbResult<Option<Record<TokenState>>> {
    let row =
        sqlx::query(&format!("SELECT {COLUMNS} FROM {FROM} WHERE t.id = $1")).bind(id).fetch_optional(&db.pool).await?;
    row.as_ref().map(decode).transpose()
}

/// Records that token `id` was used at `at` (RFC 3339).
pub async fn touch(db: &Database, id: &str, at: &str) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO token_usage (id, last_used_at) VALUES ($1, $2) \
         ON CONFLICT (id) DO UPDATE SET last_used_at = excluded.last_used_at",
    )
    .bind(id)
    .bind(at)
    .execute(&db.pool)
    .await?;
    Ok(())
}

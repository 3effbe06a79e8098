//! The `tokens` table: who each token belongs to, its hash, expiry and whether it was revoked;
//! never a token itself. `token_usage` (last use) is written by authentication, not here.

use domain::token::TokenEvent;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{ApplyError, Record, payload};
use crate::db::{Database, DbResult};
use crate::log::StoredEvent;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenState {
    pub user: String,
    #[serde(skip)]
    pub hash: String,
    pub expires_at: Option<String>,
    pub description: String,
    pub revoked: bool,
    pub last_used_at: Option<String>,
}

pub(crate) async fn apply(conn: &mut AnyConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    match payload::<TokenEvent>(event)? {
        TokenEvent::TokenIssued { user, hash, expires_at, description } => {
            sqlx::query(
                "INSERT INTO tokens (id, user_name, hash, expires_at, description, revoked, resource_version, \
                                     created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $7) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&event.aggregate_id)
            .bind(user.as_str())
            .bind(&hash)
            .bind(expires_at)
            .bind(&description)
            .bind(event.sequence)
            .bind(&event.recorded_at)
            .execute(&mut *conn)
            .await?;
        }
        TokenEvent::TokenRevoked {} => {
            sqlx::query("UPDATE tokens SET revoked = 1, resource_version = $2, updated_at = $3 WHERE id = $1")
                .bind(&event.aggregate_id)
                .bind(event.sequence)
                .bind(&event.recorded_at)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
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

/// Every token that was not revoked, oldest first.
pub async fn list(db: &Database) -> DbResult<Vec<Record<TokenState>>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM {FROM} WHERE t.revoked = 0 ORDER BY t.created_at, t.id"))
        .fetch_all(&db.pool)
        .await?;
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

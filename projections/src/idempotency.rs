//! The `idempotency_keys` table: which write an `Idempotency-Key` belongs to. The append that
//! records a write's events claims its key in the same transaction ([`claim`]), so the claim
//! exists exactly when the change does; the answer is added once it is known ([`store_answer`]).

use sqlx::{AnyConnection, Row};

use std::collections::HashMap;

use crate::db::{Database, DbResult};

/// A claimed key: the request that claimed it, and its answer once stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub request_hash: String,
    pub request_id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub answer: Option<Answer>,
}

/// A stored answer to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub location: Option<String>,
    pub body: Option<String>,
}

/// Claims the key an append's first event's `metadata` carries (if any) for its request, on
/// the aggregate it writes, inside the append's transaction. Several appends of one request
/// share the claim; `false` when another request holds it (the append then fails whole).
/// Whether a write with `metadata` claims an `Idempotency-Key` ([`claim`] then has work to do).
pub(crate) fn claims(metadata: &HashMap<String, String>) -> bool {
    metadata.contains_key(domain_keys::IDEMPOTENCY_KEY)
}

pub(crate) async fn claim(
    conn: &mut AnyConnection,
    metadata: &HashMap<String, String>,
    aggregate: (&str, &str),
) -> DbResult<bool> {
    let meta = |k: &str| metadata.get(k);
    let (Some(key), Some(hash), Some(actor), Some(request_id)) = (
        meta(domain_keys::IDEMPOTENCY_KEY),
        meta(domain_keys::REQUEST_HASH),
        meta(domain_keys::ACTOR),
        meta(domain_keys::REQUEST_ID),
    ) else {
        return Ok(true);
    };
    sqlx::query(
        "INSERT INTO idempotency_keys (actor, idempotency_key, request_hash, request_id, aggregate_type, aggregate_id, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (actor, idempotency_key) DO NOTHING",
    )
    .bind(actor)
    .bind(key)
    .bind(hash)
    .bind(request_id)
    .bind(aggregate.0)
    .bind(aggregate.1)
    .bind(now())
    .execute(&mut *conn)
    .await?;
    let owner: String =
        sqlx::query("SELECT request_id FROM idempotency_keys WHERE actor = $1 AND idempotency_key = $2")
            .bind(actor)
            .bind(key)
            .fetch_one(&mut *conn)
            .await?
            .try_get("request_id")?;
    Ok(&owner == request_id)
}

/// Now, as the table's `created_at` holds it (fixed width, so that text compares as time).
pub fn now() -> String {
    stamp(jiff::Timestamp::now())
}

/// `at` as the table's `created_at` holds it.
pub fn stamp(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The metadata keys, as the domain names them (this crate does not depend on the API).
mod domain_keys {
    pub use domain::metadata::{ACTOR, IDEMPOTENCY_KEY, REQUEST_HASH, REQUEST_ID};
}

/// `actor`'s claim of `key`, if there is one younger than `since` (RFC 3339).
pub async fn lookup(db: &Database, actor: &str, key: &str, since: &str) -> DbResult<Option<Claim>> {
    let row = sqlx::query(
        "SELECT request_hash, request_id, aggregate_type, aggregate_id, status, content_type, location, body \
         FROM idempotency_keys WHERE actor = $1 AND idempotency_key = $2 AND created_at >= $3",
    )
    .bind(actor)
    .bind(key)
    .bind(since)
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let status: Option<i64> = row.try_get("status")?;
    Ok(Some(Claim {
        request_hash: row.try_get("request_hash")?,
        request_id: row.try_get("request_id")?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        answer: match status {
            Some(status) => Some(Answer {
                status: u16::try_from(status).unwrap_or(200),
                content_type: row.try_get("content_type")?,
                location: row.try_get("location")?,
                body: row.try_get("body")?,
            }),
            None => None,
        },
    }))
}

/// Stores the answer of the request that claimed `actor`'s `key`.
pub async fn store_answer(db: &Database, actor: &str, key: &str, request_id: &str, answer: &Answer) -> DbResult<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET status = $1, content_type = $2, location = $3, body = $4 \
         WHERE actor = $5 AND idempotency_key = $6 AND request_id = $7",
    )
    .bind(i64::from(answer.status))
    .bind(answer.content_type.as_deref())
    .bind(answer.location.as_deref())
    .bind(answer.body.as_deref())
    .bind(actor)
    .bind(key)
    .bind(request_id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Forgets claims older than `before` (RFC 3339); how many went.
pub async fn expire(db: &Database, before: &str) -> DbResult<u64> {
    let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1").bind(before).execute(&db.pool).await?;
    Ok(done.rows_affected())
}

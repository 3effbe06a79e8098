//! The `llms` table: one row per live Llm, with the referenced secret in its own columns so
//! "which Llms use this Secret" is an indexed query.

use std::collections::BTreeMap;

use domain::ResourceName;
use domain::llm::{LlmEvent, LlmSpec, LlmType, SecretKeyRef, Tier};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::change::{Change, Table};
use super::page::{self, Order, Page};
use super::{ApplyError, Record, corrupt, payload};
use crate::db::{Database, DbResult};
use crate::log::StoredEvent;

pub(crate) const TABLE: Table = Table { name: "llms", key: "name" };

pub(crate) fn changes(event: &StoredEvent) -> Result<Vec<Change>, ApplyError> {
    Ok(vec![match payload::<LlmEvent>(event)? {
        LlmEvent::LlmCreated { spec } | LlmEvent::LlmUpdated { spec } => {
            let (secret, key) = spec.api_key_ref.as_ref().map(|r| (r.name.as_str().to_owned(), r.key.clone())).unzip();
            Change::Upsert {
                table: TABLE,
                row: vec![
                    ("name", event.aggregate_id.as_str().into()),
                    ("type", spec.provider.as_str().into()),
                    ("model", spec.model.into()),
                    ("url", spec.url.into()),
                    ("tier", spec.tier.as_str().into()),
                    ("description", spec.description.into()),
                    ("api_key_secret", secret.into()),
                    ("api_key_key", key.into()),
                    ("extra", serde_json::to_string(&spec.extra).expect("a string map serialises").into()),
                    ("resource_version", event.sequence.into()),
                    ("created_at", event.recorded_at.as_str().into()),
                    ("updated_at", event.recorded_at.as_str().into()),
                ],
                keep: &["created_at"],
            }
        }
        LlmEvent::LlmDeleted {} => Change::Delete { table: TABLE, key: event.aggregate_id.clone() },
    }])
}

const COLUMNS: &str = "name, type, model, url, tier, description, api_key_secret, api_key_key, extra, \
                       resource_version, created_at, updated_at";

fn decode(row: &AnyRow) -> DbResult<Record<LlmSpec>> {
    let provider: String = row.try_get("type")?;
    let tier: String = row.try_get("tier")?;
    let secret: Option<String> = row.try_get("api_key_secret")?;
    let key: Option<String> = row.try_get("api_key_key")?;
    let extra: String = row.try_get("extra")?;
    let api_key_ref = match secret.zip(key) {
        Some((secret, key)) => Some(SecretKeyRef {
            name: ResourceName::parse(&secret).map_err(|_| corrupt("api_key_secret", &secret))?,
            key,
        }),
        None => None,
    };
    Ok(Record {
        name: row.try_get("name")?,
        spec: LlmSpec {
            provider: LlmType::parse(&provider).ok_or_else(|| corrupt("type", &provider))?,
            model: row.try_get("model")?,
            url: row.try_get("url")?,
            tier: Tier::parse(&tier).ok_or_else(|| corrupt("tier", &tier))?,
            description: row.try_get("description")?,
            api_key_ref,
            extra: serde_json::from_str::<BTreeMap<String, String>>(&extra).map_err(|_| corrupt("extra", &extra))?,
        },
        resource_version: row.try_get("resource_version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The order lists come in.
pub const ORDER: Order = Order::Key;

/// Every Llm, by name.
pub async fn list(db: &Database) -> DbResult<Vec<Record<LlmSpec>>> {
    list_page(db, &Page::default()).await
}

/// One page of the list, by name.
pub async fn list_page(db: &Database, page: &Page) -> DbResult<Vec<Record<LlmSpec>>> {
    let (condition, values, order) = page::sql(ORDER, "name", "created_at", page, 1);
    let sql = format!("SELECT {COLUMNS} FROM llms WHERE {condition} {order}");
    let rows = values.iter().fold(sqlx::query(&sql), |q, v| q.bind(v)).fetch_all(&db.pool).await?;
    rows.iter().map(decode).collect()
}

pub async fn get(db: &Database, name: &str) -> DbResult<Option<Record<LlmSpec>>> {
    let row =
        sqlx::query(&format!("SELECT {COLUMNS} FROM llms WHERE name = $1")).bind(name).fetch_optional(&db.pool).await?;
    row.as_ref().map(decode).transpose()
}

/// The Llms whose apiKeyRef names `secret`, with the key each uses, by Llm name.
pub async fn using_secret(db: &Database, secret: &str) -> DbResult<Vec<(String, String)>> {
    let rows = sqlx::query("SELECT name, api_key_key FROM llms WHERE api_key_secret = $1 ORDER BY name")
        .bind(secret)
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(|r| Ok((r.try_get("name")?, r.try_get("api_key_key")?))).collect()
}

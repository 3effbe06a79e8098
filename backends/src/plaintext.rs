//! The `plaintext` backend: values in mcpd's own database, in a mutable table outside the event
//! log. Each write is a new row under a fresh `value_ref`.

use std::collections::BTreeMap;

use anyhow::Context;
use domain::secret::SecretData;
use futures::FutureExt;
use futures::future::BoxFuture;
use projections::Database;
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;

use super::{BackendResult, Health, SecretBackendDriver, Written};

pub struct PlaintextDriver {
    db: Database,
}

impl PlaintextDriver {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

impl SecretBackendDriver for PlaintextDriver {
    fn put<'a>(
        &'a self,
        secret: &'a str,
        data: &'a SecretData,
        _: Option<&'a str>,
    ) -> BoxFuture<'a, BackendResult<Written>> {
        async move { Ok(Written { value_ref: put(&self.db, secret, data).await?, external_ref: None }) }.boxed()
    }

    fn get<'a>(&'a self, _: &'a str, value_ref: &'a str) -> BoxFuture<'a, BackendResult<Option<SecretData>>> {
        async move { Ok(get(&self.db, value_ref).await?) }.boxed()
    }

    fn get_many<'a>(&'a self, items: &'a [(String, String)]) -> BoxFuture<'a, Vec<BackendResult<Option<SecretData>>>> {
        async move {
            let refs: Vec<String> = items.iter().map(|(_, value_ref)| value_ref.clone()).collect();
            match get_many(&self.db, &refs).await {
                Ok(mut found) => items.iter().map(|(_, value_ref)| Ok(found.remove(value_ref))).collect(),
                Err(e) => {
                    let reason = format!("{e:#}");
                    items.iter().map(|_| Err(anyhow::anyhow!(reason.clone()).into())).collect()
                }
            }
        }
        .boxed()
    }

    fn discard<'a>(&'a self, _: &'a str, value_ref: &'a str) -> BoxFuture<'a, BackendResult<()>> {
        async move { Ok(delete(&self.db, value_ref).await?) }.boxed()
    }

    fn delete<'a>(&'a self, _: &'a str, value_ref: &'a str) -> BoxFuture<'a, BackendResult<()>> {
        async move { Ok(delete(&self.db, value_ref).await?) }.boxed()
    }

    fn delete_many<'a>(&'a self, items: &'a [(String, String)]) -> BoxFuture<'a, Vec<BackendResult<()>>> {
        async move {
            // One statement, one commit, for a whole batch.
            let placeholders: Vec<String> = (1..=items.len()).map(|i| format!("${i}")).collect();
            let sql = format!("DELETE FROM plaintext_secret_values WHERE value_ref IN ({})", placeholders.join(", "));
            let mut query = sqlx::query(&sql);
            for (_, value_ref) in items {
                query = query.bind(value_ref);
            }
            match query.execute(&self.db.pool).await {
                Ok(_) => items.iter().map(|_| Ok(())).collect(),
                Err(e) => {
                    let reason = format!("deleting values from mcpd's database: {e}");
                    items.iter().map(|_| Err(anyhow::anyhow!(reason.clone()).into())).collect()
                }
            }
        }
        .boxed()
    }

    fn health(&self) -> BoxFuture<'_, Health> {
        async move {
            match sqlx::query("SELECT 1 AS one").fetch_one(&self.db.pool).await {
                Ok(_) => Health::ok("values are stored in mcpd's database"),
                Err(e) => Health { status: crate::HealthStatus::Error, message: format!("mcpd's database: {e}") },
            }
        }
        .boxed()
    }
}

/// Writes a new version of `secret`'s values and returns where they are.
pub async fn put(db: &Database, secret: &str, data: &SecretData) -> anyhow::Result<String> {
    let value_ref = uuid::Uuid::new_v4().to_string();
    let exposed: BTreeMap<&str, &str> = data.iter().map(|(k, v)| (k.as_str(), v.expose_secret())).collect();
    let text = serde_json::to_string(&exposed)?;
    sqlx::query("INSERT INTO plaintext_secret_values (value_ref, secret, data) VALUES ($1, $2, $3)")
        .bind(&value_ref)
        .bind(secret)
        .bind(text)
        .execute(&db.pool)
        .await
        .with_context(|| format!("storing the values of secret {secret:?}"))?;
    Ok(value_ref)
}

/// Reads the values stored under `value_ref`.
pub async fn get(db: &Database, value_ref: &str) -> anyhow::Result<Option<SecretData>> {
    let row = sqlx::query("SELECT data FROM plaintext_secret_values WHERE value_ref = $1")
        .bind(value_ref)
        .fetch_optional(&db.pool)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let text: String = row.try_get("data")?;
    Ok(Some(decode_values(value_ref, &text)?))
}

fn decode_values(value_ref: &str, text: &str) -> anyhow::Result<SecretData> {
    // The parse error is dropped on purpose: serde's messages can quote the input.
    let map: BTreeMap<String, String> = serde_json::from_str(text)
        .map_err(|_| anyhow::anyhow!("the stored values under {value_ref} are not a JSON string map"))?;
    Ok(map.into_iter().map(|(k, v)| (k, SecretString::from(v))).collect())
}

/// The values stored under several `value_ref`s, in one query; missing ones are not in the map.
pub async fn get_many(
    db: &Database,
    value_refs: &[String],
) -> anyhow::Result<std::collections::HashMap<String, SecretData>> {
    if value_refs.is_empty() {
        return Ok(Default::default());
    }
    let placeholders: Vec<String> = (1..=value_refs.len()).map(|i| format!("${i}")).collect();
    let sql =
        format!("SELECT value_ref, data FROM plaintext_secret_values WHERE value_ref IN ({})", placeholders.join(", "));
    let mut query = sqlx::query(&sql);
    for value_ref in value_refs {
        query = query.bind(value_ref);
    }
    let mut found = std::collections::HashMap::new();
    for row in query.fetch_all(&db.pool).await? {
        let value_ref: String = row.try_get("value_ref")?;
        let text: String = row.try_get("data")?;
        found.insert(value_ref.clone(), decode_values(&value_ref, &text)?);
    }
    Ok(found)
}

/// Deletes the values stored under `value_ref`, if any.
pub async fn delete(db: &Database, value_ref: &str) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM plaintext_secret_values WHERE value_ref = $1").bind(value_ref).execute(&db.pool).await?;
    Ok(())
}

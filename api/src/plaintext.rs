//! The `plaintext` backend's value store: a mutable table outside the event log. Each write of
//! a secret's data is a new row under a fresh `value_ref`, written before the event that names
//! it; a crash in between leaves an unreferenced row, never an event naming missing values.

use std::collections::BTreeMap;

use domain::secret::SecretData;
use projections::Database;
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;

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
        .map_err(|e| anyhow::Error::new(e).context(format!("storing the values of secret {secret:?}")))?;
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
    // The parse error is dropped on purpose: serde's messages can quote the input.
    let map: BTreeMap<String, String> = serde_json::from_str(&text)
        .map_err(|_| anyhow::anyhow!("the stored values under {value_ref} are not a JSON string map"))?;
    Ok(Some(map.into_iter().map(|(k, v)| (k, SecretString::from(v))).collect()))
}

/// Deletes the values stored under `value_ref`, if any.
pub async fn delete(db: &Database, value_ref: &str) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM plaintext_secret_values WHERE value_ref = $1")
        .bind(value_ref)
        .execute(&db.pool)
        .await?;
    Ok(())
}

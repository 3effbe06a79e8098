//! The `secrets` table: key names, data version and where the values are; never the values.

use domain::ResourceName;
use domain::secret::SecretEvent;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{ApplyError, Record, corrupt, payload};
use crate::db::{Database, DbResult};
use crate::log::StoredEvent;

/// What the read model knows of a Secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretState {
    pub backend: ResourceName,
    pub description: String,
    pub keys: Vec<String>,
    pub data_version: i64,
    /// Which version of the values is current; internal, not part of the document.
    #[serde(skip)]
    pub value_ref: String,
    /// Where an external backend keeps the values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_ref: Option<String>,
}

pub(crate) async fn apply(conn: &mut AnyConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    match payload::<SecretEvent>(event)? {
        SecretEvent::SecretCreated { backend, description, keys, data_version, value_ref, external_ref } => {
            sqlx::query(
                "INSERT INTO secrets (name, backend, description, keys, data_version, value_ref, external_ref, \
                                      resource_version, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
                 ON CONFLICT (name) DO UPDATE SET backend = excluded.backend, description = excluded.description, \
                   keys = excluded.keys, data_version = excluded.data_version, value_ref = excluded.value_ref, \
                   external_ref = excluded.external_ref, resource_version = excluded.resource_version, \
                   created_at = excluded.created_at, updated_at = excluded.updated_at",
            )
            .bind(&event.aggregate_id)
            .bind(backend.as_str())
            .bind(&description)
            .bind(serde_json::to_string(&keys).expect("a list of strings serialises"))
            .bind(data_version as i64)
            .bind(&value_ref)
            .bind(external_ref)
            .bind(event.sequence)
            .bind(&event.recorded_at)
            .execute(&mut *conn)
            .await?;
        }
        SecretEvent::SecretUpdated { description, keys, data_version, value_ref, external_ref, .. } => {
            sqlx::query(
                "UPDATE secrets SET description = $2, keys = $3, data_version = $4, value_ref = $5, \
                   external_ref = $6, resource_version = $7, updated_at = $8 WHERE name = $1",
            )
            .bind(&event.aggregate_id)
            .bind(&description)
            .bind(serde_json::to_string(&keys).expect("a list of strings serialises"))
            .bind(data_version as i64)
            .bind(&value_ref)
            .bind(external_ref)
            .bind(event.sequence)
            .bind(&event.recorded_at)
            .execute(&mut *conn)
            .await?;
        }
        SecretEvent::SecretMigrated { to, value_ref, external_ref, .. } => {
            sqlx::query(
                "UPDATE secrets SET backend = $2, value_ref = $3, external_ref = $4, resource_version = $5, \
                   updated_at = $6 WHERE name = $1",
            )
            .bind(&event.aggregate_id)
            .bind(to.as_str())
            .bind(&value_ref)
            .bind(external_ref)
            .bind(event.sequence)
            .bind(&event.recorded_at)
            .execute(&mut *conn)
            .await?;
        }
        SecretEvent::SecretSourceDeleted { .. } | SecretEvent::SecretSourceDeleteFailed { .. } => {
            sqlx::query("UPDATE secrets SET resource_version = $2, updated_at = $3 WHERE name = $1")
                .bind(&event.aggregate_id)
                .bind(event.sequence)
                .bind(&event.recorded_at)
                .execute(&mut *conn)
                .await?;
        }
        SecretEvent::SecretDeleted {} => {
            sqlx::query("DELETE FROM secrets WHERE name = $1").bind(&event.aggregate_id).execute(&mut *conn).await?;
        }
    }
    Ok(())
}

const COLUMNS: &str =
    "name, backend, description, keys, data_version, value_ref, external_ref, resource_version, created_at, updated_at";

fn decode(row: &AnyRow) -> DbResult<Record<SecretState>> {
    let backend: String = row.try_get("backend")?;
    let keys: String = row.try_get("keys")?;
    Ok(Record {
        name: row.try_get("name")?,
        spec: SecretState {
            backend: ResourceName::parse(&backend).map_err(|_| corrupt("backend", &backend))?,
            description: row.try_get("description")?,
            keys: serde_json::from_str(&keys).map_err(|_| corrupt("keys", &keys))?,
            data_version: row.try_get("data_version")?,
            value_ref: row.try_get("value_ref")?,
            external_ref: row.try_get("external_ref")?,
        },
        resource_version: row.try_get("resource_version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub async fn list(db: &Database) -> DbResult<Vec<Record<SecretState>>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM secrets ORDER BY name")).fetch_all(&db.pool).await?;
    rows.iter().map(decode).collect()
}

pub async fn get(db: &Database, name: &str) -> DbResult<Option<Record<SecretState>>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM secrets WHERE name = $1"))
        .bind(name)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(decode).transpose()
}

/// Several secrets by name, in one query; names that do not exist are missing from the map.
pub async fn get_many(
    db: &Database,
    names: &[String],
) -> DbResult<std::collections::HashMap<String, Record<SecretState>>> {
    if names.is_empty() {
        return Ok(Default::default());
    }
    let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
    let sql = format!("SELECT {COLUMNS} FROM secrets WHERE name IN ({})", placeholders.join(", "));
    let mut query = sqlx::query(&sql);
    for name in names {
        query = query.bind(name);
    }
    let rows = query.fetch_all(&db.pool).await?;
    rows.iter().map(|row| decode(row).map(|record| (record.name.clone(), record))).collect()
}

/// The secrets stored on `backend`, by name.
pub async fn on_backend(db: &Database, backend: &str) -> DbResult<Vec<String>> {
    let rows = sqlx::query("SELECT name FROM secrets WHERE backend = $1 ORDER BY name")
        .bind(backend)
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(|r| r.try_get("name")).collect()
}

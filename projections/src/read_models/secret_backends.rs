//! The `secret_backends` table.

use domain::secret_backend::{BackendType, OpenBaoConfig, SecretBackendEvent, SecretBackendSpec};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{ApplyError, Record, corrupt, payload};
use crate::db::{Database, DbResult};
use crate::log::StoredEvent;

pub(crate) async fn apply(conn: &mut AnyConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    match payload::<SecretBackendEvent>(event)? {
        SecretBackendEvent::SecretBackendCreated { spec } | SecretBackendEvent::SecretBackendUpdated { spec } => {
            let config = spec
                .config
                .as_ref()
                .map(|c| serde_json::to_string(c).expect("a config serialises"));
            sqlx::query(
                "INSERT INTO secret_backends (name, type, description, is_default, config, resource_version, \
                                              created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
                 ON CONFLICT (name) DO UPDATE SET type = excluded.type, description = excluded.description, \
                   is_default = excluded.is_default, config = excluded.config, \
                   resource_version = excluded.resource_version, updated_at = excluded.updated_at",
            )
            .bind(&event.aggregate_id)
            .bind(spec.backend_type.as_str())
            .bind(&spec.description)
            .bind(i64::from(spec.is_default))
            .bind(config)
            .bind(event.sequence)
            .bind(&event.recorded_at)
            .execute(&mut *conn)
            .await?;
        }
        SecretBackendEvent::SecretBackendDeleted {} => {
            sqlx::query("DELETE FROM secret_backends WHERE name = $1")
                .bind(&event.aggregate_id)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

const COLUMNS: &str = "name, type, description, is_default, config, resource_version, created_at, updated_at";

fn decode(row: &AnyRow) -> DbResult<Record<SecretBackendSpec>> {
    let backend_type: String = row.try_get("type")?;
    let config: Option<String> = row.try_get("config")?;
    let config = match config {
        Some(text) => Some(serde_json::from_str::<OpenBaoConfig>(&text).map_err(|_| corrupt("config", &text))?),
        None => None,
    };
    Ok(Record {
        name: row.try_get("name")?,
        spec: SecretBackendSpec {
            backend_type: BackendType::parse(&backend_type).ok_or_else(|| corrupt("type", &backend_type))?,
            description: row.try_get("description")?,
            is_default: row.try_get::<i64, _>("is_default")? != 0,
            config,
        },
        resource_version: row.try_get("resource_version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub async fn list(db: &Database) -> DbResult<Vec<Record<SecretBackendSpec>>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM secret_backends ORDER BY name"))
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(decode).collect()
}

pub async fn get(db: &Database, name: &str) -> DbResult<Option<Record<SecretBackendSpec>>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM secret_backends WHERE name = $1"))
        .bind(name)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(decode).transpose()
}

/// The backend new secrets go to when they name none.
pub async fn current_default(db: &Database) -> DbResult<Option<String>> {
    let row = sqlx::query("SELECT name FROM secret_backends WHERE is_default = 1 ORDER BY name LIMIT 1")
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| r.try_get("name")).transpose()
}

//! The `secret_backends` table, fed by two aggregates: each backend's own events, and the
//! `defaultbackend` singleton whose events move the `is_default` flag.

use domain::default_backend::DefaultBackendEvent;
use domain::secret_backend::{BackendType, OpenBaoConfig, SecretBackendEvent, SecretBackendSpec};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{ApplyError, Record, corrupt, payload};
use crate::db::{Database, DbResult};
use crate::log::StoredEvent;

/// A backend as the read model knows it: its spec, and whether it is the default.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendState {
    #[serde(flatten)]
    pub spec: SecretBackendSpec,
    pub is_default: bool,
}

pub(crate) async fn apply(conn: &mut AnyConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    match payload::<SecretBackendEvent>(event)? {
        SecretBackendEvent::SecretBackendCreated { spec } | SecretBackendEvent::SecretBackendUpdated { spec } => {
            let config = spec.config.as_ref().map(|c| serde_json::to_string(c).expect("a config serialises"));
            let (token_secret, token_key) = spec
                .config
                .as_ref()
                .map(|c| (c.token_secret_ref.name.to_string(), c.token_secret_ref.key.clone()))
                .unzip();
            sqlx::query(
                "INSERT INTO secret_backends (name, type, description, is_default, config, token_secret, token_key, \
                                              resource_version, created_at, updated_at) \
                 VALUES ($1, $2, $3, 0, $4, $5, $6, $7, $8, $8) \
                 ON CONFLICT (name) DO UPDATE SET type = excluded.type, description = excluded.description, \
                   config = excluded.config, token_secret = excluded.token_secret, token_key = excluded.token_key, \
                   resource_version = excluded.resource_version, updated_at = excluded.updated_at",
            )
            .bind(&event.aggregate_id)
            .bind(spec.backend_type.as_str())
            .bind(&spec.description)
            .bind(config)
            .bind(token_secret)
            .bind(token_key)
            .bind(event.sequence)
            .bind(&event.recorded_at)
            .execute(&mut *conn)
            .await?;
            // Version 1 of these events carried the default flag in the spec.
            if event.event_version == "1"
                && event.payload.pointer("/SecretBackendCreated/spec/isDefault") == Some(&true.into())
            {
                mark_default(conn, &event.aggregate_id).await?;
            }
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

pub(crate) async fn apply_default(conn: &mut AnyConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    let DefaultBackendEvent::DefaultBackendSet { to, .. } = payload::<DefaultBackendEvent>(event)?;
    mark_default(conn, to.as_str()).await?;
    Ok(())
}

async fn mark_default(conn: &mut AnyConnection, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE secret_backends SET is_default = CASE WHEN name = $1 THEN 1 ELSE 0 END")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

const COLUMNS: &str = "name, type, description, is_default, config, resource_version, created_at, updated_at";

fn decode(row: &AnyRow) -> DbResult<Record<BackendState>> {
    let backend_type: String = row.try_get("type")?;
    let config: Option<String> = row.try_get("config")?;
    let config = match config {
        Some(text) => Some(serde_json::from_str::<OpenBaoConfig>(&text).map_err(|_| corrupt("config", &text))?),
        None => None,
    };
    Ok(Record {
        name: row.try_get("name")?,
        spec: BackendState {
            spec: SecretBackendSpec {
                backend_type: BackendType::parse(&backend_type).ok_or_else(|| corrupt("type", &backend_type))?,
                description: row.try_get("description")?,
                config,
            },
            is_default: row.try_get::<i64, _>("is_default")? != 0,
        },
        resource_version: row.try_get("resource_version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub async fn list(db: &Database) -> DbResult<Vec<Record<BackendState>>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM secret_backends ORDER BY name")).fetch_all(&db.pool).await?;
    rows.iter().map(decode).collect()
}

pub async fn get(db: &Database, name: &str) -> DbResult<Option<Record<BackendState>>> {
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

/// The backends whose token is a key of `secret`, with that key, by backend name.
pub async fn using_token_secret(db: &Database, secret: &str) -> DbResult<Vec<(String, String)>> {
    let rows = sqlx::query("SELECT name, token_key FROM secret_backends WHERE token_secret = $1 ORDER BY name")
        .bind(secret)
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(|r| Ok((r.try_get("name")?, r.try_get("token_key")?))).collect()
}

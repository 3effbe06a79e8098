//! The `secret_backends` table, fed by two aggregates: each backend's own events, and the
//! `defaultbackend` singleton whose events move the `is_default` flag.

use domain::default_backend::DefaultBackendEvent;
use domain::secret_backend::{BackendType, OpenBaoConfig, SecretBackendEvent, SecretBackendSpec};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::change::{Change, Table};
use super::page::{self, Order, Page};
use super::{ApplyError, Record, corrupt, payload};
use crate::db::{Database, DbResult};
use crate::log::StoredEvent;

pub use wire::secret_backend::BackendState;

pub(crate) const TABLE: Table = Table { name: "secret_backends", key: "name" };

pub(crate) fn changes(event: &StoredEvent) -> Result<Vec<Change>, ApplyError> {
    Ok(match payload::<SecretBackendEvent>(event)? {
        SecretBackendEvent::SecretBackendCreated { spec } | SecretBackendEvent::SecretBackendUpdated { spec } => {
            let config = spec.config.as_ref().map(|c| serde_json::to_string(c).expect("a config serialises"));
            let (token_secret, token_key) = spec
                .config
                .as_ref()
                .map(|c| (c.token_secret_ref.name.to_string(), c.token_secret_ref.key.clone()))
                .unzip();
            let mut changes = vec![Change::Upsert {
                table: TABLE,
                row: vec![
                    ("name", event.aggregate_id.as_str().into()),
                    ("type", spec.backend_type.as_str().into()),
                    ("description", spec.description.into()),
                    ("is_default", 0.into()),
                    ("config", config.into()),
                    ("token_secret", token_secret.into()),
                    ("token_key", token_key.into()),
                    ("resource_version", event.sequence.into()),
                    ("created_at", event.recorded_at.as_str().into()),
                    ("updated_at", event.recorded_at.as_str().into()),
                ],
                keep: &["is_default", "created_at"],
            }];
            // Version 1 of these events carried the default flag in the spec.
            if event.event_version == "1"
                && payload::<serde_json::Value>(event)?.pointer("/SecretBackendCreated/spec/isDefault")
                    == Some(&true.into())
            {
                changes.push(mark_default(&event.aggregate_id));
            }
            changes
        }
        SecretBackendEvent::SecretBackendDeleted {} => {
            vec![Change::Delete { table: TABLE, key: event.aggregate_id.clone() }]
        }
    })
}

pub(crate) fn default_changes(event: &StoredEvent) -> Result<Vec<Change>, ApplyError> {
    let DefaultBackendEvent::DefaultBackendSet { to, .. } = payload::<DefaultBackendEvent>(event)?;
    Ok(vec![mark_default(to.as_str())])
}

fn mark_default(name: &str) -> Change {
    Change::Only { table: TABLE, key: name.to_owned(), column: "is_default" }
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

/// The order lists come in.
pub const ORDER: Order = Order::Key;

pub async fn list(db: &Database) -> DbResult<Vec<Record<BackendState>>> {
    list_page(db, &Page::default()).await
}

/// One page of the list, by name.
pub async fn list_page(db: &Database, page: &Page) -> DbResult<Vec<Record<BackendState>>> {
    let (condition, values, order) = page::sql(ORDER, "name", "created_at", page, 1);
    let sql = format!("SELECT {COLUMNS} FROM secret_backends WHERE {condition} {order}");
    let rows = values.iter().fold(sqlx::query(&sql), |q, v| q.bind(v)).fetch_all(&db.pool).await?;
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

//! The `secrets` table: key names, data version and where the values are; never the values.

use domain::ResourceName;
use domain::secret::SecretEvent;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::change::{Change, Set, Table};
use super::page::{self, Order, Page};
use super::{ApplyError, Record, corrupt, payload};
use crate::db::{Database, DbResult};
use crate::log::StoredEvent;

pub use wire::secret::SecretState;

pub(crate) const TABLE: Table = Table { name: "secrets", key: "name" };

pub(crate) fn changes(event: &StoredEvent) -> Result<Vec<Change>, ApplyError> {
    let key = || event.aggregate_id.clone();
    let keys_json = |keys: &[String]| serde_json::to_string(keys).expect("a list of strings serialises");
    let touched = |mut set: Vec<(&'static str, Set)>| {
        set.push(("resource_version", Set::To(event.sequence.into())));
        set.push(("updated_at", Set::To(event.recorded_at.as_str().into())));
        Change::Update { table: TABLE, key: key(), set }
    };
    Ok(vec![match payload::<SecretEvent>(event)? {
        SecretEvent::SecretCreated { backend, description, keys, data_version, value_ref, external_ref } => {
            Change::Upsert {
                table: TABLE,
                row: vec![
                    ("name", key().into()),
                    ("backend", backend.as_str().into()),
                    ("description", description.into()),
                    ("keys", keys_json(&keys).into()),
                    ("data_version", (data_version as i64).into()),
                    ("value_ref", value_ref.into()),
                    ("external_ref", external_ref.into()),
                    ("resource_version", event.sequence.into()),
                    ("created_at", event.recorded_at.as_str().into()),
                    ("updated_at", event.recorded_at.as_str().into()),
                ],
                keep: &[],
            }
        }
        SecretEvent::SecretUpdated { description, keys, data_version, value_ref, external_ref, .. } => touched(vec![
            ("description", Set::To(description.into())),
            ("keys", Set::To(keys_json(&keys).into())),
            ("data_version", Set::To((data_version as i64).into())),
            ("value_ref", Set::To(value_ref.into())),
            ("external_ref", Set::To(external_ref.into())),
        ]),
        SecretEvent::SecretMigrated { to, value_ref, external_ref, .. } => touched(vec![
            ("backend", Set::To(to.as_str().into())),
            ("value_ref", Set::To(value_ref.into())),
            ("external_ref", Set::To(external_ref.into())),
        ]),
        SecretEvent::SecretSourceDeleted { .. } | SecretEvent::SecretSourceDeleteFailed { .. } => touched(vec![]),
        SecretEvent::SecretDeleted {} => Change::Delete { table: TABLE, key: key() },
    }])
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

/// The order lists come in.
pub const ORDER: Order = Order::Key;

pub async fn list(db: &Database) -> DbResult<Vec<Record<SecretState>>> {
    list_page(db, &Page::default()).await
}

/// One page of the list, by name.
pub async fn list_page(db: &Database, page: &Page) -> DbResult<Vec<Record<SecretState>>> {
    let (condition, values, order) = page::sql(ORDER, "name", "created_at", page, 1);
    let sql = format!("SELECT {COLUMNS} FROM secrets WHERE {condition} {order}");
    let rows = values.iter().fold(sqlx::query(&sql), |q, v| q.bind(v)).fetch_all(&db.pool).await?;
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

//! The `roles` and `role_bindings` tables: custom roles and every binding, specs as JSON.

use domain::rbac::{RoleBindingEvent, RoleBindingSpec, RoleEvent, RoleSpec};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::change::{Change, Row, Table};
use super::page::{self, Order, Page};
use super::{ApplyError, Record, corrupt, payload};
use crate::db::{Database, DbResult};
use crate::log::StoredEvent;

pub(crate) const ROLES: Table = Table { name: "roles", key: "name" };
pub(crate) const ROLE_BINDINGS: Table = Table { name: "role_bindings", key: "name" };

fn upsert(event: &StoredEvent, table: Table, role: Option<&str>, spec: &impl Serialize) -> Change {
    let mut row: Row = vec![
        ("name", event.aggregate_id.as_str().into()),
        ("spec", serde_json::to_string(spec).expect("a spec serialises").into()),
        ("resource_version", event.sequence.into()),
        ("created_at", event.recorded_at.as_str().into()),
        ("updated_at", event.recorded_at.as_str().into()),
    ];
    if let Some(role) = role {
        row.insert(1, ("role", role.into()));
    }
    Change::Upsert { table, row, keep: &["created_at"] }
}

pub(crate) fn role_changes(event: &StoredEvent) -> Result<Vec<Change>, ApplyError> {
    Ok(vec![match payload::<RoleEvent>(event)? {
        RoleEvent::RoleCreated { spec } | RoleEvent::RoleUpdated { spec } | RoleEvent::RoleNarrowed { spec } => {
            upsert(event, ROLES, None, &spec)
        }
        RoleEvent::RoleDeleted {} => Change::Delete { table: ROLES, key: event.aggregate_id.clone() },
    }])
}

pub(crate) fn binding_changes(event: &StoredEvent) -> Result<Vec<Change>, ApplyError> {
    Ok(vec![match payload::<RoleBindingEvent>(event)? {
        RoleBindingEvent::RoleBindingCreated { spec }
        | RoleBindingEvent::RoleBindingUpdated { spec }
        | RoleBindingEvent::RoleBindingNarrowed { spec } => {
            upsert(event, ROLE_BINDINGS, Some(spec.role.as_str()), &spec)
        }
        RoleBindingEvent::RoleBindingDeleted {} => {
            Change::Delete { table: ROLE_BINDINGS, key: event.aggregate_id.clone() }
        }
    }])
}

fn decode<S: DeserializeOwned>(row: &AnyRow) -> DbResult<Record<S>> {
    let spec: String = row.try_get("spec")?;
    Ok(Record {
        name: row.try_get("name")?,
        spec: serde_json::from_str(&spec).map_err(|_| corrupt("spec", &spec))?,
        resource_version: row.try_get("resource_version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub async fn roles(db: &Database) -> DbResult<Vec<Record<RoleSpec>>> {
    roles_page(db, &Page::default()).await
}

/// One page of the stored roles, by name.
pub async fn roles_page(db: &Database, page: &Page) -> DbResult<Vec<Record<RoleSpec>>> {
    let (condition, values, order) = page::sql(Order::Key, "name", "created_at", page, 1);
    let sql =
        format!("SELECT name, spec, resource_version, created_at, updated_at FROM roles WHERE {condition} {order}");
    let rows = values.iter().fold(sqlx::query(&sql), |q, v| q.bind(v)).fetch_all(&db.pool).await?;
    rows.iter().map(decode).collect()
}

pub async fn role(db: &Database, name: &str) -> DbResult<Option<Record<RoleSpec>>> {
    let row = sqlx::query("SELECT name, spec, resource_version, created_at, updated_at FROM roles WHERE name = $1")
        .bind(name)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(decode).transpose()
}

pub async fn bindings(db: &Database) -> DbResult<Vec<Record<RoleBindingSpec>>> {
    bindings_page(db, &Page::default()).await
}

/// One page of the bindings, by name.
pub async fn bindings_page(db: &Database, page: &Page) -> DbResult<Vec<Record<RoleBindingSpec>>> {
    let (condition, values, order) = page::sql(Order::Key, "name", "created_at", page, 1);
    let sql = format!(
        "SELECT name, spec, resource_version, created_at, updated_at FROM role_bindings WHERE {condition} {order}"
    );
    let rows = values.iter().fold(sqlx::query(&sql), |q, v| q.bind(v)).fetch_all(&db.pool).await?;
    rows.iter().map(decode).collect()
}

pub async fn binding(db: &Database, name: &str) -> DbResult<Option<Record<RoleBindingSpec>>> {
    let row =
        sqlx::query("SELECT name, spec, resource_version, created_at, updated_at FROM role_bindings WHERE name = $1")
            .bind(name)
            .fetch_optional(&db.pool)
            .await?;
    row.as_ref().map(decode).transpose()
}

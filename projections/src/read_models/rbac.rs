//! The `roles` and `role_bindings` tables: custom roles and every binding, specs as JSON.

use domain::rbac::{RoleBindingEvent, RoleBindingSpec, RoleEvent, RoleSpec};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{ApplyError, Record, corrupt, payload};
use crate::db::{Database, DbResult};
use crate::log::StoredEvent;

async fn upsert(
    conn: &mut AnyConnection,
    event: &StoredEvent,
    table: &str,
    role: Option<&str>,
    spec: &impl Serialize,
) -> Result<(), ApplyError> {
    let spec = serde_json::to_string(spec).expect("a spec serialises");
    let (extra_column, extra_value) = match role {
        Some(_) => (", role", ", $6"),
        None => ("", ""),
    };
    let extra_update = if role.is_some() { ", role = excluded.role" } else { "" };
    let sql = format!(
        "INSERT INTO {table} (name, spec, resource_version, created_at, updated_at{extra_column}) \
         VALUES ($1, $2, $3, $4, $5{extra_value}) \
         ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, resource_version = excluded.resource_version, \
           updated_at = excluded.updated_at{extra_update}"
    );
    let mut query = sqlx::query(&sql)
        .bind(&event.aggregate_id)
        .bind(spec)
        .bind(event.sequence)
        .bind(&event.recorded_at)
        .bind(&event.recorded_at);
    if let Some(role) = role {
        query = query.bind(role.to_owned());
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

pub(crate) async fn apply_role(conn: &mut AnyConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    match payload::<RoleEvent>(event)? {
        RoleEvent::RoleCreated { spec } | RoleEvent::RoleUpdated { spec } => {
            upsert(conn, event, "roles", None, &spec).await?
        }
        RoleEvent::RoleDeleted {} => {
            sqlx::query("DELETE FROM roles WHERE name = $1").bind(&event.aggregate_id).execute(&mut *conn).await?;
        }
    }
    Ok(())
}

pub(crate) async fn apply_binding(conn: &mut AnyConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    match payload::<RoleBindingEvent>(event)? {
        RoleBindingEvent::RoleBindingCreated { spec } | RoleBindingEvent::RoleBindingUpdated { spec } => {
            let role = spec.role.clone();
            upsert(conn, event, "role_bindings", Some(&role), &spec).await?
        }
        RoleBindingEvent::RoleBindingDeleted {} => {
            sqlx::query("DELETE FROM role_bindings WHERE name = $1")
                .bind(&event.aggregate_id)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
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
    let rows = sqlx::query("SELECT name, spec, resource_version, created_at, updated_at FROM roles ORDER BY name")
        .fetch_all(&db.pool)
        .await?;
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
    let rows =
        sqlx::query("SELECT name, spec, resource_version, created_at, updated_at FROM role_bindings ORDER BY name")
            .fetch_all(&db.pool)
            .await?;
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

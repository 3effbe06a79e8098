//! The read models: one table per resource kind, maintained from the log by the projector and
//! queried by the API. Each module owns its table's SQL: how an event changes rows, and the
//! queries lists, reads and reference checks need.

pub mod llms;
pub mod migrations;
pub mod rbac;
pub mod secret_backends;
pub mod secrets;
pub mod tokens;
pub mod users;

use serde::Serialize;
use sqlx::AnyConnection;

use crate::log::StoredEvent;

/// One resource as a read model holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record<S> {
    pub name: String,
    pub spec: S,
    pub resource_version: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// An event a projection could not apply.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(
        "event {event_type} of {aggregate_type} {aggregate_id:?} at sequence {sequence} has a payload this version cannot read: {source}"
    )]
    Payload {
        event_type: String,
        aggregate_type: String,
        aggregate_id: String,
        sequence: i64,
        source: serde_json::Error,
    },
    #[error("writing the read model")]
    Database(#[from] sqlx::Error),
}

/// The projections mcpd maintains, each with its own table and checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadModel {
    SecretBackends,
    Secrets,
    Llms,
    Migrations,
    Users,
    Tokens,
    Rbac,
}

impl ReadModel {
    pub const ALL: [ReadModel; 7] = [
        ReadModel::SecretBackends,
        ReadModel::Secrets,
        ReadModel::Llms,
        ReadModel::Migrations,
        ReadModel::Users,
        ReadModel::Tokens,
        ReadModel::Rbac,
    ];

    /// The checkpoint's name; also the table's.
    pub fn name(self) -> &'static str {
        match self {
            ReadModel::SecretBackends => "secret_backends",
            ReadModel::Secrets => "secrets",
            ReadModel::Llms => "llms",
            ReadModel::Migrations => "migrations",
            ReadModel::Users => "users",
            ReadModel::Tokens => "tokens",
            ReadModel::Rbac => "rbac",
        }
    }

    /// Whether events of `aggregate_type` change this read model.
    pub fn handles(self, aggregate_type: &str) -> bool {
        match self {
            ReadModel::Llms => aggregate_type == domain::llm::AGGREGATE_TYPE,
            ReadModel::Secrets => aggregate_type == domain::secret::AGGREGATE_TYPE,
            ReadModel::SecretBackends => {
                aggregate_type == domain::secret_backend::AGGREGATE_TYPE
                    || aggregate_type == domain::default_backend::AGGREGATE_TYPE
            }
            ReadModel::Migrations => aggregate_type == domain::migration::AGGREGATE_TYPE,
            ReadModel::Users => aggregate_type == domain::user::AGGREGATE_TYPE,
            ReadModel::Tokens => aggregate_type == domain::token::AGGREGATE_TYPE,
            ReadModel::Rbac => {
                aggregate_type == domain::rbac::ROLE_AGGREGATE_TYPE
                    || aggregate_type == domain::rbac::BINDING_AGGREGATE_TYPE
            }
        }
    }

    /// Applies one event if it concerns this read model; others pass through untouched.
    pub async fn apply(self, conn: &mut AnyConnection, event: &StoredEvent) -> Result<(), ApplyError> {
        match (self, event.aggregate_type.as_str()) {
            (ReadModel::Llms, domain::llm::AGGREGATE_TYPE) => llms::apply(conn, event).await,
            (ReadModel::Secrets, domain::secret::AGGREGATE_TYPE) => secrets::apply(conn, event).await,
            (ReadModel::SecretBackends, domain::secret_backend::AGGREGATE_TYPE) => {
                secret_backends::apply(conn, event).await
            }
            (ReadModel::Migrations, domain::migration::AGGREGATE_TYPE) => migrations::apply(conn, event).await,
            (ReadModel::Users, domain::user::AGGREGATE_TYPE) => users::apply(conn, event).await,
            (ReadModel::Tokens, domain::token::AGGREGATE_TYPE) => tokens::apply(conn, event).await,
            (ReadModel::Rbac, domain::rbac::ROLE_AGGREGATE_TYPE) => rbac::apply_role(conn, event).await,
            (ReadModel::Rbac, domain::rbac::BINDING_AGGREGATE_TYPE) => rbac::apply_binding(conn, event).await,
            (ReadModel::SecretBackends, domain::default_backend::AGGREGATE_TYPE) => {
                secret_backends::apply_default(conn, event).await
            }
            _ => Ok(()),
        }
    }
}

/// Decodes an event's payload into the kind's event type, naming the event on failure.
pub(crate) fn payload<E: serde::de::DeserializeOwned>(event: &StoredEvent) -> Result<E, ApplyError> {
    serde_json::from_value(event.payload.clone()).map_err(|source| ApplyError::Payload {
        event_type: event.event_type.clone(),
        aggregate_type: event.aggregate_type.clone(),
        aggregate_id: event.aggregate_id.clone(),
        sequence: event.sequence,
        source,
    })
}

/// A column holding a value this version does not understand.
pub(crate) fn corrupt(column: &str, value: &str) -> sqlx::Error {
    sqlx::Error::ColumnDecode { index: column.to_owned(), source: format!("unexpected value {value:?}").into() }
}

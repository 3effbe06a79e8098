//! The read models: one table per resource kind, maintained from the log by the projector and
//! queried by the API. Each module owns its table's SQL: how an event changes rows, and the
//! queries lists, reads and reference checks need.

pub mod change;
pub mod llms;
pub mod migrations;
pub mod page;
pub mod rbac;
pub mod secret_backends;
pub mod secrets;
pub mod tokens;
pub mod users;

use serde::Serialize;
use sqlx::AnyConnection;

use self::change::{Change, Table};
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

/// How one stream's events change its read model.
type Projection = fn(&StoredEvent) -> Result<Vec<Change>, ApplyError>;

/// The read model a stream of the log feeds, and how. Every kind of the registry is matched, so a
/// new kind without a projection does not compile; a stream this version does not know (written
/// by a newer one) feeds nothing.
fn projection_of(aggregate_type: &str) -> Option<(ReadModel, Projection)> {
    use domain::document::Kind;
    let Some(kind) = Kind::of_aggregate(aggregate_type) else {
        return (aggregate_type == domain::default_backend::AGGREGATE_TYPE)
            .then_some((ReadModel::SecretBackends, secret_backends::default_changes as Projection));
    };
    Some(match kind {
        Kind::SecretBackend => (ReadModel::SecretBackends, secret_backends::changes),
        Kind::Secret => (ReadModel::Secrets, secrets::changes),
        Kind::Llm => (ReadModel::Llms, llms::changes),
        Kind::Migration => (ReadModel::Migrations, migrations::changes),
        Kind::User => (ReadModel::Users, users::changes),
        Kind::Token => (ReadModel::Tokens, tokens::changes),
        Kind::Role => (ReadModel::Rbac, rbac::role_changes),
        Kind::RoleBinding => (ReadModel::Rbac, rbac::binding_changes),
    })
}

wire::enumerated! {
    /// The projections mcpd maintains, each with its own table and checkpoint. `ReadModel::ALL`
    /// (declared with the enum, so none can be missing) is the order rows are locked in.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum ReadModel {
        SecretBackends,
        Secrets,
        Llms,
        Migrations,
        Users,
        Tokens,
        Rbac,
    }
}

impl ReadModel {
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

    /// The aggregate types whose events change this read model.
    pub fn aggregate_types(self) -> Vec<&'static str> {
        let kinds = domain::document::Kind::ALL.into_iter().map(|k| k.info().aggregate_type);
        kinds
            .chain([domain::default_backend::AGGREGATE_TYPE])
            .filter(|t| projection_of(t).is_some_and(|(model, _)| model == self))
            .collect()
    }

    /// The read models that events of `aggregate_type` change.
    pub fn changed_by(aggregate_type: &str) -> Vec<ReadModel> {
        ReadModel::ALL.into_iter().filter(|m| m.handles(aggregate_type)).collect()
    }

    /// Whether events of `aggregate_type` change this read model.
    pub fn handles(self, aggregate_type: &str) -> bool {
        projection_of(aggregate_type).is_some_and(|(model, _)| model == self)
    }

    /// The tables this read model keeps.
    pub fn tables(self) -> &'static [Table] {
        match self {
            ReadModel::SecretBackends => &[secret_backends::TABLE],
            ReadModel::Secrets => &[secrets::TABLE],
            ReadModel::Llms => &[llms::TABLE],
            ReadModel::Migrations => &[migrations::TABLE],
            ReadModel::Users => &[users::TABLE],
            ReadModel::Tokens => &[tokens::TABLE],
            ReadModel::Rbac => &[rbac::ROLES, rbac::ROLE_BINDINGS],
        }
    }

    /// What `event` does to this read model; nothing when it concerns another one.
    pub fn changes(self, event: &StoredEvent) -> Result<Vec<Change>, ApplyError> {
        match projection_of(&event.aggregate_type) {
            Some((model, changes)) if model == self => changes(event),
            _ => Ok(Vec::new()),
        }
    }

    /// Applies one event to the live tables if it concerns this read model.
    pub async fn apply(self, conn: &mut AnyConnection, event: &StoredEvent) -> Result<(), ApplyError> {
        for change in self.changes(event)? {
            change::execute(conn, "", &change).await?;
        }
        Ok(())
    }

    /// Applies `events` in order to the live tables (those that concern this read model), runs
    /// of new rows in one statement each ([`change::execute_all`]).
    pub async fn apply_all(self, conn: &mut AnyConnection, events: &[&StoredEvent]) -> Result<(), ApplyError> {
        let mut changes = Vec::new();
        for event in events {
            changes.extend(self.changes(event)?);
        }
        change::execute_all(conn, "", &changes).await?;
        Ok(())
    }

    /// The read model called `name`.
    pub fn named(name: &str) -> Option<ReadModel> {
        ReadModel::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// Decodes an event's payload into the kind's event type, naming the event on failure.
pub(crate) fn payload<E: serde::de::DeserializeOwned>(event: &StoredEvent) -> Result<E, ApplyError> {
    let decoded = match &event.raw_payload {
        Some(raw) => serde_json::from_str(raw),
        None => E::deserialize(&event.payload),
    };
    decoded.map_err(|source| ApplyError::Payload {
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

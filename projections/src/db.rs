//! The read side's connection: one `sqlx::Any` pool, so read-model SQL is written once for
//! SQLite and PostgreSQL. Only the event-log reader needs to know which one it is talking to.

use sqlx::AnyPool;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct Database {
    pub pool: AnyPool,
    pub dialect: Dialect,
}

pub type DbResult<T> = Result<T, sqlx::Error>;

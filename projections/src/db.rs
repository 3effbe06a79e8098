//! The read side's connection: one `sqlx::Any` pool, so read-model SQL is written once for
//! SQLite and PostgreSQL. Only the event-log reader needs to know which one it is talking to.

use sqlx::{AnyConnection, AnyPool, Row};

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

/// The advisory-lock namespace of mcpd ("mcpd" in ASCII); the second key is a lock's name as
/// PostgreSQL's `hashtext` hashes it.
pub(crate) const LOCK_CLASS: i32 = 0x6d63_7064;

/// A cluster-wide lock held by a PostgreSQL session of its own: released when dropped, and by
/// PostgreSQL the moment the process holding it dies. On SQLite (one process per database
/// file) there is nothing to lock and it always succeeds.
#[derive(Debug)]
pub struct SessionLock {
    _session: Option<(AnyConnection, String)>,
}

impl SessionLock {
    /// Releases the lock now, before the session closes: a lock only dropped is released when
    /// PostgreSQL notices the closed connection, a moment later, and whoever was told the work
    /// is done could find it still held.
    pub async fn release(self) {
        if let Some((mut session, name)) = self._session {
            let unlocked = sqlx::query("SELECT pg_advisory_unlock($1, hashtext($2))")
                .bind(LOCK_CLASS)
                .bind(&name)
                .execute(&mut session)
                .await;
            if let Err(e) = unlocked {
                tracing::warn!(lock = %name, error = %e, "releasing a lock failed; it goes with its session");
            }
        }
    }
}

impl Database {
    /// The database's clock, not this process's: what every replica agrees on, so that a time
    /// several replicas compare (a rebuild's claim going stale) cannot be skewed by one
    /// replica's clock running ahead or behind. (SQLite: one process, the same clock.)
    pub async fn now(&self) -> DbResult<jiff::Timestamp> {
        let sql = match self.dialect {
            Dialect::Postgres => {
                "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
            }
            Dialect::Sqlite => "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        };
        let text: String = sqlx::query_scalar(sql).fetch_one(&self.pool).await?;
        text.parse().map_err(|e: jiff::Error| sqlx::Error::Decode(Box::new(e)))
    }

    /// Takes the lock `name` unless another session holds it.
    pub async fn try_lock(&self, name: &str) -> DbResult<Option<SessionLock>> {
        match self.dialect {
            Dialect::Sqlite => Ok(Some(SessionLock { _session: None })),
            Dialect::Postgres => {
                let mut session = self.pool.acquire().await?.detach();
                let taken: bool = sqlx::query("SELECT pg_try_advisory_lock($1, hashtext($2))")
                    .bind(LOCK_CLASS)
                    .bind(name)
                    .fetch_one(&mut session)
                    .await?
                    .try_get(0)?;
                Ok(taken.then_some(SessionLock { _session: Some((session, name.to_owned())) }))
            }
        }
    }
}

//! Opening the store a database URL names: the connection pools, our migrations, the event
//! repositories for the three aggregates, and the projector that keeps the read models.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use projections::projector::ProjectorConfig;
use projections::{Database, Dialect, EventLog, Projector, ProjectorHandle};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

pub mod snapshots;
pub mod write;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

/// Everything that reads or writes the database.
#[derive(Clone)]
pub struct Store {
    pub db: Database,
    pub log: EventLog,
    pub projector: ProjectorHandle,
}

/// Hides the password of a database URL, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`), applies migrations and starts the
    /// projector.
    pub async fn open(url: &str, projector: ProjectorConfig) -> anyhow::Result<Store> {
        let db = connect(url).await?;
        let projector = Projector::start(db.clone(), projector).await.context("starting the projector")?;
        Ok(Store { log: EventLog::new(db.clone()), projector, db })
    }
}

/// The read side of the database `url` names, migrations applied, without starting a
/// projector: for the offline `mcpd projections` commands.
pub async fn open_database(url: &str) -> anyhow::Result<Database> {
    connect(url).await
}

/// A connection that sat idle this long is pinged before it is handed out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(5);

/// Settings every pool shares. A connection is pinged before use only after it sat idle, or
/// for a while after an outage (sqlx pings on every acquire by default: one more round trip for
/// every query, which was a third of a create's). sqlx also pings a connection when it returns
/// to the pool and drops it if that fails. So a connection that broke while idle for less than
/// [`PING_AFTER_IDLE`] fails at most one request with a 503 before the pool checks every
/// connection again.
fn pool_options<DB: sqlx::Database>(max_connections: u32) -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire(false)
        .before_acquire(|conn: &mut DB::Connection, meta| {
            Box::pin(async move {
                use sqlx::Connection;
                Ok((meta.idle_for < PING_AFTER_IDLE && !crate::outage::recent()) || conn.ping().await.is_ok())
            })
        })
}

/// Opens the database `url` names (`sqlite://…` or `postgres://…`) and applies migrations:
/// the pool everything reads and writes through.
async fn connect(url: &str) -> anyhow::Result<Database> {
    sqlx::any::install_default_drivers();
    let shown = redact_url(url);
    let dialect = if url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("parsing the database URL {shown}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        crate::files::private_database_files(options.get_filename())?;
        let pool = pool_options::<sqlx::Sqlite>(8)
            .connect_with(options)
            .await
            .with_context(|| format!("opening the SQLite database {shown}"))?;
        SQLITE_MIGRATIONS.run(&pool).await.with_context(|| format!("applying migrations to {shown}"))?;
        // WAL is the database file's own setting from here on, whichever pool opens it.
        pool.close().await;
        Dialect::Sqlite
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let pool = pool_options::<sqlx::Postgres>(10)
            .connect(url)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {shown}"))?;
        POSTGRES_MIGRATIONS.run(&pool).await.with_context(|| format!("applying migrations to {shown}"))?;
        pool.close().await;
        Dialect::Postgres
    } else {
        anyhow::bail!("unsupported database URL {shown}: use sqlite://PATH or postgres://…");
    };
    let any = pool_options::<sqlx::Any>(10)
        .connect(url)
        .await
        .with_context(|| format!("opening the read-model pool on {shown}"))?;
    Ok(Database { pool: any, dialect })
}

impl Store {
    /// Tells the projector about an append: the read models that took it inline show it; the
    /// others (`concerned` ones left to it) it applies.
    pub fn settle(&self, appended: &projections::append::Appended, concerned: &[projections::read_models::ReadModel]) {
        self.projector.advanced(&appended.inlined, appended.last);
        if concerned.iter().any(|m| !appended.inlined.contains(m)) {
            self.projector.wake();
        } else {
            self.projector.wake_for_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_hidden_from_messages() {
        assert_eq!(redact_url("postgres://u:hunter2@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://./x.db"), "sqlite://./x.db");
    }
}

//! Opening the store a database URL names: the connection pools, our migrations, the event
//! repositories for the three aggregates, and the projector that keeps the read models.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{AggregateError, CqrsFramework, EventStore};
use domain::default_backend::DefaultBackend;
use domain::llm::Llm;
use domain::migration::MigrationRun;
use domain::secret::Secret;
use domain::secret_backend::SecretBackend;
use postgres_es::PostgresEventRepository;
use projections::projector::ProjectorConfig;
use projections::{Database, Dialect, EventLog, Projector, ProjectorHandle};
use sqlite_es::SqliteEventRepository;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

pub mod event_repository;
pub mod snapshots;

use self::event_repository::{EventRepository, Reader};
use self::snapshots::SnapshotStore;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

pub type Cqrs<A> = CqrsFramework<A, SnapshotStore<A>>;

/// Everything that reads or writes the database.
#[derive(Clone)]
pub struct Store {
    pub db: Database,
    pub log: EventLog,
    pub projector: ProjectorHandle,
    pub llms: Arc<Cqrs<Llm>>,
    pub secrets: Arc<Cqrs<Secret>>,
    pub secret_backends: Arc<Cqrs<SecretBackend>>,
    pub default_backend: Arc<Cqrs<DefaultBackend>>,
    pub migrations: Arc<Cqrs<MigrationRun>>,
    pub users: Arc<Cqrs<domain::user::User>>,
    pub tokens: Arc<Cqrs<domain::token::Token>>,
    pub roles: Arc<Cqrs<domain::rbac::Role>>,
    pub role_bindings: Arc<Cqrs<domain::rbac::RoleBinding>>,
    write: WritePool,
}

#[derive(Clone)]
enum WritePool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl WritePool {
    /// A cqrs-es framework for `A` over this store. Queries are not dispatched in process:
    /// the projector reads the log, so every replica sees every write.
    fn framework<A: cqrs_es::Aggregate<Services = ()>>(&self, db: &Database, projector: &ProjectorHandle) -> Cqrs<A> {
        CqrsFramework::new(self.snapshot_store(db, projector), vec![], ())
    }

    /// The event store for `A`, upcasting old event shapes as it loads them.
    fn event_store<A: cqrs_es::Aggregate>(
        &self,
        db: &Database,
        projector: &ProjectorHandle,
    ) -> PersistedEventStore<EventRepository, A> {
        PersistedEventStore::new_event_store(self.repository(db, projector)).with_upcasters(domain::upcast::upcasters())
    }

    /// The event store for `A` with snapshots (`crate::store::snapshots`).
    fn snapshot_store<A: cqrs_es::Aggregate>(&self, db: &Database, projector: &ProjectorHandle) -> SnapshotStore<A> {
        SnapshotStore::new(self.event_store(db, projector), db.clone())
    }

    fn repository(&self, db: &Database, projector: &ProjectorHandle) -> EventRepository {
        let reader = match self {
            WritePool::Sqlite(pool) => Reader::Sqlite(SqliteEventRepository::new(pool.clone())),
            WritePool::Postgres(pool) => Reader::Postgres(PostgresEventRepository::new(pool.clone())),
        };
        EventRepository { reader, db: db.clone(), projector: projector.clone() }
    }
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
        let (write, db) = connect(url).await?;
        let projector = Projector::start(db.clone(), projector).await.context("starting the projector")?;
        Ok(Store {
            log: EventLog::new(db.clone()),
            projector: projector.clone(),
            llms: Arc::new(write.framework(&db, &projector)),
            secrets: Arc::new(write.framework(&db, &projector)),
            secret_backends: Arc::new(write.framework(&db, &projector)),
            default_backend: Arc::new(write.framework(&db, &projector)),
            migrations: Arc::new(write.framework(&db, &projector)),
            users: Arc::new(write.framework(&db, &projector)),
            tokens: Arc::new(write.framework(&db, &projector)),
            roles: Arc::new(write.framework(&db, &projector)),
            role_bindings: Arc::new(write.framework(&db, &projector)),
            db,
            write,
        })
    }
}

/// The read side of the database `url` names, migrations applied, without starting a
/// projector: for the offline `mcpd projections` commands.
pub async fn open_database(url: &str) -> anyhow::Result<Database> {
    Ok(connect(url).await?.1)
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
/// the event store's pool and the read side's.
async fn connect(url: &str) -> anyhow::Result<(WritePool, Database)> {
    sqlx::any::install_default_drivers();
    let shown = redact_url(url);
    let (write, dialect) = if url.starts_with("sqlite:") {
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
        (WritePool::Sqlite(pool), Dialect::Sqlite)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let pool = pool_options::<sqlx::Postgres>(10)
            .connect(url)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {shown}"))?;
        POSTGRES_MIGRATIONS.run(&pool).await.with_context(|| format!("applying migrations to {shown}"))?;
        (WritePool::Postgres(pool), Dialect::Postgres)
    } else {
        anyhow::bail!("unsupported database URL {shown}: use sqlite://PATH or postgres://…");
    };
    let any = pool_options::<sqlx::Any>(10)
        .connect(url)
        .await
        .with_context(|| format!("opening the read-model pool on {shown}"))?;
    Ok((write, Database { pool: any, dialect }))
}

impl Store {
    /// Appends events to many aggregates of one type in one transaction: all or none. Each item
    /// is (aggregate id, its sequence before, the events). A concurrent write to any of them
    /// makes the whole batch an `AggregateConflict` and nothing is written. For a migration's
    /// flips, so that a batch of secrets costs one commit instead of one each.
    pub async fn append_batch<A>(
        &self,
        items: Vec<(String, u64, Vec<A::Event>)>,
        metadata: std::collections::HashMap<String, String>,
    ) -> Result<(), AggregateError<A::Error>>
    where
        A: cqrs_es::Aggregate,
    {
        use cqrs_es::DomainEvent;
        use cqrs_es::persist::SerializedEvent;
        let metadata = serde_json::to_value(&metadata).map_err(|e| AggregateError::UnexpectedError(Box::new(e)))?;
        let mut serialized = Vec::new();
        for (id, sequence, events) in items {
            for (i, event) in events.into_iter().enumerate() {
                let payload = serde_json::to_value(&event).map_err(|e| AggregateError::UnexpectedError(Box::new(e)))?;
                serialized.push(SerializedEvent::new(
                    id.clone(),
                    sequence as usize + 1 + i,
                    A::TYPE.to_owned(),
                    event.event_type(),
                    event.event_version(),
                    payload,
                    metadata.clone(),
                ));
            }
        }
        if serialized.is_empty() {
            return Ok(());
        }
        let appended = self.write.repository(&self.db, &self.projector).append(&serialized).await?;
        self.settle(&appended, &projections::read_models::ReadModel::changed_by(A::TYPE));
        Ok(())
    }

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

    /// Runs `command` against aggregate `name` as it is now, without recording anything:
    /// the events it would produce, and the aggregate's sequence before them.
    pub async fn rehearse<A>(
        &self,
        name: &str,
        command: A::Command,
    ) -> Result<(Vec<A::Event>, u64), AggregateError<A::Error>>
    where
        A: cqrs_es::Aggregate<Services = ()>,
    {
        let (mut aggregate, sequence) = self.load::<A>(name).await?;
        let events = decide(&mut aggregate, command).await.map_err(AggregateError::UserError)?;
        Ok((events, sequence))
    }

    /// Several aggregates of one type as they are now, with their sequences, from one query
    /// (instead of one per aggregate). Names without events come back as new aggregates.
    pub async fn load_many<A>(&self, names: &[String]) -> anyhow::Result<std::collections::HashMap<String, (A, u64)>>
    where
        A: cqrs_es::Aggregate,
    {
        let mut loaded: std::collections::HashMap<String, (A, u64)> =
            names.iter().map(|n| (n.clone(), (A::default(), 0))).collect();
        for event in self.log.aggregate_histories(A::TYPE, names).await? {
            let payload: A::Event = serde_json::from_value(event.payload)
                .with_context(|| format!("event {} of {} {:?}", event.sequence, A::TYPE, event.aggregate_id))?;
            if let Some((aggregate, sequence)) = loaded.get_mut(&event.aggregate_id) {
                aggregate.apply(payload);
                *sequence = event.sequence as u64;
            }
        }
        Ok(loaded)
    }

    /// Aggregate `name` as it is now, and its sequence.
    pub async fn load<A>(&self, name: &str) -> Result<(A, u64), AggregateError<A::Error>>
    where
        A: cqrs_es::Aggregate,
    {
        let context = self.write.snapshot_store::<A>(&self.db, &self.projector).load_aggregate(name).await?;
        let sequence = context.current_sequence as u64;
        Ok((context.aggregate, sequence))
    }
}

/// Runs `command` against `aggregate` in memory: the events it produces, already applied to
/// `aggregate`. Nothing is recorded.
pub async fn decide<A>(aggregate: &mut A, command: A::Command) -> Result<Vec<A::Event>, A::Error>
where
    A: cqrs_es::Aggregate<Services = ()>,
{
    let sink = EventSink::default();
    aggregate.handle(command, &(), &sink).await?;
    Ok(sink.collect().await)
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

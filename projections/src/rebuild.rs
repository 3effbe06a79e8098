//! Rebuilding and verifying read models from the event log, while mcpd keeps serving.
//!
//! A rebuild replays the log into shadow tables (`<table>__rebuild`, same columns and
//! indexes as the live one) while the live tables keep serving reads and the projector keeps
//! applying new events to them. It runs in three steps:
//! 1. fold the whole log in memory (a [`Folded`] copy of the tables) and write each final row
//!    once into the shadow tables, in bulk;
//! 2. catch up on what was written meanwhile, event by event, into the shadow tables;
//! 3. in one transaction that holds the read models' checkpoint rows (so their projector
//!    waits): apply the last events, replace each live table with its shadow, and move the
//!    checkpoint to where the shadow got. Readers see the old table or the new one, never an
//!    empty or half-built one.
//!
//! Verify folds the log in memory up to each read model's checkpoint and compares the result
//! with the live tables row by row, inside a transaction holding the checkpoint rows, so the
//! tables cannot move under the comparison.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Column, Row};

use crate::db::{Database, DbResult, Dialect};
use crate::log::{self, Position, StoredEvent};
use crate::projector::{ensure_checkpoints, error_chain};
use crate::read_models::change::{self, Cell, Folded, Table};
use crate::read_models::{ApplyError, ReadModel};

/// Events read from the log per page.
const PAGE: i64 = 5_000;
const SHADOW: &str = "__rebuild";
/// A running rebuild whose progress has not moved for this long is taken for dead.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("a rebuild of {0} is already running")]
    Busy(String),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// How far a rebuild or verify has got.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub replayed: u64,
    /// Events to replay, counted when it started; writes since then add to it.
    pub total: u64,
    pub elapsed: Duration,
    started: Instant,
}

impl Progress {
    fn new(total: u64) -> Self {
        Progress { replayed: 0, total, elapsed: Duration::ZERO, started: Instant::now() }
    }

    /// Counts `events` more as replayed.
    fn advance(&mut self, events: usize) {
        self.replayed += events as u64;
        self.total = self.total.max(self.replayed);
        self.elapsed = self.started.elapsed();
    }

    /// Events per second so far.
    pub fn rate(&self) -> f64 {
        self.replayed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// What a rebuild did.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    pub events: u64,
    pub rows: BTreeMap<&'static str, u64>,
    pub checkpoint: Position,
    pub elapsed: Duration,
}

/// Replays the whole log into fresh copies of `models`' tables and swaps them in.
/// `requested_by` is recorded with the rebuild's progress, which `status` shows to every
/// replica; `on_progress` is called after each page.
pub async fn rebuild(
    db: &Database,
    models: &[ReadModel],
    requested_by: &str,
    on_progress: impl FnMut(&Progress),
) -> Result<Rebuilt, RebuildError> {
    claim(db, models, requested_by).await?;
    rebuild_claimed(db, models, on_progress).await
}

/// [`rebuild`], once [`claim`] has marked it running.
pub async fn rebuild_claimed(
    db: &Database,
    models: &[ReadModel],
    mut on_progress: impl FnMut(&Progress),
) -> Result<Rebuilt, RebuildError> {
    let mut reporter = Reporter::default();
    let result = async {
        let started = Instant::now();
        let types = aggregate_types(models);
        let total = count_events(db, &types).await? as u64;
        let mut progress = Progress::new(total);

        // 1. Fold the log in memory and write the rows once.
        let mut folded = Folded::of(tables(models));
        let mut at = Position::default();
        // The next page is read while this one is folded.
        let mut pages = read_ahead(db.clone(), types.clone());
        while let Some(page) = pages.recv().await {
            let page = page?;
            for event in &page {
                for model in models {
                    for change in model.changes(event)? {
                        folded.apply(change);
                    }
                }
            }
            at = page.last().map_or(at, |e| e.position);
            progress.advance(page.len());
            on_progress(&progress);
            reporter.report(db, models, &progress).await;
        }
        let mut conn = db.pool.acquire().await?;
        let mut tx = conn.begin_tx(db.dialect).await?;
        for table in tables(models) {
            create_shadow(&mut tx, db.dialect, table.name).await?;
        }
        folded.write(&mut tx, SHADOW).await?;
        tx.commit().await?;
        drop(folded);

        // 2. Catch up, event by event, with what was written meanwhile.
        let mut conn = db.pool.acquire().await?;
        loop {
            let page = log::read_for_replay(&mut conn, db.dialect, at, &types, PAGE).await?;
            if page.is_empty() {
                break;
            }
            let mut tx = conn.begin_tx(db.dialect).await?;
            at = apply_to_shadow(&mut tx, models, &page, at).await?;
            tx.commit().await?;
            progress.advance(page.len());
            on_progress(&progress);
            reporter.report(db, models, &progress).await;
            if (page.len() as i64) < PAGE {
                break;
            }
        }

        // 3. Hold the checkpoints, apply the rest, swap.
        let mut tx = conn.begin_tx(db.dialect).await?;
        hold_checkpoints(&mut tx, models).await?;
        loop {
            let page = log::read_for_replay(&mut tx, db.dialect, at, &types, PAGE).await?;
            at = apply_to_shadow(&mut tx, models, &page, at).await?;
            progress.advance(page.len());
            if (page.len() as i64) < PAGE {
                break;
            }
        }
        let mut rows = BTreeMap::new();
        for table in tables(models) {
            swap(&mut tx, db.dialect, table.name).await?;
            let n: i64 =
                sqlx::query(&format!("SELECT count(*) FROM {}", table.name)).fetch_one(&mut *tx).await?.try_get(0)?;
            rows.insert(table.name, n as u64);
        }
        for model in models {
            // The shadow holds every event of the model up to `at`, and no event of it lies
            // between `at` and the stored checkpoint: keep whichever is further.
            sqlx::query(
                "UPDATE projection_checkpoints SET transaction_id = $2, position = $3 \
                 WHERE name = $1 AND (transaction_id < $2 OR (transaction_id = $2 AND position < $3))",
            )
            .bind(model.name())
            .bind(at.transaction_id)
            .bind(at.position)
            .execute(&mut *tx)
            .await?;
            // The tables are a fresh replay: whatever stopped the read model is behind it.
            sqlx::query("UPDATE projection_checkpoints SET last_error = NULL, error_at = NULL WHERE name = $1")
                .bind(model.name())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        progress.advance(0);
        progress.total = progress.replayed;
        on_progress(&progress);
        Ok(Rebuilt { events: progress.replayed, rows, checkpoint: at, elapsed: started.elapsed() })
    }
    .await;
    finish(db, models, &result).await;
    if result.is_err() {
        // Leave nothing half-built behind; a later rebuild would drop it anyway.
        if let Ok(mut conn) = db.pool.acquire().await {
            for table in tables(models) {
                let _ = sqlx::query(&format!("DROP TABLE IF EXISTS {}{SHADOW}", table.name)).execute(&mut *conn).await;
            }
        }
    }
    result
}

/// Reads the whole log of `types` page by page in a task of its own, one page ahead of the
/// consumer. The channel closes after the last page, or after an error.
fn read_ahead(db: Database, types: Vec<&'static str>) -> tokio::sync::mpsc::Receiver<DbResult<Vec<StoredEvent>>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let mut conn = match db.pool.acquire().await {
            Ok(conn) => conn,
            Err(e) => {
                let _ = sender.send(Err(e)).await;
                return;
            }
        };
        let mut at = Position::default();
        loop {
            let page = log::read_for_replay(&mut conn, db.dialect, at, &types, PAGE).await;
            let last = match &page {
                Ok(page) if (page.len() as i64) == PAGE => page.last().map(|e| e.position),
                _ => None,
            };
            if sender.send(page).await.is_err() {
                return;
            }
            match last {
                Some(position) => at = position,
                None => return,
            }
        }
    });
    receiver
}

/// One row that differs between a live table and a replay of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub table: &'static str,
    pub key: String,
    pub kind: DifferenceKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DifferenceKind {
    /// The replay has the row; the table does not.
    Missing,
    /// The table has a row the replay does not.
    Unexpected,
    /// Both have the row, with different values in `column`. Values of sensitive columns are
    /// not shown.
    Column { column: String, table: Option<String>, replay: Option<String> },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<String>| v.as_ref().map_or("NULL".to_owned(), |v| format!("{v:?}"));
        match &self.kind {
            DifferenceKind::Missing => write!(f, "{} {:?}: missing from the table", self.table, self.key),
            DifferenceKind::Unexpected => {
                write!(f, "{} {:?}: in the table, but not in a replay of the log", self.table, self.key)
            }
            DifferenceKind::Column { column, table, replay } => write!(
                f,
                "{} {:?}: {column} is {} in the table, {} in a replay of the log",
                self.table,
                self.key,
                show(table),
                show(replay)
            ),
        }
    }
}

/// Columns whose values a difference never shows.
const SENSITIVE: &[&str] = &["hash"];

/// Replays the log in memory up to each read model's checkpoint and compares the result with
/// the live tables, row by row. An empty list means they agree.
pub async fn verify(
    db: &Database,
    models: &[ReadModel],
    mut on_progress: impl FnMut(&Progress),
) -> Result<Vec<Difference>, RebuildError> {
    ensure_checkpoints(db).await?;
    let types = aggregate_types(models);
    let total = count_events(db, &types).await? as u64;
    let mut progress = Progress::new(total);
    let mut folded = Folded::of(tables(models));
    let mut conn = db.pool.acquire().await?;
    // Up to where the checkpoints stood at the start, without holding anything...
    let mut first = HashMap::new();
    for model in models {
        first.insert(model.name(), crate::projector::load_checkpoint(db, *model).await?);
    }
    let start = HashMap::new();
    fold_range(&mut conn, db.dialect, &mut folded, models, &types, &start, &first, &mut progress, &mut on_progress)
        .await?;
    // ...then, holding them, on to where they are now, and compare.
    let mut tx = conn.begin_tx(db.dialect).await?;
    hold_checkpoints(&mut tx, models).await?;
    let mut now = HashMap::new();
    for model in models {
        let row = sqlx::query("SELECT transaction_id, position FROM projection_checkpoints WHERE name = $1")
            .bind(model.name())
            .fetch_one(&mut *tx)
            .await?;
        let at = Position { transaction_id: row.try_get("transaction_id")?, position: row.try_get("position")? };
        now.insert(model.name(), at);
    }
    fold_range(&mut tx, db.dialect, &mut folded, models, &types, &first, &now, &mut progress, &mut on_progress).await?;
    let mut differences = Vec::new();
    for table in tables(models) {
        compare(&mut tx, table, &folded, &mut differences).await?;
    }
    tx.rollback().await?;
    progress.advance(0);
    progress.total = progress.replayed;
    on_progress(&progress);
    Ok(differences)
}

/// Folds into `folded`, for each model, the events after `from[model]` (the start when
/// absent) up to and including `to[model]`.
#[allow(clippy::too_many_arguments)]
async fn fold_range(
    conn: &mut AnyConnection,
    dialect: Dialect,
    folded: &mut Folded,
    models: &[ReadModel],
    types: &[&str],
    from: &HashMap<&str, Position>,
    to: &HashMap<&str, Position>,
    progress: &mut Progress,
    on_progress: &mut impl FnMut(&Progress),
) -> Result<(), RebuildError> {
    let lower = |m: &ReadModel| from.get(m.name()).copied().unwrap_or_default();
    let mut at = models.iter().map(lower).min().unwrap_or_default();
    let end = to.values().copied().max().unwrap_or_default();
    while at < end {
        let page = log::read_for_replay(conn, dialect, at, types, PAGE).await?;
        for event in &page {
            for model in models {
                if event.position > lower(model) && event.position <= to[model.name()] {
                    for change in model.changes(event)? {
                        folded.apply(change);
                    }
                }
            }
        }
        at = page.last().map_or(end, |e| e.position);
        progress.advance(page.len());
        on_progress(progress);
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    Ok(())
}

async fn compare(
    conn: &mut AnyConnection,
    table: Table,
    folded: &Folded,
    out: &mut Vec<Difference>,
) -> Result<(), RebuildError> {
    let rows = sqlx::query(&format!("SELECT * FROM {}", table.name)).fetch_all(&mut *conn).await?;
    let mut live: BTreeMap<String, BTreeMap<String, Option<String>>> = BTreeMap::new();
    for row in &rows {
        let values = row_values(row)?;
        let key = values.get(table.key).cloned().flatten().unwrap_or_default();
        live.insert(key, values);
    }
    let mut replayed: BTreeMap<String, BTreeMap<String, Option<String>>> = BTreeMap::new();
    for row in folded.rows(table) {
        let values: BTreeMap<String, Option<String>> = row
            .iter()
            .map(|(c, v)| {
                let v = match v {
                    Cell::Null => None,
                    Cell::Int(n) => Some(n.to_string()),
                    Cell::Text(s) => Some(s.clone()),
                };
                ((*c).to_owned(), v)
            })
            .collect();
        let key = values.get(table.key).cloned().flatten().unwrap_or_default();
        replayed.insert(key, values);
    }
    for (key, want) in &replayed {
        match live.get(key) {
            None => out.push(Difference { table: table.name, key: key.clone(), kind: DifferenceKind::Missing }),
            Some(have) => {
                for (column, value) in want {
                    let actual = have.get(column).cloned().flatten();
                    if actual != *value {
                        let hide = |v: Option<String>| {
                            if SENSITIVE.contains(&column.as_str()) { v.map(|_| "(hidden)".to_owned()) } else { v }
                        };
                        out.push(Difference {
                            table: table.name,
                            key: key.clone(),
                            kind: DifferenceKind::Column {
                                column: column.clone(),
                                table: hide(actual),
                                replay: hide(value.clone()),
                            },
                        });
                    }
                }
            }
        }
    }
    for key in live.keys().filter(|k| !replayed.contains_key(*k)) {
        out.push(Difference { table: table.name, key: key.clone(), kind: DifferenceKind::Unexpected });
    }
    Ok(())
}

/// A row's values as text, by column; integers in decimal.
fn row_values(row: &AnyRow) -> DbResult<BTreeMap<String, Option<String>>> {
    let mut values = BTreeMap::new();
    for (i, column) in row.columns().iter().enumerate() {
        let value = match row.try_get::<Option<i64>, _>(i) {
            Ok(n) => n.map(|n| n.to_string()),
            Err(_) => row.try_get::<Option<String>, _>(i)?,
        };
        values.insert(column.name().to_owned(), value);
    }
    Ok(values)
}

async fn apply_to_shadow(
    conn: &mut AnyConnection,
    models: &[ReadModel],
    page: &[StoredEvent],
    at: Position,
) -> Result<Position, RebuildError> {
    let mut reached = at;
    for event in page {
        for model in models {
            for change in model.changes(event)? {
                change::execute(conn, SHADOW, &change).await?;
            }
        }
        reached = event.position;
    }
    Ok(reached)
}

/// Takes the checkpoint rows of `models`: their projector (in any process) waits until the
/// transaction ends. On SQLite this takes the database's write lock.
async fn hold_checkpoints(conn: &mut AnyConnection, models: &[ReadModel]) -> DbResult<()> {
    for model in models {
        sqlx::query("UPDATE projection_checkpoints SET name = name WHERE name = $1")
            .bind(model.name())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Creates `<table>__rebuild` with the live table's columns and keys; any leftover from an
/// interrupted rebuild is dropped first.
async fn create_shadow(conn: &mut AnyConnection, dialect: Dialect, table: &str) -> DbResult<()> {
    let shadow = format!("{table}{SHADOW}");
    sqlx::query(&format!("DROP TABLE IF EXISTS {shadow}")).execute(&mut *conn).await?;
    match dialect {
        Dialect::Postgres => {
            sqlx::query(&format!("CREATE TABLE {shadow} (LIKE {table} INCLUDING ALL)")).execute(&mut *conn).await?;
        }
        Dialect::Sqlite => {
            // The table's own definition, renamed; its secondary indexes are created at the
            // swap, under their own names.
            let sql: String = sqlx::query("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = $1")
                .bind(table)
                .fetch_one(&mut *conn)
                .await?
                .try_get(0)?;
            let columns =
                sql.find('(').ok_or_else(|| sqlx::Error::Protocol(format!("cannot read {table}'s schema")))?;
            sqlx::query(&format!("CREATE TABLE {shadow} {}", &sql[columns..])).execute(&mut *conn).await?;
        }
    }
    Ok(())
}

/// Replaces `table` with `<table>__rebuild`, keeping the index names.
async fn swap(conn: &mut AnyConnection, dialect: Dialect, table: &str) -> DbResult<()> {
    let shadow = format!("{table}{SHADOW}");
    match dialect {
        Dialect::Postgres => {
            let indexes = |name: String| {
                sqlx::query(
                    "SELECT indexname::text, indexdef FROM pg_indexes \
                     WHERE schemaname = current_schema() AND tablename = $1",
                )
                .bind(name)
            };
            let live: HashMap<String, String> = indexes(table.to_owned())
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| Ok((index_shape(&r.try_get::<String, _>(1)?), r.try_get(0)?)))
                .collect::<DbResult<_>>()?;
            let fresh: Vec<(String, String)> = indexes(shadow.clone())
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, index_shape(&r.try_get::<String, _>(1)?))))
                .collect::<DbResult<_>>()?;
            sqlx::query(&format!("DROP TABLE {table}")).execute(&mut *conn).await?;
            sqlx::query(&format!("ALTER TABLE {shadow} RENAME TO {table}")).execute(&mut *conn).await?;
            for (name, shape) in fresh {
                if let Some(original) = live.get(&shape) {
                    sqlx::query(&format!("ALTER INDEX {name} RENAME TO {original}")).execute(&mut *conn).await?;
                }
            }
        }
        Dialect::Sqlite => {
            let indexes: Vec<String> =
                sqlx::query("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = $1 AND sql IS NOT NULL")
                    .bind(table)
                    .fetch_all(&mut *conn)
                    .await?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<DbResult<_>>()?;
            sqlx::query(&format!("DROP TABLE {table}")).execute(&mut *conn).await?;
            sqlx::query(&format!("ALTER TABLE {shadow} RENAME TO {table}")).execute(&mut *conn).await?;
            for index in indexes {
                sqlx::query(&index).execute(&mut *conn).await?;
            }
        }
    }
    Ok(())
}

/// An index definition without its name and table, to pair a shadow's index with the live one.
fn index_shape(definition: &str) -> String {
    let unique = definition.starts_with("CREATE UNIQUE");
    let using = definition.find(" USING ").map_or(definition, |i| &definition[i..]);
    format!("{unique}{using}")
}

fn aggregate_types(models: &[ReadModel]) -> Vec<&'static str> {
    let mut types: Vec<&'static str> = models.iter().flat_map(|m| m.aggregate_types()).collect();
    types.sort_unstable();
    types.dedup();
    types
}

fn tables(models: &[ReadModel]) -> Vec<Table> {
    models.iter().flat_map(|m| m.tables().iter().copied()).collect()
}

async fn count_events(db: &Database, types: &[&str]) -> DbResult<i64> {
    let placeholders: Vec<String> = (1..=types.len()).map(|i| format!("${i}")).collect();
    let sql = format!("SELECT count(*) FROM events WHERE aggregate_type IN ({})", placeholders.join(", "));
    let mut query = sqlx::query(&sql);
    for t in types {
        query = query.bind(*t);
    }
    query.fetch_one(&db.pool).await?.try_get(0)
}

/// Marks the rebuild of `models` as running, unless one is already running somewhere.
pub async fn claim(db: &Database, models: &[ReadModel], requested_by: &str) -> Result<(), RebuildError> {
    let now = jiff::Timestamp::now();
    ensure_checkpoints(db).await?;
    let stale = (now - jiff::SignedDuration::try_from(STALE_AFTER).unwrap_or_default()).to_string();
    let mut tx = db.pool.begin().await?;
    for model in models {
        let claimed = sqlx::query(
            "INSERT INTO projection_rebuilds (name, status, replayed, total, requested_by, started_at, updated_at) \
             VALUES ($1, 'running', 0, 0, $2, $3, $3) \
             ON CONFLICT (name) DO UPDATE SET status = 'running', replayed = 0, total = 0, \
               requested_by = excluded.requested_by, started_at = excluded.started_at, \
               updated_at = excluded.updated_at, finished_at = NULL, error = NULL \
             WHERE projection_rebuilds.status <> 'running' OR projection_rebuilds.updated_at < $4",
        )
        .bind(model.name())
        .bind(requested_by)
        .bind(now.to_string())
        .bind(&stale)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            tx.rollback().await?;
            return Err(RebuildError::Busy(model.name().to_owned()));
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Writes progress to `projection_rebuilds` at most once a second.
#[derive(Default)]
struct Reporter {
    last: Option<Instant>,
}

impl Reporter {
    async fn report(&mut self, db: &Database, models: &[ReadModel], progress: &Progress) {
        if self.last.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
            return;
        }
        self.last = Some(Instant::now());
        for model in models {
            let result = sqlx::query(
                "UPDATE projection_rebuilds SET replayed = $2, total = $3, updated_at = $4 WHERE name = $1",
            )
            .bind(model.name())
            .bind(progress.replayed as i64)
            .bind(progress.total as i64)
            .bind(jiff::Timestamp::now().to_string())
            .execute(&db.pool)
            .await;
            if let Err(e) = result {
                tracing::warn!(error = %error_chain(&e), "recording rebuild progress failed");
            }
        }
    }
}

async fn finish(db: &Database, models: &[ReadModel], result: &Result<Rebuilt, RebuildError>) {
    let (status, replayed, error) = match result {
        Ok(rebuilt) => ("completed", rebuilt.events as i64, None),
        Err(e) => ("failed", 0, Some(error_chain(e))),
    };
    for model in models {
        let outcome = sqlx::query(
            "UPDATE projection_rebuilds SET status = $2, replayed = CASE WHEN $3 > 0 THEN $3 ELSE replayed END, \
               total = CASE WHEN $3 > 0 THEN $3 ELSE total END, updated_at = $4, finished_at = $4, error = $5 \
             WHERE name = $1",
        )
        .bind(model.name())
        .bind(status)
        .bind(replayed)
        .bind(jiff::Timestamp::now().to_string())
        .bind(error.clone())
        .execute(&db.pool)
        .await;
        if let Err(e) = outcome {
            tracing::warn!(error = %error_chain(&e), "recording the rebuild's outcome failed");
        }
    }
}

/// A write transaction on a pooled connection. On SQLite it takes the write lock at once
/// (`BEGIN IMMEDIATE`): a transaction that reads first and writes later fails when another
/// writer committed in between.
trait BeginTx {
    async fn begin_tx(&mut self, dialect: Dialect) -> DbResult<sqlx::Transaction<'_, sqlx::Any>>;
}

impl BeginTx for sqlx::pool::PoolConnection<sqlx::Any> {
    async fn begin_tx(&mut self, dialect: Dialect) -> DbResult<sqlx::Transaction<'_, sqlx::Any>> {
        match dialect {
            Dialect::Sqlite => sqlx::Connection::begin_with(&mut **self, "BEGIN IMMEDIATE").await,
            Dialect::Postgres => sqlx::Connection::begin(&mut **self).await,
        }
    }
}

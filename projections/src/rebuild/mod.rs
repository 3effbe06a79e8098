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

mod claim;
mod shadow;
mod verify;
pub use claim::claim;
use claim::{Reporter, finish};
use shadow::{create_shadow, swap};
pub use verify::{Difference, DifferenceKind, verify};

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
    on_progress: impl FnMut(&Progress),
) -> Result<Rebuilt, RebuildError> {
    let result = async {
        let started = Instant::now();
        let types = aggregate_types(models);
        let total = count_events(db, &types).await? as u64;
        let mut tracker =
            Tracker { db, models, progress: Progress::new(total), reporter: Reporter::default(), on_progress };
        let at = fold_into_shadow(&mut tracker, &types).await?;
        let mut conn = db.pool.acquire().await?;
        let at = catch_up(&mut tracker, &mut conn, &types, at).await?;
        let rows = swap_in(&mut tracker, &mut conn, &types, at).await?;
        let mut progress = tracker.progress;
        progress.advance(0);
        progress.total = progress.replayed;
        (tracker.on_progress)(&progress);
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

/// A rebuild's progress, told to its caller after each page and recorded for `status`.
struct Tracker<'a, F> {
    db: &'a Database,
    models: &'a [ReadModel],
    progress: Progress,
    reporter: Reporter,
    on_progress: F,
}

impl<F: FnMut(&Progress)> Tracker<'_, F> {
    async fn advanced(&mut self, events: usize) {
        self.progress.advance(events);
        (self.on_progress)(&self.progress);
        self.reporter.report(self.db, self.models, &self.progress).await;
    }
}

/// Step 1: folds the log in memory and writes each row once into fresh shadow tables; where
/// in the log it got.
async fn fold_into_shadow<F: FnMut(&Progress)>(
    tracker: &mut Tracker<'_, F>,
    types: &[&'static str],
) -> Result<Position, RebuildError> {
    let (db, models) = (tracker.db, tracker.models);
    let mut folded = Folded::of(tables(models));
    let mut at = Position::default();
    // The next page is read while this one is folded.
    let mut pages = read_ahead(db.clone(), types.to_vec());
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
        tracker.advanced(page.len()).await;
    }
    let mut conn = db.pool.acquire().await?;
    let mut tx = conn.begin_tx(db.dialect).await?;
    for table in tables(models) {
        create_shadow(&mut tx, db.dialect, table.name).await?;
    }
    folded.write(&mut tx, SHADOW).await?;
    tx.commit().await?;
    Ok(at)
}

/// Step 2: applies what was written meanwhile to the shadow tables, event by event.
async fn catch_up<F: FnMut(&Progress)>(
    tracker: &mut Tracker<'_, F>,
    conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
    types: &[&'static str],
    mut at: Position,
) -> Result<Position, RebuildError> {
    let dialect = tracker.db.dialect;
    loop {
        let page = log::read_for_replay(conn, dialect, at, types, PAGE).await?;
        if page.is_empty() {
            break;
        }
        let mut tx = conn.begin_tx(dialect).await?;
        at = apply_to_shadow(&mut tx, tracker.models, &page, at).await?;
        tx.commit().await?;
        tracker.advanced(page.len()).await;
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    Ok(at)
}

/// Step 3: holding the checkpoints, applies the last events, swaps each shadow in and moves
/// the checkpoints to where the shadows got; each table's row count.
async fn swap_in<F>(
    tracker: &mut Tracker<'_, F>,
    conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
    types: &[&'static str],
    mut at: Position,
) -> Result<BTreeMap<&'static str, u64>, RebuildError> {
    let (dialect, models) = (tracker.db.dialect, tracker.models);
    let mut tx = conn.begin_tx(dialect).await?;
    hold_checkpoints(&mut tx, models).await?;
    loop {
        let page = log::read_for_replay(&mut tx, dialect, at, types, PAGE).await?;
        at = apply_to_shadow(&mut tx, models, &page, at).await?;
        tracker.progress.advance(page.len());
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    let mut rows = BTreeMap::new();
    for table in tables(models) {
        swap(&mut tx, dialect, table.name).await?;
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
    Ok(rows)
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

//! The projector: follows the event log and keeps every read model and its checkpoint in step,
//! one transaction per read model per batch, so a crash leaves each table consistent with its
//! checkpoint and a restart resumes where it stopped. Writers wake it after each commit and wait
//! (bounded) until the read models their event concerns have passed it: read-your-writes.
//!
//! On PostgreSQL several mcpd replicas share the tables: each read model is run by whichever
//! replica holds its advisory lock (on a connection of its own, so the lock dies with the
//! process), and the others take over within a second or two when that replica dies. Replicas
//! that do not run a read model wait for its checkpoint in the database instead. On SQLite
//! there is one process per file, and it runs everything.
//!
//! An event a read model cannot apply (a payload this version cannot read) stops that read
//! model alone, with the error in its status; a database error while applying is retried with
//! a back-off, also visible. Neither holds up the other read models.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::{AnyConnection, Connection, Row};
use tokio::sync::{Notify, watch};

use crate::db::{Database, DbResult, Dialect, LOCK_CLASS};
use crate::log::{EventLog, Position, StoredEvent};
use crate::read_models::{ApplyError, ReadModel};

mod checkpoints;
mod handle;
mod locks;

pub use checkpoints::stored_checkpoints;
pub(crate) use checkpoints::{ensure_checkpoints, load_checkpoint};
use handle::{Advanced, Shared};
pub use handle::{Appending, LocalStatus, ProjectorHandle, WaitError};

#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    /// Events read from the log per round.
    pub batch_size: i64,
    /// How often the log is polled when nobody wakes the projector (writes by other processes).
    pub poll_interval: Duration,
    /// How often a replica tries to take over read models another replica runs (PostgreSQL).
    pub lock_interval: Duration,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        Self { batch_size: 500, poll_interval: Duration::from_millis(200), lock_interval: Duration::from_secs(1) }
    }
}

/// How often the stored checkpoint of a read model that had nothing to apply is brought up to
/// where the projector got: at most this often, not on every event.
const CARRY_EVERY: Duration = Duration::from_secs(1);

/// One read model's state inside the projector task.
#[derive(Debug, Clone)]
struct Model {
    model: ReadModel,
    checkpoint: Position,
    running_here: bool,
    /// A poison event: the checkpoint at which it stopped.
    stopped_at: Option<Position>,
    /// A failed write: retried after this instant.
    retry_at: Option<Instant>,
    failures: u32,
    error: Option<String>,
    /// The checkpoint as stored, as far as this process knows, and when it last wrote it for
    /// a read model with nothing to apply.
    stored: Position,
    carried_at: Option<Instant>,
    /// Whether `projection_checkpoints.last_error` may hold an error (this process's, another
    /// replica's before a takeover): the next successful apply clears it, and only then.
    error_may_be_stored: bool,
}

pub struct Projector {
    db: Database,
    log: EventLog,
    config: ProjectorConfig,
    models: Vec<Model>,
    wake: Arc<Notify>,
    rounds: Arc<watch::Sender<u64>>,
    passes: Arc<watch::Sender<u64>>,
    status: Shared,
    advanced: Advanced,
    /// PostgreSQL: the connection holding this process's advisory locks.
    locks: Option<AnyConnection>,
    next_lock_attempt: Instant,
}

impl Projector {
    /// Loads the checkpoints and starts following the log in the background.
    pub async fn start(db: Database, config: ProjectorConfig) -> DbResult<ProjectorHandle> {
        ensure_checkpoints(&db).await?;
        let mut models = Vec::new();
        for model in ReadModel::ALL {
            let checkpoint = load_checkpoint(&db, model).await?;
            models.push(Model {
                model,
                checkpoint,
                stored: checkpoint,
                carried_at: None,
                running_here: db.dialect == Dialect::Sqlite,
                stopped_at: None,
                retry_at: None,
                failures: 0,
                error: None,
                error_may_be_stored: true,
            });
        }
        let rounds = Arc::new(watch::Sender::new(0));
        let passes = Arc::new(watch::Sender::new(0));
        let wake = Arc::new(Notify::new());
        let status: Shared = Arc::new(Mutex::new(HashMap::new()));
        let advanced: Advanced = Arc::new(Mutex::new(HashMap::new()));
        let mut projector = Projector {
            log: EventLog::new(db.clone()),
            db: db.clone(),
            config,
            models,
            wake: wake.clone(),
            rounds: rounds.clone(),
            passes: passes.clone(),
            status: status.clone(),
            advanced: advanced.clone(),
            locks: None,
            next_lock_attempt: Instant::now(),
        };
        if db.dialect == Dialect::Postgres {
            // Take what is free before serving, so a lone replica runs everything from the start.
            if let Err(error) = projector.take_locks().await {
                tracing::warn!(error = %error_chain(&error), "taking the projector locks failed; retrying");
            }
        }
        projector.publish();
        let task = tokio::spawn(projector.run());
        Ok(ProjectorHandle {
            db,
            wake,
            rounds,
            passes,
            status,
            advanced,
            waiters: Arc::new(AtomicUsize::new(0)),
            appends: Arc::new(AtomicUsize::new(0)),
            task: Arc::new(task),
        })
    }

    async fn run(mut self) {
        loop {
            if self.db.dialect == Dialect::Postgres
                && Instant::now() >= self.next_lock_attempt
                && let Err(error) = self.take_locks().await
            {
                tracing::warn!(error = %error_chain(&error), "the projector lock connection failed; reconnecting");
                self.release_locks();
            }
            if let Err(error) = self.refresh_stopped().await {
                tracing::warn!(error = %error_chain(&error), "reading projection checkpoints failed");
            }
            let more = match self.round().await {
                Ok(more) => more,
                Err(error) => {
                    tracing::warn!(error = %error_chain(&error), "reading the event log failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    false
                }
            };
            self.publish();
            if !more {
                let _ = tokio::time::timeout(self.config.poll_interval, self.wake.notified()).await;
            }
        }
    }

    /// Shares the models' state with the handle and wakes waiters.
    fn publish(&self) {
        {
            let mut status = self.status.lock().expect("projector status lock");
            for m in &self.models {
                // A write applied inline may have moved it since this round took it up.
                let checkpoint = status.get(m.model.name()).map_or(m.checkpoint, |s| s.checkpoint.max(m.checkpoint));
                status.insert(
                    m.model.name(),
                    LocalStatus {
                        running_here: m.running_here,
                        checkpoint,
                        error: m.error.clone(),
                        stopped: m.stopped_at.is_some(),
                    },
                );
            }
        }
        self.rounds.send_modify(|n| *n += 1);
        self.passes.send_modify(|n| *n += 1);
    }

    fn active(&self) -> Vec<usize> {
        let now = Instant::now();
        (0..self.models.len())
            .filter(|&i| {
                let m = &self.models[i];
                m.running_here && m.stopped_at.is_none() && m.retry_at.is_none_or(|at| at <= now)
            })
            .collect()
    }

    /// Takes up the checkpoints that writes moved by applying their events inline.
    fn take_advanced(&mut self) {
        let advanced: Vec<(&'static str, Position)> =
            self.advanced.lock().expect("projector advanced lock").drain().collect();
        for (name, position) in advanced {
            if let Some(m) = self.models.iter_mut().find(|m| m.model.name() == name) {
                m.checkpoint = m.checkpoint.max(position);
                m.stored = m.stored.max(position);
            }
        }
    }

    /// Projects one batch; true when the log may hold more right away.
    async fn round(&mut self) -> DbResult<bool> {
        self.take_advanced();
        let active = self.active();
        let Some(from) = active.iter().map(|&i| self.models[i].checkpoint).min() else {
            return Ok(false);
        };
        let batch = self.log.read_after(from, self.config.batch_size).await?;
        // Read models with nothing of theirs in the batch reach its end without a write: their
        // stored checkpoints are brought up at most every `CARRY_EVERY`, not on every event.
        let mut carry: Vec<usize> = Vec::new();
        let mut work = Vec::new();
        for i in active {
            let checkpoint = self.models[i].checkpoint;
            let pending: Vec<&StoredEvent> = batch.iter().filter(|e| e.position > checkpoint).collect();
            if let Some(last) = pending.last().map(|e| e.position) {
                if pending.iter().any(|e| self.models[i].model.handles(&e.aggregate_type)) {
                    work.push((i, last, pending));
                    continue;
                }
                self.models[i].checkpoint = last;
            }
            let m = &self.models[i];
            if m.checkpoint > m.stored && m.carried_at.is_none_or(|at| at.elapsed() >= CARRY_EVERY) {
                carry.push(i);
            }
        }
        if !carry.is_empty() {
            self.store_carried(&carry).await?;
        }
        for (i, last, pending) in work {
            if let Some(outcome) = self.apply_pending(i, last, pending).await? {
                self.take_outcome(i, last, outcome).await;
            }
        }
        Ok(batch.len() as i64 == self.config.batch_size)
    }

    /// Applies `pending` (ending at `last`) to read model `i`. Writes applied inline while this
    /// round ran, here or (found by a failed compare-and-set) on another replica, narrow what is
    /// left to apply; the batch is not read again for them. `None` when nothing was left, or
    /// when the checkpoint kept moving under three attempts (the next round goes on).
    async fn apply_pending(
        &mut self,
        i: usize,
        last: Position,
        mut pending: Vec<&StoredEvent>,
    ) -> DbResult<Option<Result<bool, ApplyError>>> {
        for _ in 0..3 {
            self.take_advanced();
            let (model, stored) = (self.models[i].model, self.models[i].stored);
            pending.retain(|e| e.position > stored);
            if !pending.iter().any(|e| model.handles(&e.aggregate_type)) {
                let m = &mut self.models[i];
                m.checkpoint = m.checkpoint.max(last);
                return Ok(None);
            }
            let clear_error = self.models[i].error_may_be_stored;
            match apply(&self.db, model, stored, last, &pending, clear_error).await {
                Ok(false) => {
                    let reached = load_checkpoint(&self.db, model).await?;
                    let m = &mut self.models[i];
                    m.stored = m.stored.max(reached);
                    m.checkpoint = m.checkpoint.max(reached);
                }
                done => return Ok(Some(done)),
            }
        }
        Ok(None)
    }

    /// Takes up how applying up to `last` went for read model `i`: moved on, retried after a
    /// back-off (a database error), or stopped (an event it cannot apply).
    async fn take_outcome(&mut self, i: usize, last: Position, outcome: Result<bool, ApplyError>) {
        let Model { model, checkpoint, .. } = self.models[i];
        match outcome {
            Ok(_) => {
                let m = &mut self.models[i];
                if m.error.is_some() {
                    tracing::info!(read_model = model.name(), "the read model is applying events again");
                }
                m.checkpoint = m.checkpoint.max(last);
                m.stored = m.stored.max(last);
                m.error_may_be_stored = false;
                m.retry_at = None;
                m.failures = 0;
                m.error = None;
            }
            Err(ApplyError::Database(e)) => {
                let error = format!("applying events after {checkpoint:?}: {}", error_chain(&e));
                let m = &mut self.models[i];
                m.failures += 1;
                let backoff = Duration::from_millis(250 << m.failures.min(7));
                tracing::warn!(read_model = model.name(), %error, ?backoff, "applying events failed; retrying");
                m.retry_at = Some(Instant::now() + backoff);
                m.error = Some(error.clone());
                m.error_may_be_stored = true;
                record_error(&self.db, model, &error).await;
            }
            Err(poison) => {
                let error = error_chain(&poison);
                tracing::error!(read_model = model.name(), %error, "read model stopped at an event it cannot apply");
                let m = &mut self.models[i];
                m.stopped_at = Some(checkpoint);
                m.error = Some(error.clone());
                m.error_may_be_stored = true;
                record_error(&self.db, model, &error).await;
            }
        }
    }

    /// Writes the checkpoints of read models that had nothing to apply, in one transaction
    /// (rows in the order of `ReadModel::ALL`). A row another process moved further is left.
    async fn store_carried(&mut self, carry: &[usize]) -> DbResult<()> {
        let mut tx = begin_derived(&self.db).await?;
        for &i in carry {
            let m = &self.models[i];
            sqlx::query(
                "UPDATE projection_checkpoints SET transaction_id = $2, position = $3 \
                 WHERE name = $1 AND (transaction_id < $2 OR (transaction_id = $2 AND position < $3))",
            )
            .bind(m.model.name())
            .bind(m.checkpoint.transaction_id)
            .bind(m.checkpoint.position)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let now = Instant::now();
        for &i in carry {
            let m = &mut self.models[i];
            m.stored = m.checkpoint;
            m.carried_at = Some(now);
        }
        Ok(())
    }
}

/// Applies `events` to one read model and moves its checkpoint from `stored` to `last`, in
/// one transaction. Returns `false`, having changed nothing, when the stored checkpoint is not
/// `stored`: another process (a write applied inline, another replica, a rebuild) moved it.
async fn apply(
    db: &Database,
    model: ReadModel,
    stored: Position,
    last: Position,
    events: &[&StoredEvent],
    clear_error: bool,
) -> Result<bool, ApplyError> {
    let mut tx = begin_derived(db).await?;
    // The checkpoint is written first: on SQLite the transaction takes the write lock at once
    // instead of failing to upgrade a read lock later, and on PostgreSQL a second process
    // working on the same read model (or a rebuild swapping it) waits here, then finds the
    // checkpoint moved.
    let updated_at = events.last().map(|e| e.recorded_at.as_str()).unwrap_or_default();
    let moved = sqlx::query(
        "UPDATE projection_checkpoints SET transaction_id = $2, position = $3, updated_at = $4 \
         WHERE name = $1 AND transaction_id = $5 AND position = $6",
    )
    .bind(model.name())
    .bind(last.transaction_id)
    .bind(last.position)
    .bind(updated_at)
    .bind(stored.transaction_id)
    .bind(stored.position)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        > 0;
    if !moved {
        tx.rollback().await?;
        return Ok(false);
    }
    if clear_error {
        sqlx::query("UPDATE projection_checkpoints SET last_error = NULL WHERE name = $1 AND last_error IS NOT NULL")
            .bind(model.name())
            .execute(&mut *tx)
            .await?;
    }
    model.apply_all(&mut tx, events).await?;
    tx.commit().await?;
    Ok(true)
}

/// Begins a projector transaction. On PostgreSQL it commits without waiting for its WAL to
/// reach the disk (set in the same round trip as its `BEGIN`). The projector's transactions hold
/// derived data only, each with its checkpoint, so a database crash can lose a last few of them
/// whole and never in part: the projector then applies those events again from the durable log.
/// A durable commit that saw their effects (a write inlined after them) flushes the WAL they are
/// in, so nothing durable depends on one that was lost. Waiting for the disk here added one
/// flush to every write the projector shows (measured: docs/performance.md, "Issue 26").
async fn begin_derived(db: &Database) -> DbResult<sqlx::Transaction<'static, sqlx::Any>> {
    match db.dialect {
        Dialect::Postgres => db.pool.begin_with("BEGIN; SET LOCAL synchronous_commit = off").await,
        Dialect::Sqlite => db.pool.begin().await,
    }
}

/// Keeps the error where every replica's status can see it. Best effort: the error is also
/// logged and held in memory.
async fn record_error(db: &Database, model: ReadModel, error: &str) {
    let result = sqlx::query("UPDATE projection_checkpoints SET last_error = $2, error_at = $3 WHERE name = $1")
        .bind(model.name())
        .bind(error)
        .bind(jiff::Timestamp::now().to_string())
        .execute(&db.pool)
        .await;
    if let Err(e) = result {
        tracing::warn!(read_model = model.name(), error = %error_chain(&e), "recording the projection error failed");
    }
}

/// An error with its causes, for logs.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

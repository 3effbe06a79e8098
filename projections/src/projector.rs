//! The projector: follows the event log and keeps every read model and its checkpoint in step,
//! one transaction per read model per batch, so a crash leaves each table consistent with its
//! checkpoint and a restart resumes where it stopped. Writers wake it after each commit and wait
//! (bounded) until it has passed their event, which gives clients read-your-writes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::Row;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::db::{Database, DbResult};
use crate::log::{EventLog, Position, StoredEvent};
use crate::read_models::{ApplyError, ReadModel};

#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    /// Events read from the log per round.
    pub batch_size: i64,
    /// How often the log is polled when nobody wakes the projector (writes by other processes).
    pub poll_interval: Duration,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        Self { batch_size: 500, poll_interval: Duration::from_millis(200) }
    }
}

/// Why a wait for a position did not end with the read models there.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("read model {name} is stopped: {error}")]
    Stopped { name: &'static str, error: String },
    #[error("the read models did not reach the change within {0:?}")]
    TimedOut(Duration),
}

/// Handle to a running projector.
#[derive(Debug, Clone)]
pub struct ProjectorHandle {
    wake: Arc<Notify>,
    projected: watch::Receiver<Position>,
    stopped: Arc<Mutex<HashMap<&'static str, String>>>,
    task: Arc<JoinHandle<()>>,
}

impl ProjectorHandle {
    /// Tells the projector the log has grown.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The position every running read model has reached.
    pub fn projected(&self) -> Position {
        *self.projected.borrow()
    }

    /// Waits until every read model has applied the event at `target`, at most `timeout`.
    pub async fn wait_for(&self, target: Position, timeout: Duration) -> Result<(), WaitError> {
        self.wake();
        let mut projected = self.projected.clone();
        let reached = tokio::time::timeout(timeout, projected.wait_for(|p| *p >= target)).await;
        if let Ok(Ok(_)) = reached {
            return Ok(());
        }
        let stopped = self.stopped.lock().expect("projector status lock");
        match stopped.iter().next() {
            Some((name, error)) => Err(WaitError::Stopped { name, error: error.clone() }),
            None => Err(WaitError::TimedOut(timeout)),
        }
    }

    /// Stops the projector. Work in flight is rolled back and redone at the next start.
    pub fn shutdown(&self) {
        self.task.abort();
    }
}

pub struct Projector {
    db: Database,
    log: EventLog,
    config: ProjectorConfig,
    checkpoints: HashMap<&'static str, Position>,
    wake: Arc<Notify>,
    projected: watch::Sender<Position>,
    stopped: Arc<Mutex<HashMap<&'static str, String>>>,
}

impl Projector {
    /// Loads the checkpoints and starts following the log in the background.
    pub async fn start(db: Database, config: ProjectorConfig) -> DbResult<ProjectorHandle> {
        let checkpoints = load_checkpoints(&db).await?;
        let start = checkpoints.values().copied().min().unwrap_or_default();
        let (projected, receiver) = watch::channel(start);
        let wake = Arc::new(Notify::new());
        let stopped = Arc::new(Mutex::new(HashMap::new()));
        let projector = Projector {
            log: EventLog::new(db.clone()),
            db,
            config,
            checkpoints,
            wake: wake.clone(),
            projected,
            stopped: stopped.clone(),
        };
        let task = tokio::spawn(projector.run());
        Ok(ProjectorHandle { wake, projected: receiver, stopped, task: Arc::new(task) })
    }

    async fn run(mut self) {
        loop {
            match self.round().await {
                Ok(true) => continue,
                Ok(false) => {
                    let _ = tokio::time::timeout(self.config.poll_interval, self.wake.notified()).await;
                }
                Err(error) => {
                    tracing::warn!(error = %error_chain(&error), "reading the event log failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn running(&self) -> Vec<ReadModel> {
        let stopped = self.stopped.lock().expect("projector status lock");
        ReadModel::ALL.into_iter().filter(|m| !stopped.contains_key(m.name())).collect()
    }

    /// Projects one batch; true when the log may hold more right away.
    async fn round(&mut self) -> DbResult<bool> {
        let running = self.running();
        let Some(from) = running.iter().map(|m| self.checkpoints[m.name()]).min() else {
            return Ok(false);
        };
        let batch = self.log.read_after(from, self.config.batch_size).await?;
        for model in running {
            let checkpoint = self.checkpoints[model.name()];
            let pending: Vec<&StoredEvent> = batch.iter().filter(|e| e.position > checkpoint).collect();
            let Some(last) = pending.last().map(|e| e.position) else {
                continue;
            };
            if !pending.iter().any(|e| model.handles(&e.aggregate_type)) {
                // Nothing here for this read model: it has reached `last` without a write. Its
                // stored checkpoint stays behind, which costs a re-scan after a restart, never a
                // missed event; writing it would cost a commit per read model per event.
                self.checkpoints.insert(model.name(), last);
                continue;
            }
            match self.apply(model, last, &pending).await {
                Ok(true) => {
                    self.checkpoints.insert(model.name(), last);
                }
                Ok(false) => {
                    let reached = load_checkpoint(&self.db, model).await?;
                    self.checkpoints.insert(model.name(), reached);
                }
                Err(ApplyError::Database(e)) => return Err(e),
                Err(poison) => {
                    let error = error_chain(&poison);
                    tracing::error!(read_model = model.name(), %error, "read model stopped at an event it cannot apply");
                    self.stopped.lock().expect("projector status lock").insert(model.name(), error);
                }
            }
        }
        let running = self.running();
        if let Some(reached) = running.iter().map(|m| self.checkpoints[m.name()]).min() {
            self.projected.send_replace(reached);
        }
        Ok(batch.len() as i64 == self.config.batch_size)
    }

    /// Applies `events` to one read model and moves its checkpoint, in one transaction.
    /// Returns `false`, having changed nothing, when another process has already moved the
    /// checkpoint past `last`.
    async fn apply(&self, model: ReadModel, last: Position, events: &[&StoredEvent]) -> Result<bool, ApplyError> {
        let mut tx = self.db.pool.begin().await?;
        // The checkpoint is written first: on SQLite the transaction takes the write lock at
        // once instead of failing to upgrade a read lock later, and on PostgreSQL a second
        // process working on the same read model waits here, then finds the checkpoint moved.
        let moved = sqlx::query(
            "UPDATE projection_checkpoints SET transaction_id = $2, position = $3, updated_at = $4 \
             WHERE name = $1 AND (transaction_id < $2 OR (transaction_id = $2 AND position < $3))",
        )
        .bind(model.name())
        .bind(last.transaction_id)
        .bind(last.position)
        .bind(events.last().map(|e| e.recorded_at.as_str()).unwrap_or_default())
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        for event in events {
            model.apply(&mut tx, event).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

async fn load_checkpoints(db: &Database) -> DbResult<HashMap<&'static str, Position>> {
    let mut checkpoints = HashMap::new();
    for model in ReadModel::ALL {
        sqlx::query(
            "INSERT INTO projection_checkpoints (name, transaction_id, position, updated_at) VALUES ($1, 0, 0, '') \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(model.name())
        .execute(&db.pool)
        .await?;
        checkpoints.insert(model.name(), load_checkpoint(db, model).await?);
    }
    Ok(checkpoints)
}

async fn load_checkpoint(db: &Database, model: ReadModel) -> DbResult<Position> {
    let row = sqlx::query("SELECT transaction_id, position FROM projection_checkpoints WHERE name = $1")
        .bind(model.name())
        .fetch_one(&db.pool)
        .await?;
    Ok(Position { transaction_id: row.try_get("transaction_id")?, position: row.try_get("position")? })
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

//! The handle writers and readers hold to a running projector: waking it, waiting for a
//! position, telling it what an append applied inline.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::checkpoints::stored_checkpoints;
use crate::db::Database;
use crate::log::Position;
use crate::read_models::ReadModel;

/// Why a wait for a position did not end with the read models there.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("read model {name} is stopped: {error}")]
    Stopped { name: &'static str, error: String },
    #[error("the read models did not reach the change within {0:?}")]
    TimedOut(Duration),
    #[error("reading the projection checkpoints: {0}")]
    Database(#[from] sqlx::Error),
}

/// What this process knows about one read model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalStatus {
    /// Whether this process runs the read model (always, on SQLite).
    pub running_here: bool,
    /// How far this process has brought it.
    pub checkpoint: Position,
    /// Set when the read model stopped at an event it cannot apply, or when applying failed
    /// and is being retried.
    pub error: Option<String>,
    /// True when the error stopped it (a poison event) rather than being retried.
    pub stopped: bool,
}

pub(super) type Shared = Arc<Mutex<HashMap<&'static str, LocalStatus>>>;

/// Checkpoints moved by writes that applied their events inline, for the projector to take up.
pub(super) type Advanced = Arc<Mutex<HashMap<&'static str, Position>>>;

/// Handle to a running projector.
#[derive(Debug, Clone)]
pub struct ProjectorHandle {
    pub(super) db: Database,
    pub(super) wake: Arc<Notify>,
    pub(super) rounds: Arc<watch::Sender<u64>>,
    /// Passes over the log the projector finished (its rounds alone, not inline moves).
    pub(super) passes: Arc<watch::Sender<u64>>,
    pub(super) status: Shared,
    pub(super) advanced: Advanced,
    /// Writes waiting in `wait_for`: while there are any, every append wakes the projector.
    pub(super) waiters: Arc<AtomicUsize>,
    /// Appends in flight in this process (`appending`).
    pub(super) appends: Arc<AtomicUsize>,
    pub(super) task: Arc<JoinHandle<()>>,
}

/// An append in flight (`ProjectorHandle::appending`).
pub struct Appending(Arc<AtomicUsize>);

impl Drop for Appending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts a waiter for as long as it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ProjectorHandle {
    /// Tells the projector the log has grown.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The read models not stopped at an event they cannot apply, as far as this process knows.
    pub fn healthy_models(&self) -> Vec<ReadModel> {
        let status = self.status.lock().expect("projector status lock");
        ReadModel::ALL.into_iter().filter(|m| !status.get(m.name()).is_some_and(|s| s.stopped)).collect()
    }

    /// Counts an append for as long as the guard lives; whether it was the only one in flight
    /// in this process when it began.
    pub fn appending(&self) -> (Appending, bool) {
        let before = self.appends.fetch_add(1, Ordering::SeqCst);
        (Appending(self.appends.clone()), before == 0)
    }

    /// Whether a write is waiting for the projector.
    pub fn has_waiters(&self) -> bool {
        self.waiters.load(Ordering::SeqCst) > 0
    }

    /// Tells the projector the log has grown if a write is waiting for it. A write applied
    /// inline gives the projector nothing to do, but on PostgreSQL its commit may be what a
    /// waiting write's event was held back by (the log is read only below the oldest running
    /// transaction).
    pub fn wake_for_waiters(&self) {
        if self.has_waiters() {
            self.wake();
        }
    }

    /// Tells the projector that a write applied its events to `models` inline, moving their
    /// checkpoints to `position` (committed): it need not apply them again, and waiters see it.
    pub fn advanced(&self, models: &[ReadModel], position: Position) {
        if models.is_empty() {
            return;
        }
        {
            let mut advanced = self.advanced.lock().expect("projector advanced lock");
            let mut status = self.status.lock().expect("projector status lock");
            for model in models {
                let at = advanced.entry(model.name()).or_default();
                *at = (*at).max(position);
                if let Some(s) = status.get_mut(model.name()) {
                    s.checkpoint = s.checkpoint.max(position);
                }
            }
        }
        self.rounds.send_modify(|n| *n += 1);
    }

    /// Waits until the projector has finished `count` more passes over the log, waking it for
    /// each: for a test asserting what a pass did not do, without sleeping for it.
    pub async fn passes(&self, count: u64) {
        let mut passes = self.passes.subscribe();
        let until = *passes.borrow_and_update() + count;
        while *passes.borrow_and_update() < until {
            self.wake();
            if passes.changed().await.is_err() {
                return;
            }
        }
    }

    /// What this process knows about each read model.
    pub fn local_status(&self) -> HashMap<&'static str, LocalStatus> {
        self.status.lock().expect("projector status lock").clone()
    }

    /// Waits until the read models `concerned` (those the event changes) have passed the event
    /// at `target`, at most `timeout`: then a reader of them sees that event and everything
    /// before it. If one of them is stopped, the wait fails at once. Read models another
    /// replica runs are followed through their stored checkpoints. Other read models are not
    /// waited for: their stored checkpoints move only when they have something to apply (or at
    /// most every [`CARRY_EVERY`]), and nothing the event changed is read from them.
    pub async fn wait_for(
        &self,
        concerned: &[ReadModel],
        target: Position,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        let _waiting = Waiting::new(&self.waiters);
        self.wake();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rounds = self.rounds.subscribe();
        loop {
            let (mut remote, mut behind) = (Vec::new(), false);
            {
                let status = self.status.lock().expect("projector status lock");
                for &model in concerned {
                    let s = &status[model.name()];
                    if s.stopped {
                        let error = s.error.clone().unwrap_or_default();
                        return Err(WaitError::Stopped { name: model.name(), error });
                    }
                    if !s.running_here {
                        remote.push(model);
                    } else if s.checkpoint < target {
                        behind = true;
                    }
                }
            }
            if !remote.is_empty() {
                // One query for all of them: this runs every few milliseconds while a write waits.
                let stored = stored_checkpoints(&self.db).await?;
                behind |= remote.iter().any(|m| stored.get(m).is_some_and(|reached| *reached < target));
            }
            if !behind {
                return Ok(());
            }
            // Local progress is announced; remote progress is polled.
            let pause = if remote.is_empty() { Duration::from_secs(3600) } else { Duration::from_millis(25) };
            let wakeup = tokio::time::Instant::now() + pause;
            if tokio::time::timeout_at(deadline.min(wakeup), rounds.changed()).await.is_err()
                && tokio::time::Instant::now() >= deadline
            {
                return Err(WaitError::TimedOut(timeout));
            }
        }
    }

    /// Stops the projector. Work in flight is rolled back and redone at the next start; on
    /// PostgreSQL its advisory locks are released with its connection.
    pub fn shutdown(&self) {
        self.task.abort();
    }
}

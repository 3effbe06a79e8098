//! Recording refused requests (401 and 403) in their own audit stream (`access_denials`, see
//! `projections::denials`): who or which peer, what, when and why; never a token or a value.
//! Vault and Kubernetes audit denied requests too; the event log records changes only.
//!
//! A refusal costs its request nothing: it is queued and written in batches by one task. A
//! flood cannot fill the disk: at most [`RATE`] refusals a second (burst [`BURST`]) are
//! recorded one by one, the rest are counted and recorded as one row saying how many; the
//! table keeps the newest [`KEEP`] rows. Depends on `projections` only.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota};
use projections::Database;
use projections::denials::{self, Denial};
use tokio::sync::mpsc;

/// Refusals recorded one by one per second, and the burst above it.
pub const RATE: u32 = 50;
pub const BURST: u32 = 200;
/// Rows kept; older ones are deleted.
pub const KEEP: i64 = 100_000;
/// Refusals waiting to be written, at most.
const QUEUE: usize = 1024;

/// The recorder: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Recorder {
    queue: mpsc::Sender<Denial>,
    limit: Arc<DefaultDirectRateLimiter>,
    /// Refusals not recorded one by one since the last summary row.
    suppressed: Arc<AtomicI64>,
}

impl Recorder {
    /// A recorder writing to `db`, and its writer task (needs a Tokio runtime).
    pub fn start(db: Database) -> Recorder {
        let (queue, mut rows) = mpsc::channel::<Denial>(QUEUE);
        let quota = Quota::per_second(NonZeroU32::new(RATE).expect("not zero"))
            .allow_burst(NonZeroU32::new(BURST).expect("not zero"));
        let recorder =
            Recorder { queue, limit: Arc::new(DefaultDirectRateLimiter::direct(quota)), suppressed: Arc::default() };
        let suppressed = recorder.suppressed.clone();
        tokio::spawn(async move {
            let mut written: u64 = 0;
            loop {
                let mut batch = Vec::new();
                match tokio::time::timeout(Duration::from_secs(1), rows.recv()).await {
                    Ok(Some(row)) => batch.push(row),
                    Ok(None) => return,
                    Err(_) => {}
                }
                while batch.len() < 256 {
                    match rows.try_recv() {
                        Ok(row) => batch.push(row),
                        Err(_) => break,
                    }
                }
                // What was counted rather than recorded, once things are quiet again.
                if batch.is_empty() {
                    let count = suppressed.swap(0, Ordering::SeqCst);
                    if count > 0 {
                        batch.push(summary(count));
                    }
                }
                if batch.is_empty() {
                    continue;
                }
                if let Err(e) = denials::insert(&db, &batch).await {
                    tracing::warn!(error = %e, rows = batch.len(), "recording refused requests failed");
                    suppressed.fetch_add(batch.iter().map(weight).sum(), Ordering::SeqCst);
                    continue;
                }
                written += batch.len() as u64;
                if written >= 1000 {
                    written = 0;
                    match denials::trim(&db, KEEP).await {
                        Ok(gone) if gone > 0 => tracing::info!(gone, "forgot the oldest refused requests"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "trimming the refused requests failed"),
                    }
                }
            }
        });
        recorder
    }

    /// Records `denial`, or counts it when more come than the rate allows.
    pub fn record(&self, denial: Denial) {
        if self.limit.check().is_err() || self.queue.try_send(denial).is_err() {
            self.suppressed.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// How many refusals a row stands for.
fn weight(row: &Denial) -> i64 {
    row.suppressed.max(1)
}

/// The row standing for `count` refusals not recorded one by one.
fn summary(count: i64) -> Denial {
    Denial {
        at: denials::stamp(jiff::Timestamp::now()),
        reason: format!("{count} refused requests were not recorded one by one (more than {RATE} a second came)"),
        suppressed: count,
        ..Denial::default()
    }
}

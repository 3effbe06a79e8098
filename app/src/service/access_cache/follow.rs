//! Following the log: what other replicas (and lagging read models) changed, dropped here.

use std::sync::{Arc, Mutex, Weak};

use projections::Position;

use super::{AccessCache, FOLLOW_INTERVAL, Inner, models, restricts};
use crate::error::ApiError;
use crate::store::Store;

impl AccessCache {
    /// Drops what the access events recorded since the last call change, as far as the read
    /// models of those events show them (so what is loaded again includes them).
    ///
    /// The stored checkpoints are read before the events: an event its read model has passed
    /// is committed, and so is everything before it in the log (the projector never passes a
    /// transaction still running, nor does a write applied inline), so following stops at the
    /// first event its read model has not passed and never skips one that commits late. With
    /// no event pending, the follow moves on to where all three read models are stored, so its
    /// next scan of the log starts there.
    pub async fn follow(&self, store: &Store) -> Result<(), ApiError> {
        let checkpoints = projections::projector::stored_checkpoints(&store.db).await?;
        let passed_by_all = models().map(|m| checkpoints.get(&m).copied().unwrap_or_default()).min();
        let passed_by_all = passed_by_all.unwrap_or_default();
        let Some(followed) = self.lock().followed else {
            let head = store.log.head().await?;
            let mut inner = self.lock();
            // First call: whatever was loaded before may predate events never followed.
            *inner = Inner {
                generation: inner.generation + 1,
                rbac_generation: inner.rbac_generation + 1,
                followed: Some(passed_by_all),
                unshown_after: head,
                ..Inner::default()
            };
            return Ok(());
        };
        let types = models().flat_map(|m| m.aggregate_types()).collect::<Vec<_>>();
        let changed = store.log.changed_after(followed, &types).await?;
        let shown = |position: Position, aggregate_type: &str| {
            models()
                .find(|m| m.handles(aggregate_type))
                .and_then(|m| checkpoints.get(&m))
                .is_some_and(|c| *c >= position)
        };
        let ready = changed.iter().take_while(|c| shown(c.position, &c.aggregate_type)).count();
        let mut reached = changed[..ready].last().map_or(followed, |c| c.position);
        if ready == changed.len() {
            reached = reached.max(passed_by_all);
        }
        if reached <= followed && ready == changed.len() {
            return Ok(());
        }
        // Under one lock, and only if no other follow took this range meanwhile: a range
        // followed twice would drop what was loaded after its first follow, for nothing.
        let mut inner = self.lock();
        if inner.followed != Some(followed) {
            return Ok(());
        }
        for c in &changed[..ready] {
            inner.invalidate(&c.aggregate_type, &c.aggregate_id);
        }
        inner.followed = Some(reached);
        // What is followed is shown; what the log holds beyond it is not, yet.
        inner.unshown.retain(|_, at| *at > reached);
        let after = inner.unshown_after;
        // Only restrictions: anything else is dropped once it is shown, as it always was.
        let restrictions =
            changed[ready..].iter().filter(|c| c.position > after && restricts(&c.aggregate_type, &c.event_type));
        for c in restrictions {
            inner.unshown(&c.aggregate_type, &c.event_type, &c.aggregate_id, c.position);
        }
        Ok(())
    }

    /// Follows the log every [`FOLLOW_INTERVAL`] until the cache is dropped.
    pub fn spawn_follower(&self, store: Store) {
        let weak: Weak<Mutex<Inner>> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(FOLLOW_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let cache = AccessCache { inner };
                if let Err(e) = cache.follow(&store).await {
                    // Until the database answers again, nothing new can be followed; what is
                    // held stays as the last followed state said.
                    tracing::debug!(error = %e, "following access changes failed");
                }
            }
        });
    }
}

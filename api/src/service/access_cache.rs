//! What authentication needs on every request, kept in memory: tokens by id, which users
//! exist, and each user's permissions. A request costs no database round trip for them once
//! they are loaded.
//!
//! Kept current from the event log. A write on this replica drops what it changes as soon as
//! it is recorded ([`AccessCache::invalidate`]), so it takes effect on the next request here.
//! Every replica also follows the log ([`AccessCache::follow`], every
//! [`FOLLOW_INTERVAL`]): the events of users, tokens, roles and bindings up to the point the
//! access read models have all passed drop what they change, so a change recorded elsewhere
//! takes effect here within that interval plus the projection's lag.
//!
//! What is dropped is loaded again from the read models at its next use. A load that raced
//! with a drop is not kept (the generation moved), so a stale row read just before an event
//! was followed never outlives it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use domain::rbac::Permissions;
use projections::Position;
use projections::read_models::tokens::TokenState;
use projections::read_models::{ReadModel, Record};

use crate::error::ApiError;
use crate::store::Store;

/// How often every replica looks for access changes recorded anywhere.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

/// The read models the cache is loaded from.
const MODELS: [ReadModel; 3] = [ReadModel::Users, ReadModel::Tokens, ReadModel::Rbac];

#[derive(Clone)]
pub struct AccessCache {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    /// Moves at every drop: a load that started before it is not kept.
    generation: u64,
    /// Events up to here have dropped what they change; `None` until the first follow, which
    /// drops everything loaded before it.
    followed: Option<Position>,
    tokens: HashMap<String, Arc<Record<TokenState>>>,
    users: HashMap<String, bool>,
    permissions: HashMap<String, Arc<Permissions>>,
}

impl Default for AccessCache {
    fn default() -> Self {
        Self { inner: Arc::new(Mutex::new(Inner::default())) }
    }
}

impl AccessCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A token by id; `load` reads it from the read model when it is not held. Unknown tokens
    /// are not remembered (anyone can invent them).
    pub async fn token<F>(&self, id: &str, load: F) -> Result<Option<Arc<Record<TokenState>>>, ApiError>
    where
        F: Future<Output = Result<Option<Record<TokenState>>, ApiError>>,
    {
        let generation = {
            let inner = self.lock();
            if let Some(token) = inner.tokens.get(id) {
                return Ok(Some(token.clone()));
            }
            inner.generation
        };
        let Some(loaded) = load.await?.map(Arc::new) else {
            return Ok(None);
        };
        let mut inner = self.lock();
        if inner.generation == generation {
            inner.tokens.insert(id.to_owned(), loaded.clone());
        }
        Ok(Some(loaded))
    }

    /// Whether a user exists.
    pub async fn user_exists<F>(&self, name: &str, load: F) -> Result<bool, ApiError>
    where
        F: Future<Output = Result<bool, ApiError>>,
    {
        let generation = {
            let inner = self.lock();
            if let Some(exists) = inner.users.get(name) {
                return Ok(*exists);
            }
            inner.generation
        };
        let exists = load.await?;
        let mut inner = self.lock();
        if inner.generation == generation {
            inner.users.insert(name.to_owned(), exists);
        }
        Ok(exists)
    }

    /// A user's permissions.
    pub async fn permissions<F>(&self, user: &str, load: F) -> Result<Arc<Permissions>, ApiError>
    where
        F: Future<Output = Result<Permissions, ApiError>>,
    {
        let generation = {
            let inner = self.lock();
            if let Some(permissions) = inner.permissions.get(user) {
                return Ok(permissions.clone());
            }
            inner.generation
        };
        let loaded = Arc::new(load.await?);
        let mut inner = self.lock();
        if inner.generation == generation {
            inner.permissions.insert(user.to_owned(), loaded.clone());
        }
        Ok(loaded)
    }

    /// Drops what an event of `aggregate_type` on `id` changes. A role or binding can change
    /// anyone's permissions; a user's deletion ends their tokens (which are checked against
    /// the user at each use).
    pub fn invalidate(&self, aggregate_type: &str, id: &str) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        match aggregate_type {
            domain::token::AGGREGATE_TYPE => {
                inner.tokens.remove(id);
            }
            domain::user::AGGREGATE_TYPE => {
                inner.users.remove(id);
                inner.permissions.remove(id);
            }
            domain::rbac::ROLE_AGGREGATE_TYPE | domain::rbac::BINDING_AGGREGATE_TYPE => {
                inner.permissions.clear();
            }
            _ => return,
        }
        inner.generation += 1;
    }

    /// Drops what the access events recorded since the last call change, up to the point the
    /// access read models have all passed (so what is loaded again includes them).
    pub async fn follow(&self, store: &Store) -> Result<(), ApiError> {
        let passed = projections::projector::passed_by_all(&store.db, &MODELS).await?;
        let Some(followed) = self.lock().followed else {
            let mut inner = self.lock();
            // First call: whatever was loaded before may predate events never followed.
            *inner = Inner { generation: inner.generation + 1, followed: Some(passed), ..Inner::default() };
            return Ok(());
        };
        if passed <= followed {
            return Ok(());
        }
        let types = MODELS.iter().flat_map(|m| m.aggregate_types()).collect::<Vec<_>>();
        let changed = store.log.changed_between(followed, passed, &types).await?;
        for (_, aggregate_type, id) in &changed {
            self.invalidate(aggregate_type, id);
        }
        let mut inner = self.lock();
        if inner.followed.is_some_and(|f| f < passed) {
            inner.followed = Some(passed);
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

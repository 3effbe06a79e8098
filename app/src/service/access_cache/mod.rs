//! What authentication needs on every request, kept in memory: tokens by id, which users
//! exist, and each user's permissions. A request costs no database round trip for them once
//! they are loaded.
//!
//! Kept current from the event log. A write on this replica drops what it changes as soon as
//! it is recorded ([`AccessCache::invalidate`]), and again once the read models show it (when
//! they did not take it in its own transaction, a request in between reloads what they showed
//! before it), so it takes effect on the next request here after its answer.
//! Every replica also follows the log ([`AccessCache::follow`], every
//! [`FOLLOW_INTERVAL`]): the events of users, tokens, roles and bindings up to the point the
//! access read models have all passed drop what they change, so a change recorded elsewhere
//! takes effect here within that interval plus the projection's lag.
//!
//! The inference proxy keeps what it needs per call here too, under the same rules: the Llm
//! catalogue (dropped by any Llm event) and the API keys it resolved (dropped by an event of
//! their secret, so an update or a migration takes effect on the next call; every key by an
//! event of any secret backend).
//!
//! What is dropped is loaded again from the read models at its next use. A load that raced
//! with a drop is not kept (the generation moved), so a stale row read just before an event
//! was followed never outlives it.
//!
//! A change that takes access away and is in the log but not yet in the read models (they lag:
//! a transaction older than it is still open on PostgreSQL, the projector is behind or stopped)
//! is *unshown* ([`restrictions`]): until the cache has followed past it, a revoked token or a
//! deleted user counts as unknown and a deleted role or binding as granting nothing. So they
//! hold from the moment they are recorded, on the replica that recorded them at once and on the
//! others at their next follow, however far the read models lag. An Llm updated or deleted is
//! not served by the proxy meanwhile: its requests never go where it no longer sends them.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::llm::LlmSpec;
use domain::rbac::Permissions;
use projections::read_models::tokens::TokenState;
use projections::read_models::users::UserState;
use projections::read_models::{ReadModel, Record};
use projections::{Database, Position};
use secrecy::SecretString;

use crate::error::ApiError;
use domain::document::Kind;

mod follow;
mod rbac;

use self::rbac::{Loaded, Rbac, load};

/// How often every replica looks for access changes recorded anywhere.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

/// Whether the cache holds what `model` shows (and so follows its events). Every read model
/// is named: a new one is a compile error here until it is decided.
const fn held(model: ReadModel) -> bool {
    match model {
        ReadModel::Users
        | ReadModel::Tokens
        | ReadModel::Rbac
        | ReadModel::Llms
        | ReadModel::Secrets
        | ReadModel::SecretBackends => true,
        ReadModel::Migrations => false,
    }
}

/// The read models the cache is loaded from.
fn models() -> impl Iterator<Item = ReadModel> {
    ReadModel::ALL.into_iter().filter(|m| held(*m))
}

/// Which user of a name this is: a user deleted and created again under the same name has
/// another `version` (its record's resourceVersion) and a later `created_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incarnation {
    pub version: i64,
    /// When it was created, in seconds since the epoch.
    pub created_at: i64,
}

impl Incarnation {
    fn of(user: &Record<UserState>) -> Incarnation {
        let created_at = user.created_at.parse::<jiff::Timestamp>().map_or(i64::MAX, |t| t.as_second());
        Incarnation { version: user.resource_version, created_at }
    }
}

#[derive(Clone)]
pub struct AccessCache {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    /// Moves at every drop: a load that started before it is not kept.
    generation: u64,
    /// Moves at every drop of roles or bindings.
    rbac_generation: u64,
    /// Every role binding and custom role, loaded once and then patched one by one: a change
    /// to one binding costs one query, not a scan of all of them.
    rbac: Option<Rbac>,
    /// Bindings and roles changed since they were loaded: read again before any permission is
    /// worked out.
    stale_bindings: HashSet<String>,
    stale_roles: HashSet<String>,
    /// Events up to here have dropped what they change; `None` until the first follow, which
    /// drops everything loaded before it.
    followed: Option<Position>,
    /// Known tokens only (`Some`): unknown ones are never kept.
    tokens: HashMap<String, Option<Arc<Record<TokenState>>>>,
    /// Each user looked up: their incarnation when they exist (see [`Incarnation`]).
    users: HashMap<String, Option<Incarnation>>,
    permissions: HashMap<String, Arc<Permissions>>,
    /// Every Llm, for the inference proxy.
    llms: Option<Arc<Vec<Record<LlmSpec>>>>,
    /// API keys the inference proxy resolved, by `secret/key`.
    keys: HashMap<String, Arc<SecretString>>,
    /// Restrictions recorded but perhaps not shown by the read models yet, by aggregate type
    /// and id, at the newest one's position: each resource here counts as absent (module docs).
    unshown: HashMap<(String, String), Position>,
    /// The log's head when following began: what was logged before it was recorded before this
    /// process began and is not counted as unshown, or a read model being rebuilt from the
    /// start would lock everyone out until it is done.
    unshown_after: Position,
}

impl Inner {
    /// See [`AccessCache::invalidate`].
    fn invalidate(&mut self, aggregate_type: &str, id: &str) {
        let inner = self;
        match aggregate_type {
            domain::token::AGGREGATE_TYPE => {
                inner.tokens.remove(id);
            }
            domain::user::AGGREGATE_TYPE => {
                inner.users.remove(id);
                inner.permissions.remove(id);
            }
            domain::rbac::BINDING_AGGREGATE_TYPE => {
                // Who it bound loses it now; who it binds now is found when it is read again.
                if let Some(old) = inner.rbac.as_mut().and_then(|rbac| rbac.bindings.remove(id)) {
                    for u in &old.users {
                        inner.permissions.remove(u);
                    }
                }
                inner.stale_bindings.insert(id.to_owned());
                inner.rbac_generation += 1;
            }
            domain::rbac::ROLE_AGGREGATE_TYPE => {
                if let Some(rbac) = inner.rbac.as_mut() {
                    rbac.roles.remove(id);
                    for u in rbac.users_of_role(id) {
                        inner.permissions.remove(&u);
                    }
                }
                inner.stale_roles.insert(id.to_owned());
                inner.rbac_generation += 1;
            }
            domain::llm::AGGREGATE_TYPE => inner.llms = None,
            domain::secret::AGGREGATE_TYPE => {
                let prefix = format!("{id}/");
                inner.keys.retain(|k, _| !k.starts_with(&prefix));
            }
            domain::secret_backend::AGGREGATE_TYPE => inner.keys.clear(),
            _ => return,
        }
        inner.generation += 1;
    }

    /// An event recorded at `position` that the read models may not show yet: when it is one
    /// of the [`restrictions`], what it touches counts as absent until it is shown; any other is
    /// only dropped.
    fn unshown(&mut self, aggregate_type: &str, event_type: &str, id: &str, position: Position) {
        // A follow that already passed it (the projector was quick) found it shown.
        let followed = self.followed.is_some_and(|f| position <= f);
        if restricts(aggregate_type, event_type) && !followed {
            let at = self.unshown.entry((aggregate_type.to_owned(), id.to_owned())).or_default();
            if *at >= position {
                // Already counted as absent, and nothing loaded since: nothing to drop again.
                return;
            }
            *at = position;
        }
        self.invalidate(aggregate_type, id);
    }

    fn is_unshown(&self, aggregate_type: &str, id: &str) -> bool {
        !self.unshown.is_empty() && self.unshown.contains_key(&(aggregate_type.to_owned(), id.to_owned()))
    }

    /// `llms` without the unshown ones.
    fn shown_llms(&self, llms: &Arc<Vec<Record<LlmSpec>>>) -> Arc<Vec<Record<LlmSpec>>> {
        if !self.unshown.keys().any(|(t, _)| t == domain::llm::AGGREGATE_TYPE) {
            return llms.clone();
        }
        Arc::new(llms.iter().filter(|l| !self.is_unshown(domain::llm::AGGREGATE_TYPE, &l.name)).cloned().collect())
    }
}

/// The events that make what they touch count as absent while unshown: those that take access
/// away, for which absent is exactly what they lead to, and those that change where the proxy
/// sends an Llm's key or which key it sends (the Llm is not served meanwhile, 503 `Changing`:
/// neither from a URL it no longer names, nor with a key its secret no longer holds). A creation needs no
/// mark (what the read models lack is absent already), nor does an update of a role or binding
/// that only adds (as absent it would refuse everyone it still binds; it takes effect when
/// shown). One that takes anything away is recorded as narrowing (`RoleBindingNarrowed`,
/// `RoleNarrowed`) and is a restriction: until shown, the binding or role grants nothing to
/// anyone, so nobody keeps what it took away, at the cost of refusing, for that moment, those
/// it still binds (fail closed). Every kind is named: a new one does not compile until decided.
fn restrictions(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Token => &["TokenRevoked"],
        Kind::User => &["UserDeleted"],
        Kind::Role => &["RoleDeleted", "RoleNarrowed"],
        Kind::RoleBinding => &["RoleBindingDeleted", "RoleBindingNarrowed"],
        Kind::Llm => &["LlmUpdated", "LlmDeleted"],
        // A rotated key: the Llms using the secret are not served with the key it replaced.
        Kind::Secret => &["SecretUpdated"],
        // A backend's change drops every key it holds (`invalidate`); nothing of it grants.
        Kind::SecretBackend | Kind::Migration => &[],
    }
}

/// Whether `event_type` on `aggregate_type` is one of the [`restrictions`].
fn restricts(aggregate_type: &str, event_type: &str) -> bool {
    Kind::ALL
        .into_iter()
        .find(|k| k.info().aggregate_type == aggregate_type)
        .is_some_and(|kind| restrictions(kind).contains(&event_type))
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
        if self.lock().is_unshown(domain::token::AGGREGATE_TYPE, id) {
            return Ok(None);
        }
        let load = async { Ok(load.await?.map(Arc::new)) };
        self.held_or_loaded(|inner| &mut inner.tokens, id, load, Option::is_some).await
    }

    /// The user `name` as it exists now (`None`: it does not); `load` reads its record.
    pub async fn user<F>(&self, name: &str, load: F) -> Result<Option<Incarnation>, ApiError>
    where
        F: Future<Output = Result<Option<Record<UserState>>, ApiError>>,
    {
        if self.lock().is_unshown(domain::user::AGGREGATE_TYPE, name) {
            return Ok(None);
        }
        let load = async { Ok(load.await?.as_ref().map(Incarnation::of)) };
        self.held_or_loaded(|inner| &mut inner.users, name, load, |_| true).await
    }

    /// The value `map` holds under `key`, else what `load` reads, kept when `keep` says so and
    /// no drop happened while it was read.
    async fn held_or_loaded<V: Clone, F>(
        &self,
        map: fn(&mut Inner) -> &mut HashMap<String, V>,
        key: &str,
        load: F,
        keep: fn(&V) -> bool,
    ) -> Result<V, ApiError>
    where
        F: Future<Output = Result<V, ApiError>>,
    {
        let generation = {
            let mut inner = self.lock();
            if let Some(held) = map(&mut inner).get(key) {
                return Ok(held.clone());
            }
            inner.generation
        };
        let loaded = load.await?;
        let mut inner = self.lock();
        if inner.generation == generation && keep(&loaded) {
            map(&mut inner).insert(key.to_owned(), loaded.clone());
        }
        Ok(loaded)
    }

    /// Every Llm but the unshown ones; `load` reads them when they are not held.
    pub async fn llms<F>(&self, load: F) -> Result<Arc<Vec<Record<LlmSpec>>>, ApiError>
    where
        F: Future<Output = Result<Vec<Record<LlmSpec>>, ApiError>>,
    {
        let generation = {
            let inner = self.lock();
            if let Some(held) = &inner.llms {
                return Ok(inner.shown_llms(held));
            }
            inner.generation
        };
        let loaded = Arc::new(load.await?);
        let mut inner = self.lock();
        if inner.generation == generation {
            inner.llms = Some(loaded.clone());
        }
        Ok(inner.shown_llms(&loaded))
    }

    /// How many times what is held has been dropped: a drop shows as a change, so a caller (a
    /// test) can tell that a write's drop has happened and the next read loads afresh.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Whether a change to `id` (of `aggregate_type`) is recorded but not shown yet.
    pub fn is_unshown(&self, aggregate_type: &str, id: &str) -> bool {
        self.lock().is_unshown(aggregate_type, id)
    }

    /// The value of key `key` of secret `secret`; `load` reads it through its backend when it
    /// is not held.
    pub async fn api_key<F>(&self, secret: &str, key: &str, load: F) -> Result<Arc<SecretString>, ApiError>
    where
        F: Future<Output = Result<SecretString, ApiError>>,
    {
        let load = async { Ok(Arc::new(load.await?)) };
        self.held_or_loaded(|inner| &mut inner.keys, &format!("{secret}/{key}"), load, |_| true).await
    }

    /// A user's permissions, worked out from the role bindings and roles held in memory (read
    /// whole once, then the changed ones one by one).
    pub async fn permissions(&self, db: &Database, user: &str) -> Result<Arc<Permissions>, ApiError> {
        for _ in 0..3 {
            let (generation, everything, bindings, roles) = {
                let inner = self.lock();
                // A changed binding may bind this user now: held permissions count only when
                // nothing is waiting to be read again.
                let current = inner.stale_bindings.is_empty() && inner.stale_roles.is_empty();
                if let Some(permissions) = inner.permissions.get(user).filter(|_| current) {
                    return Ok(permissions.clone());
                }
                let bindings: Vec<String> = inner.stale_bindings.iter().cloned().collect();
                let roles: Vec<String> = inner.stale_roles.iter().cloned().collect();
                (inner.rbac_generation, inner.rbac.is_none(), bindings, roles)
            };
            let loaded = load(db, everything, &bindings, &roles).await?;
            let mut inner = self.lock();
            if inner.rbac_generation != generation || inner.rbac.is_none() != everything {
                // A role or binding changed meanwhile: what was read may predate it.
                continue;
            }
            let inner = &mut *inner;
            match loaded {
                Loaded::Everything(rbac) => {
                    inner.rbac = Some(rbac);
                    inner.stale_bindings.clear();
                    inner.stale_roles.clear();
                    inner.permissions.clear();
                }
                Loaded::Changed(bindings, roles) => {
                    let rbac = inner.rbac.get_or_insert_with(Rbac::default);
                    for (name, spec) in bindings {
                        inner.stale_bindings.remove(&name);
                        if let Some(spec) = spec {
                            for u in &spec.users {
                                inner.permissions.remove(u);
                            }
                            rbac.bindings.insert(name, spec);
                        }
                    }
                    for (name, spec) in roles {
                        inner.stale_roles.remove(&name);
                        for u in rbac.users_of_role(&name) {
                            inner.permissions.remove(&u);
                        }
                        if let Some(spec) = spec {
                            rbac.roles.insert(name, spec);
                        }
                    }
                }
            }
            let rbac = inner.rbac.as_ref().expect("loaded above");
            let permissions = Arc::new(rbac.permissions_of(user, |t, id| inner.is_unshown(t, id)));
            inner.permissions.insert(user.to_owned(), permissions.clone());
            return Ok(permissions);
        }
        // Roles and bindings keep changing under the look-up: work it out from a fresh read,
        // without keeping it.
        match load(db, true, &[], &[]).await? {
            Loaded::Everything(rbac) => {
                let inner = self.lock();
                Ok(Arc::new(rbac.permissions_of(user, |t, id| inner.is_unshown(t, id))))
            }
            Loaded::Changed(..) => unreachable!("a whole load"),
        }
    }

    /// Drops what an event of `aggregate_type` on `id` changes. A role or binding can change
    /// anyone's permissions; a user's deletion ends their tokens (which are checked against
    /// the user at each use).
    pub fn invalidate(&self, aggregate_type: &str, id: &str) {
        self.lock().invalidate(aggregate_type, id);
    }

    /// Events appended to `id`'s stream up to `position` that the read models do not show yet:
    /// dropped like [`Self::invalidate`], and absent until shown when they restrict (module
    /// docs).
    pub fn unshown(&self, aggregate_type: &str, event_types: &[String], id: &str, position: Position) {
        let mut inner = self.lock();
        match event_types.iter().find(|e| restricts(aggregate_type, e)) {
            Some(event_type) => inner.unshown(aggregate_type, event_type, id, position),
            None => inner.invalidate(aggregate_type, id),
        }
    }

    /// The read models show the change to `id` recorded at `position`: what a request read
    /// from them meanwhile is dropped, and it no longer counts as absent (unless a later change
    /// to it is still unshown).
    pub fn shown(&self, aggregate_type: &str, id: &str, position: Position) {
        let mut inner = self.lock();
        let key = (aggregate_type.to_owned(), id.to_owned());
        if inner.unshown.get(&key).is_some_and(|at| *at <= position) {
            inner.unshown.remove(&key);
        }
        inner.invalidate(aggregate_type, id);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// What the read models show, and what the log has taken away (acknowledged).
    #[derive(Default)]
    struct World {
        position: i64,
        /// Each token's row as a load reads it; `revoked` once the revocation shows.
        tokens: HashMap<String, Record<TokenState>>,
        /// Revocations acknowledged, and those not shown yet (with their position).
        revoked: HashSet<String>,
        unshown_tokens: Vec<(String, Position)>,
        /// Each user's row as a load reads it (its incarnation is its resourceVersion).
        users: HashMap<String, Option<Record<UserState>>>,
        /// Incarnations whose deletion is acknowledged: never to be granted again.
        deleted: HashSet<(String, i64)>,
        unshown_users: Vec<(String, Position, Option<Record<UserState>>)>,
        next_version: i64,
    }

    fn token(id: &str, revoked: bool) -> Record<TokenState> {
        let spec = TokenState {
            user: "u".into(),
            hash: "h".into(),
            expires_at: None,
            description: String::new(),
            revoked,
            last_used_at: None,
        };
        Record { name: id.into(), spec, resource_version: 1, created_at: String::new(), updated_at: String::new() }
    }

    fn user(name: &str, version: i64) -> Record<UserState> {
        Record {
            name: name.into(),
            spec: UserState { description: String::new() },
            resource_version: version,
            created_at: "2026-01-01T00:00:00Z".into(),
            updated_at: String::new(),
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Revoke {
            token: usize,
            inline: bool,
        },
        DeleteUser {
            user: usize,
            inline: bool,
        },
        CreateUser {
            user: usize,
            inline: bool,
        },
        Show {
            which: usize,
        },
        /// A load; with `race`, the token is revoked (inline or not) while the load reads.
        LoadToken {
            token: usize,
            race: Option<bool>,
        },
        LoadUser {
            user: usize,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..3usize, any::<bool>()).prop_map(|(token, inline)| Op::Revoke { token, inline }),
            (0..2usize, any::<bool>()).prop_map(|(user, inline)| Op::DeleteUser { user, inline }),
            (0..2usize, any::<bool>()).prop_map(|(user, inline)| Op::CreateUser { user, inline }),
            (0..4usize).prop_map(|which| Op::Show { which }),
            (0..3usize, proptest::option::of(any::<bool>())).prop_map(|(token, race)| Op::LoadToken { token, race }),
            (0..2usize).prop_map(|user| Op::LoadUser { user }),
        ]
    }

    impl World {
        fn at(&mut self) -> Position {
            self.position += 1;
            Position { transaction_id: self.position, position: self.position }
        }

        /// A revocation answered: applied inline (its row shows it at once), or left to the
        /// projector (marked unshown).
        fn revoke(&mut self, cache: &AccessCache, id: &str, inline: bool) {
            if !self.revoked.insert(id.to_owned()) {
                return;
            }
            let at = self.at();
            if inline {
                self.tokens.insert(id.to_owned(), token(id, true));
                cache.invalidate(domain::token::AGGREGATE_TYPE, id);
            } else {
                cache.unshown(domain::token::AGGREGATE_TYPE, &["TokenRevoked".to_owned()], id, at);
                self.unshown_tokens.push((id.to_owned(), at));
            }
        }
    }

    /// Fuzzed: random interleavings of revocations, user deletions and re-creations (applied
    /// inline or left to a lagging projector), the projector showing them in any order, and
    /// loads that race with a revocation. However they fall, once a revocation or a deletion
    /// is answered the cache never hands out the token as live nor that user's incarnation.
    #[test]
    fn no_grant_survives_its_removal_once_acknowledged() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let config = testkit::fuzz_config("access cache");
        proptest::test_runner::TestRunner::new(config)
            .run(&proptest::collection::vec(op(), 1..60), |ops| {
                let cache = AccessCache::default();
                let mut world = World { next_version: 1, ..World::default() };
                for t in 0..3 {
                    world.tokens.insert(format!("tok-{t}"), token(&format!("tok-{t}"), false));
                }
                for u in 0..2 {
                    world.users.insert(format!("u{u}"), Some(user(&format!("u{u}"), world.next_version)));
                    world.next_version += 1;
                }
                for op in ops {
                    match op {
                        Op::Revoke { token, inline } => world.revoke(&cache, &format!("tok-{token}"), inline),
                        Op::DeleteUser { user: u, inline } => {
                            let name = format!("u{u}");
                            let Some(Some(live)) = world.users.get(&name).cloned() else { continue };
                            if world.deleted.contains(&(name.clone(), live.resource_version)) {
                                continue;
                            }
                            world.deleted.insert((name.clone(), live.resource_version));
                            let at = world.at();
                            if inline {
                                world.users.insert(name.clone(), None);
                                cache.invalidate(domain::user::AGGREGATE_TYPE, &name);
                            } else {
                                cache.unshown(domain::user::AGGREGATE_TYPE, &["UserDeleted".to_owned()], &name, at);
                                world.unshown_users.push((name, at, None));
                            }
                        }
                        Op::CreateUser { user: u, inline } => {
                            let name = format!("u{u}");
                            // Only a user that is gone (its deletion shown) is created again.
                            if !matches!(world.users.get(&name), Some(None))
                                || world.unshown_users.iter().any(|(n, ..)| *n == name)
                            {
                                continue;
                            }
                            let created = user(&name, world.next_version);
                            world.next_version += 1;
                            let at = world.at();
                            if inline {
                                world.users.insert(name.clone(), Some(created));
                                cache.invalidate(domain::user::AGGREGATE_TYPE, &name);
                            } else {
                                cache.unshown(domain::user::AGGREGATE_TYPE, &["UserCreated".to_owned()], &name, at);
                                world.unshown_users.push((name, at, Some(created)));
                            }
                        }
                        Op::Show { which } => {
                            // The projector shows the oldest pending change of one kind (in log
                            // order within each stream, as it does).
                            if which % 2 == 0 && !world.unshown_tokens.is_empty() {
                                let (id, at) = world.unshown_tokens.remove(0);
                                world.tokens.insert(id.clone(), token(&id, true));
                                cache.shown(domain::token::AGGREGATE_TYPE, &id, at);
                            } else if !world.unshown_users.is_empty() {
                                let (name, at, row) = world.unshown_users.remove(0);
                                world.users.insert(name.clone(), row);
                                cache.shown(domain::user::AGGREGATE_TYPE, &name, at);
                            }
                        }
                        Op::LoadToken { token: t, race } => {
                            let id = format!("tok-{t}");
                            let view = world.tokens[&id].clone();
                            let revoked_before = world.revoked.contains(&id);
                            let world_ref = &mut world;
                            let cache_ref = &cache;
                            let got = runtime
                                .block_on(cache.token(&id, async {
                                    if let Some(inline) = race {
                                        world_ref.revoke(cache_ref, &id, inline);
                                    }
                                    Ok(Some(view))
                                }))
                                .unwrap();
                            if revoked_before {
                                prop_assert!(
                                    got.is_none_or(|r| r.spec.revoked),
                                    "{} handed out live after its revocation",
                                    id
                                );
                            }
                        }
                        Op::LoadUser { user: u } => {
                            let name = format!("u{u}");
                            let view = world.users[&name].clone();
                            let got = runtime.block_on(cache.user(&name, async { Ok(view) })).unwrap();
                            if let Some(incarnation) = got {
                                prop_assert!(
                                    !world.deleted.contains(&(name.clone(), incarnation.version)),
                                    "{} {:?} handed out after its deletion",
                                    name,
                                    incarnation
                                );
                            }
                        }
                    }
                    // After every step: nothing taken away is handed out again.
                    for id in world.revoked.clone() {
                        let view = world.tokens[&id].clone();
                        let got = runtime.block_on(cache.token(&id, async { Ok(Some(view)) })).unwrap();
                        prop_assert!(got.is_none_or(|r| r.spec.revoked), "{} live after its revocation", id);
                    }
                    for (name, version) in world.deleted.clone() {
                        let view = world.users[&name].clone();
                        let got = runtime.block_on(cache.user(&name, async { Ok(view) })).unwrap();
                        prop_assert!(
                            got.is_none_or(|i| i.version != version),
                            "{} v{} after its deletion",
                            name,
                            version
                        );
                    }
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

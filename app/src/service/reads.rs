//! The queries the server's handlers make that belong to no kind's operations: the audit log and
//! refusals, migration runs, read-model status, rebuilds and verification, the idempotency
//! store, readiness, and the rows authentication and inference hold in the access cache. All of
//! them here, so that nothing outside the services holds the database handle or names a table.

use domain::llm::LlmSpec;
use projections::audit::{AuditFilter, Direction};
use projections::denials::{Denial, DenialFilter};
use projections::idempotency::{self, Answer, Claim};
use projections::log::{Position, StoredEvent};
use projections::read_models::page::Page;
use projections::read_models::tokens::TokenState;
use projections::read_models::users::UserState;
use projections::read_models::{ReadModel, Record, llms, migrations, tokens, users};
use projections::rebuild::{self, Difference, RebuildError, Rebuilt};
use projections::status::ProjectionStatus;
use wire::migration::MigrationState;

use super::Services;
use super::access_cache::Incarnation;
use crate::error::ApiError;
use crate::observed::usage::{Filter, UsageRow};

type Answered<T> = Result<T, ApiError>;

impl Services {
    /// Events of the audit log matching `filter`, a page of `limit` from `direction`.
    pub async fn audit(&self, filter: &AuditFilter, direction: Direction, limit: i64) -> Answered<Vec<StoredEvent>> {
        Ok(projections::audit::query(&self.store.db, filter, direction, limit).await?)
    }

    /// The event of the same resource before `sequence` (what an update replaced).
    pub async fn audit_previous(&self, event: &StoredEvent) -> Answered<Option<StoredEvent>> {
        let (kind, id) = (&event.aggregate_type, &event.aggregate_id);
        Ok(projections::audit::previous_state(&self.store.db, kind, id, event.sequence).await?)
    }

    /// Refused requests (401, 403) matching `filter`.
    pub async fn denials(&self, filter: &DenialFilter, limit: i64) -> Answered<Vec<Denial>> {
        Ok(projections::denials::query(&self.store.db, filter, limit).await?)
    }

    pub async fn migration_page(&self, page: &Page) -> Answered<Vec<Record<MigrationState>>> {
        Ok(migrations::list_page(&self.store.db, page).await?)
    }

    pub async fn migration_runs(&self) -> Answered<Vec<Record<MigrationState>>> {
        Ok(migrations::list(&self.store.db).await?)
    }

    pub async fn migration(&self, id: &str) -> Answered<Option<Record<MigrationState>>> {
        Ok(migrations::get(&self.store.db, id).await?)
    }

    /// A migration run's events, oldest first.
    pub async fn migration_events(&self, id: &str) -> Answered<Vec<StoredEvent>> {
        Ok(self.store.log.aggregate_history(domain::migration::AGGREGATE_TYPE, id).await?)
    }

    /// Events after `cursor`, at most `limit` (a watch's next lines).
    pub async fn events_after(&self, cursor: Position, limit: i64) -> Answered<Vec<StoredEvent>> {
        Ok(self.store.log.read_after(cursor, limit).await?)
    }

    /// Each of `models` as stored: checkpoint, lag, errors, rebuilds.
    pub async fn projection_status(&self, models: &[ReadModel]) -> Answered<Vec<ProjectionStatus>> {
        Ok(projections::status::status(&self.store.db, models).await?)
    }

    /// Claims a rebuild of `models` for `actor` (one at a time across replicas).
    pub async fn claim_rebuild(&self, models: &[ReadModel], actor: &str) -> Result<(), RebuildError> {
        rebuild::claim(&self.store.db, models, actor).await
    }

    /// Rebuilds claimed `models` in the background; the projector takes over from the rebuilt
    /// checkpoints when it is done.
    pub fn rebuild_in_background(&self, models: Vec<ReadModel>) {
        let (db, projector) = (self.store.db.clone(), self.store.projector.clone());
        tokio::spawn(async move {
            match rebuild::rebuild_claimed(&db, &models, |_| {}).await {
                Ok(Rebuilt { events, elapsed, .. }) => {
                    tracing::info!(events, elapsed = ?elapsed, "rebuild finished");
                    projector.wake();
                }
                Err(error) => tracing::error!(error = %projections::projector::error_chain(&error), "rebuild failed"),
            }
        });
    }

    /// The rows of `models` that differ from a replay of the log, and how many events it took.
    pub async fn verify(&self, models: &[ReadModel]) -> Result<(Vec<Difference>, u64), RebuildError> {
        let mut replayed = 0;
        let differences = rebuild::verify(&self.store.db, models, |p| replayed = p.replayed).await?;
        Ok((differences, replayed))
    }

    /// Whether the database answers.
    pub async fn database_answers(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.store.db.pool).await.map(|_| ())
    }

    /// The claim of `actor`'s `key` made since `since`, if any.
    pub async fn idempotency_claim(&self, actor: &str, key: &str, since: jiff::Timestamp) -> Answered<Option<Claim>> {
        Ok(idempotency::lookup(&self.store.db, actor, key, &idempotency::stamp(since)).await?)
    }

    /// Keeps `answer` with the claim request `request_id` made of `actor`'s `key`.
    pub async fn keep_idempotent_answer(
        &self,
        actor: &str,
        key: &str,
        request_id: &str,
        answer: &Answer,
    ) -> Result<(), sqlx::Error> {
        idempotency::store_answer(&self.store.db, actor, key, request_id, answer).await
    }

    /// The user `name` as its read model shows it (not cached).
    pub async fn user_record(&self, name: &str) -> Answered<Option<Record<UserState>>> {
        Ok(users::get(&self.store.db, name).await?)
    }

    /// The user `name` as the access cache holds it.
    pub async fn cached_user(&self, name: &str) -> Answered<Option<Incarnation>> {
        self.access.user(name, self.user_record(name)).await
    }

    /// The token `id` as its read model shows it (not cached).
    pub async fn token_record(&self, id: &str) -> Answered<Option<Record<TokenState>>> {
        Ok(tokens::get(&self.store.db, id).await?)
    }

    /// Records that token `id` was used now, in the background (best effort).
    pub fn touch_token(&self, id: &str) {
        let (db, id) = (self.store.db.clone(), id.to_owned());
        tokio::spawn(async move {
            if let Err(e) = tokens::touch(&db, &id, &jiff::Timestamp::now().to_string()).await {
                tracing::warn!(token = %id, error = %e, "could not record a token's last use");
            }
        });
    }

    /// Every Llm, as the access cache holds them.
    pub async fn cached_llms(&self) -> Answered<std::sync::Arc<Vec<Record<LlmSpec>>>> {
        self.access.llms(async { Ok(llms::list(&self.store.db).await?) }).await
    }

    /// Every Llm, from the read model.
    pub async fn llm_records(&self) -> Answered<Vec<Record<LlmSpec>>> {
        Ok(llms::list(&self.store.db).await?)
    }

    /// Inference usage matching `filter` (what is counted in memory flushed first).
    pub async fn usage(&self, filter: &Filter) -> Answered<Vec<UsageRow>> {
        Ok(self.inference.usage.query(&self.store.db, filter).await?)
    }

    /// The database pool's size, idle connections and ceiling, for metrics.
    pub fn pool_gauges(&self) -> (u32, usize, u32) {
        let pool = &self.store.db.pool;
        (pool.size(), pool.num_idle(), pool.options().get_max_connections())
    }
}

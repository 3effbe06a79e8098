//! Who is rebuilding what: the claim in `projection_rebuilds` (one rebuild of a read model
//! at a time, across replicas), its progress, and how it ended.

use super::*;

/// Marks the rebuild of `models` as running, unless one is already running somewhere.
pub async fn claim(db: &Database, models: &[ReadModel], requested_by: &str) -> Result<(), RebuildError> {
    // Stamped and judged stale by the database's clock: a replica whose clock runs ahead must
    // not find another's running rebuild stale and start a second one.
    let now = db.now().await?;
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
pub(super) struct Reporter {
    last: Option<Instant>,
}

impl Reporter {
    pub(super) async fn report(&mut self, db: &Database, models: &[ReadModel], progress: &Progress) {
        if self.last.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
            return;
        }
        self.last = Some(Instant::now());
        let now = match db.now().await {
            Ok(now) => now,
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "recording rebuild progress failed");
                return;
            }
        };
        for model in models {
            let result = sqlx::query(
                "UPDATE projection_rebuilds SET replayed = $2, total = $3, updated_at = $4 WHERE name = $1",
            )
            .bind(model.name())
            .bind(progress.replayed as i64)
            .bind(progress.total as i64)
            .bind(now.to_string())
            .execute(&db.pool)
            .await;
            if let Err(e) = result {
                tracing::warn!(error = %error_chain(&e), "recording rebuild progress failed");
            }
        }
    }
}

pub(super) async fn finish(db: &Database, models: &[ReadModel], result: &Result<Rebuilt, RebuildError>) {
    let (status, replayed, error) = match result {
        Ok(rebuilt) => ("completed", rebuilt.events as i64, None),
        Err(e) => ("failed", 0, Some(error_chain(e))),
    };
    let now = db.now().await.unwrap_or_else(|_| jiff::Timestamp::now());
    for model in models {
        let outcome = sqlx::query(
            "UPDATE projection_rebuilds SET status = $2, replayed = CASE WHEN $3 > 0 THEN $3 ELSE replayed END, \
               total = CASE WHEN $3 > 0 THEN $3 ELSE total END, updated_at = $4, finished_at = $4, error = $5 \
             WHERE name = $1",
        )
        .bind(model.name())
        .bind(status)
        .bind(replayed)
        .bind(now.to_string())
        .bind(error.clone())
        .execute(&db.pool)
        .await;
        if let Err(e) = outcome {
            tracing::warn!(error = %error_chain(&e), "recording the rebuild's outcome failed");
        }
    }
}

//! Which read models this process projects: on PostgreSQL each runs in the replica holding
//! its advisory lock (on a dedicated connection); the others follow the stored checkpoints and
//! try again every second. SQLite has one process, which runs them all.

use super::*;

impl Projector {
    /// PostgreSQL: tries to take the lock of every read model no replica runs, and checks the
    /// locks held are still held (their connection is alive).
    pub(super) async fn take_locks(&mut self) -> DbResult<()> {
        self.next_lock_attempt = Instant::now() + self.config.lock_interval;
        if self.locks.is_none() {
            let connection = self.db.pool.acquire().await?.detach();
            self.locks = Some(connection);
        }
        let connection = self.locks.as_mut().expect("lock connection");
        for i in 0..self.models.len() {
            if self.models[i].running_here {
                continue;
            }
            let taken: bool = sqlx::query("SELECT pg_try_advisory_lock($1, hashtext($2))")
                .bind(LOCK_CLASS)
                .bind(self.models[i].model.name())
                .fetch_one(&mut *connection)
                .await?
                .try_get(0)?;
            if taken {
                let model = self.models[i].model;
                let checkpoint = load_checkpoint(&self.db, model).await?;
                let m = &mut self.models[i];
                m.running_here = true;
                m.checkpoint = checkpoint;
                m.error_may_be_stored = true;
                tracing::info!(read_model = model.name(), "this replica now runs the read model");
            }
        }
        if self.models.iter().all(|m| m.running_here) {
            connection.ping().await?;
        }
        Ok(())
    }

    /// The lock connection is gone, and the locks with it: another replica may run the read
    /// models now.
    pub(super) fn release_locks(&mut self) {
        self.locks = None;
        for m in &mut self.models {
            m.running_here = false;
        }
    }

    /// A stopped read model resumes when a rebuild has dealt with it: the rebuild clears the
    /// stored error and moves the checkpoint to where the replay got. If the event still cannot
    /// be applied, it stops again.
    pub(super) async fn refresh_stopped(&mut self) -> DbResult<()> {
        for i in 0..self.models.len() {
            let Some(stopped_at) = self.models[i].stopped_at else {
                continue;
            };
            let row =
                sqlx::query("SELECT transaction_id, position, last_error FROM projection_checkpoints WHERE name = $1")
                    .bind(self.models[i].model.name())
                    .fetch_one(&self.db.pool)
                    .await?;
            let stored =
                Position { transaction_id: row.try_get("transaction_id")?, position: row.try_get("position")? };
            let cleared = row.try_get::<Option<String>, _>("last_error")?.is_none();
            if stored > stopped_at || cleared {
                let m = &mut self.models[i];
                tracing::info!(
                    read_model = m.model.name(),
                    "the read model was rebuilt past its poison event; resuming"
                );
                m.stopped_at = None;
                m.error = None;
                m.error_may_be_stored = true;
                m.checkpoint = stored;
            }
        }
        Ok(())
    }
}

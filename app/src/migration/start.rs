//! Starting a run (checks, the guard, the run record, the slot and the cluster lock), its dry
//! run, and picking up runs a crash or a dead replica left unfinished.

use super::*;

impl Runner {
    /// Starts a run (or, for a dry run, plans one) and returns its progress stream. The run goes
    /// on server-side whether or not anyone reads the stream.
    pub async fn start_migration(
        &self,
        ctx: &RequestContext,
        request: MigrationRequest,
    ) -> Result<mpsc::Receiver<Progress>, ApiError> {
        let (from, to, names) = validated(&request)?;
        let direction = crate::service::guard::Direction::Migration { names: names.as_deref() };
        crate::service::guard::authorize(ctx, direction, &self.services.upstreams)?;
        for backend in [&from, &to] {
            if secret_backends::get(&self.services.store.db, backend.as_str()).await?.is_none() {
                return Err(ApiError::not_found(domain::document::Kind::SecretBackend, backend.as_str()));
            }
        }
        let id = ResourceName::parse(&format!("run-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]))
            .expect("a valid run id");
        let pins = Arc::new(self.token_pins(&to).await?);
        let run = Run { id, from, to, names, keep_source: request.keep_source, pins };
        let (tx, rx) = mpsc::channel(1024);
        if request.dry_run {
            self.plan(&run, tx).await?;
            return Ok(rx);
        }
        let guard = self.services.migration_slot.clone().try_lock_owned().map_err(|_| {
            ApiError::Conflict(
                "another migration is running in this mcpd; wait for it, or see mcpctl get migrations".into(),
            )
        })?;
        let command = MigrationCommand::StartMigration {
            id: run.id.clone(),
            from: run.from.clone(),
            to: run.to.clone(),
            names: run.names.clone(),
            keep_source: run.keep_source,
        };
        let cluster = self.services.store.db.try_lock(MIGRATION_LOCK).await?.ok_or_else(|| {
            ApiError::Conflict(
                "another migration is running on another mcpd replica; wait for it, or see mcpctl get migrations"
                    .into(),
            )
        })?;
        self.execute_run(ctx, &run.id, command).await?;
        self.run_in_background(ctx, run, tx, guard, cluster);
        Ok(rx)
    }

    /// Runs `run` in a task of its own, holding the process's migration slot (`guard`) and
    /// the cluster lock until it ends; its progress goes to `tx`.
    fn run_in_background(
        &self,
        ctx: &RequestContext,
        run: Run,
        tx: mpsc::Sender<Progress>,
        guard: tokio::sync::OwnedMutexGuard<()>,
        cluster: projections::db::SessionLock,
    ) {
        let runner = self.clone();
        let ctx = RequestContext { source: "migration", idempotency: None, ..ctx.clone() };
        tokio::spawn(async move {
            // The run's last line goes out once both locks are released: a client told the
            // run ended may start the next one at once.
            let (lines, mut inner) = mpsc::channel(1024);
            let forward = async {
                let mut last = None;
                while let Some(line) = inner.recv().await {
                    if let Some(before) = last.replace(line) {
                        let _ = tx.send(before).await;
                    }
                }
                last
            };
            let ((), last) = tokio::join!(runner.run_migration(&ctx, run, Some(lines)), forward);
            cluster.release().await;
            drop(guard);
            if let Some(last) = last {
                let _ = tx.send(last).await;
            }
        });
    }

    /// Picks up every run a crash left unfinished. Called at start-up; runs in the background.
    /// Resumes runs that are recorded as running while nobody runs them: at start (this mcpd
    /// was stopped mid-run), and every few seconds after (on PostgreSQL, the replica running it
    /// died; its lock went with it). One migration runs at a time in a process (the slot) and
    /// across replicas (the `secret-migration` advisory lock).
    pub async fn resume_unfinished_migrations(&self) -> Result<(), ApiError> {
        let runner = self.clone();
        tokio::spawn(async move {
            let mut reason = "mcpd restarted";
            loop {
                if let Err(e) = runner.resume_orphans(reason).await {
                    tracing::warn!(error = %e, "looking for interrupted migrations failed");
                }
                reason = "the mcpd running it stopped";
                tokio::time::sleep(RESUME_INTERVAL).await;
            }
        });
        Ok(())
    }

    pub(super) async fn resume_orphans(&self, reason: &str) -> Result<(), ApiError> {
        let Ok(_slot) = self.services.migration_slot.clone().try_lock_owned() else {
            return Ok(());
        };
        if migrations::unfinished(&self.services.store.db).await?.is_empty() {
            return Ok(());
        }
        let Some(_cluster) = self.services.store.db.try_lock(MIGRATION_LOCK).await? else {
            return Ok(());
        };
        // Read again under the lock: a run that finished meanwhile is not resumed (and the
        // aggregate refuses to resume a run that is not running, should the read model lag).
        for record in migrations::unfinished(&self.services.store.db).await? {
            let (Ok(id), Ok(from), Ok(to)) = (
                ResourceName::parse(&record.name),
                ResourceName::parse(&record.spec.from),
                ResourceName::parse(&record.spec.to),
            ) else {
                continue;
            };
            let ctx = RequestContext::system("migration");
            let resume = MigrationCommand::ResumeMigration { id: id.clone(), reason: reason.into() };
            if let Err(e) = self.execute_run(&ctx, &id, resume).await {
                tracing::warn!(run = %id, error = %e, "could not resume a migration");
                continue;
            }
            tracing::info!(run = %id, from = %from, to = %to, reason, "resuming an interrupted migration");
            let pins = match self.token_pins(&to).await {
                Ok(pins) => Arc::new(pins),
                Err(e) => {
                    tracing::warn!(run = %id, error = %e, "could not resume a migration");
                    continue;
                }
            };
            let run = Run { id, from, to, names: record.spec.names, keep_source: record.spec.keep_source, pins };
            self.run_migration(&ctx, run, None).await;
        }
        Ok(())
    }

    pub(super) async fn execute_run(
        &self,
        ctx: &RequestContext,
        id: &ResourceName,
        command: MigrationCommand,
    ) -> Result<(), ApiError> {
        // The run's record may lag behind in the read model: the run goes on regardless, and its
        // progress shows once the projector catches up.
        self.services.writer.execute::<MigrationRun>(ctx, id, command).await.map(drop)
    }

    /// The secrets a run looks at: those named, or every secret on either backend (the ones on
    /// the destination may still have a source copy to remove).
    pub(super) async fn candidates(&self, run: &Run) -> Result<Vec<String>, ApiError> {
        if let Some(names) = &run.names {
            return Ok(names.clone());
        }
        let mut names = secrets::on_backend(&self.services.store.db, run.from.as_str()).await?;
        names.extend(secrets::on_backend(&self.services.store.db, run.to.as_str()).await?);
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// A dry run: what would move, without a write or an event.
    pub(super) async fn plan(&self, run: &Run, tx: mpsc::Sender<Progress>) -> Result<(), ApiError> {
        let candidates = self.candidates(run).await?;
        let mut lines = Vec::new();
        let (mut moved, mut skipped) = (0, 0);
        for name in &candidates {
            let (outcome, message) = match secrets::get(&self.services.store.db, name).await? {
                None => (SecretOutcome::Skipped, Some("not found".to_owned())),
                Some(s) if s.spec.backend == run.from => match self.pinned_by(name, run).as_slice() {
                    [] => (SecretOutcome::WouldMigrate, None),
                    backends => (
                        SecretOutcome::Skipped,
                        Some(format!(
                            "holds the token of secretbackend {}; it stays on plaintext",
                            backends.join(", ")
                        )),
                    ),
                },
                Some(s) if s.spec.backend == run.to => {
                    if run.names.is_none() {
                        continue;
                    }
                    (SecretOutcome::Skipped, Some(format!("already on {}", run.to)))
                }
                Some(s) => (SecretOutcome::Skipped, Some(format!("on backend {}", s.spec.backend))),
            };
            if outcome == SecretOutcome::WouldMigrate {
                moved += 1
            } else {
                skipped += 1
            }
            lines.push(Progress::Secret { name: name.clone(), outcome, message });
        }
        let run_id = "(dry run)".to_owned();
        let _ = tx
            .send(Progress::Started {
                run: run_id.clone(),
                from: run.from.to_string(),
                to: run.to.to_string(),
                total: lines.len(),
                dry_run: true,
            })
            .await;
        for line in lines {
            let _ = tx.send(line).await;
        }
        let _ = tx
            .send(Progress::Finished { run: run_id, status: Finish::Planned, moved, skipped, failed: 0, error: None })
            .await;
        Ok(())
    }
}

/// The request's backends and secret names, checked: every malformed field is listed; the
/// same backend on both sides is a conflict.
fn validated(request: &MigrationRequest) -> Result<(ResourceName, ResourceName, Option<Vec<String>>), ApiError> {
    let mut errors = domain::ValidationErrors::default();
    let mut backend = |field: &str, raw: &str| match ResourceName::parse(raw) {
        Ok(name) => Some(name),
        Err(m) => {
            errors.add(field, m);
            None
        }
    };
    let (from, to) = (backend("from", &request.from), backend("to", &request.to));
    let names = request.names.clone().map(|n| n.into_iter().collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>());
    for name in names.iter().flatten() {
        if ResourceName::parse(name).is_err() {
            errors.add("names", format!("{name:?} is not a secret name"));
        }
    }
    let (Some(from), Some(to)) = (from, to) else {
        return Err(ApiError::Invalid { kind: "migration", errors });
    };
    if !errors.is_empty() {
        return Err(ApiError::Invalid { kind: "migration", errors });
    }
    if from == to {
        // Well-formed, but the secrets are already where it would move them.
        return Err(ApiError::Conflict(format!(
            "the secrets are already on backend {from:?}: a migration needs two different backends"
        )));
    }
    Ok((from, to, names))
}

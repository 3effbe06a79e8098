//! Moving secrets between backends, server-side. Each secret moves on its own: read from the
//! source, write to the destination, record `SecretMigrated` (the flip: reads go to the
//! destination from then on), then remove the source copy and record that too. The run itself
//! is a `migration` aggregate; which secrets are already moved is read from the secrets' own
//! histories, so a run interrupted at any instant is finished by running it again, and runs
//! left unfinished by a crash are resumed at start-up.

use std::collections::BTreeSet;
use std::sync::Arc;

use domain::ResourceName;
use domain::migration::{MigrationCommand, MigrationRun, SkippedSecret};
use domain::secret::{Secret, SecretCommand, SecretData, SecretEvent};
use projections::read_models::secrets::SecretState;
use projections::read_models::{Record, migrations, secret_backends, secrets};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::backends::SecretBackendDriver;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::service::Services;

/// How many secrets' outcomes one `MigrationProgressed` event records.
const PROGRESS_BATCH: usize = 50;
/// How often one secret is copied again when it keeps changing under the migration.
const COPY_ATTEMPTS: usize = 5;

/// `POST /api/v1/secrets/migrate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MigrationRequest {
    pub from: String,
    pub to: String,
    /// Only these secrets; all on `from` when omitted.
    pub names: Option<Vec<String>>,
    #[serde(default)]
    pub keep_source: bool,
    #[serde(default)]
    pub dry_run: bool,
}

/// One line of the progress stream (NDJSON).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Progress {
    Started {
        run: String,
        from: String,
        to: String,
        total: usize,
        dry_run: bool,
    },
    /// `outcome`: migrated, skipped, failed, or (dry run) wouldMigrate.
    Secret {
        name: String,
        outcome: &'static str,
        message: Option<String>,
    },
    Finished {
        run: String,
        status: &'static str,
        moved: u64,
        skipped: u64,
        failed: u64,
        error: Option<String>,
    },
}

enum Outcome {
    Moved,
    Skipped(String),
}

/// A secret copied to the destination, with its flip (rehearsed for a batch commit).
struct Copy {
    name: ResourceName,
    /// What stays on the source until the clean-up.
    source_ref: String,
    written: crate::backends::Written,
    flip: SecretCommand,
    /// Once rehearsed: the flip's events, the sequence before them, and the secret with them
    /// applied (where its clean-up is rehearsed next).
    events: Vec<SecretEvent>,
    sequence: u64,
    aggregate: Secret,
}

/// What is known of one secret before its copy: its read-model row (`None`: it does not exist)
/// and, when read already, its values on the source.
struct Known {
    record: Option<Record<SecretState>>,
    values: Option<SecretData>,
}

/// A batch's rows, values and aggregates, read in one go before its copies.
struct Prefetched {
    records: std::collections::HashMap<String, Record<SecretState>>,
    values: std::collections::HashMap<String, SecretData>,
    aggregates: std::collections::HashMap<String, (Secret, u64)>,
}

/// A batch between its copies and its flips: outcomes in order (`None`: copied, flip pending).
struct Batch {
    outcomes: Vec<(String, Option<Result<Outcome, String>>)>,
    copies: Vec<Copy>,
}

impl Batch {
    /// Whether a secret of the batch stopped the run.
    fn stopped(&self) -> bool {
        self.outcomes.iter().any(|(_, o)| matches!(o, Some(Err(_))))
    }
}

/// A secret looked at: settled, or copied and waiting for its flip.
enum Step {
    Done(Outcome),
    Copied(Box<Copy>),
}

/// What a migration run needs to go on.
#[derive(Clone)]
struct Run {
    id: ResourceName,
    from: ResourceName,
    to: ResourceName,
    names: Option<Vec<String>>,
    keep_source: bool,
    /// Secret -> the openbao backends whose token it holds, when `to` is not plaintext: those
    /// secrets stay where they are. Read once when the run starts.
    pins: Arc<std::collections::HashMap<String, Vec<String>>>,
}

impl Services {
    /// Starts a run (or, for a dry run, plans one) and returns its progress stream. The run goes
    /// on server-side whether or not anyone reads the stream.
    pub async fn start_migration(
        &self,
        ctx: &RequestContext,
        request: MigrationRequest,
    ) -> Result<mpsc::Receiver<Progress>, ApiError> {
        let mut errors = domain::ValidationErrors::default();
        let mut backend = |field: &str, raw: &str| match ResourceName::parse(raw) {
            Ok(name) => Some(name),
            Err(m) => {
                errors.add(field, m);
                None
            }
        };
        let (from, to) = (backend("from", &request.from), backend("to", &request.to));
        let names =
            request.names.clone().map(|n| n.into_iter().collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>());
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
            errors.add("to", "must differ from `from`");
            return Err(ApiError::Invalid { kind: "migration", errors });
        }
        let direction = crate::service::guard::Direction::Migration { names: names.as_deref() };
        crate::service::guard::authorize(ctx, direction, &self.upstreams)?;
        for backend in [&from, &to] {
            if secret_backends::get(&self.store.db, backend.as_str()).await?.is_none() {
                return Err(ApiError::NotFound(format!("secretbackend {:?} not found", backend.as_str())));
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
        let guard = self.migration_slot.clone().try_lock_owned().map_err(|_| {
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
        let cluster = self.store.db.try_lock(MIGRATION_LOCK).await?.ok_or_else(|| {
            ApiError::Conflict(
                "another migration is running on another mcpd replica; wait for it, or see mcpctl get migrations"
                    .into(),
            )
        })?;
        self.execute_run(ctx, &run.id, command).await?;
        let services = self.clone();
        let ctx = RequestContext { source: "migration", ..ctx.clone() };
        tokio::spawn(async move {
            let _slot = (guard, cluster);
            services.run_migration(&ctx, run, Some(tx)).await;
        });
        Ok(rx)
    }

    /// Picks up every run a crash left unfinished. Called at start-up; runs in the background.
    /// Resumes runs that are recorded as running while nobody runs them: at start (this mcpd
    /// was stopped mid-run), and every few seconds after (on PostgreSQL, the replica running it
    /// died; its lock went with it). One migration runs at a time in a process (the slot) and
    /// across replicas (the `secret-migration` advisory lock).
    pub async fn resume_unfinished_migrations(&self) -> Result<(), ApiError> {
        let services = self.clone();
        tokio::spawn(async move {
            let mut reason = "mcpd restarted";
            loop {
                if let Err(e) = services.resume_orphans(reason).await {
                    tracing::warn!(error = %e, "looking for interrupted migrations failed");
                }
                reason = "the mcpd running it stopped";
                tokio::time::sleep(RESUME_INTERVAL).await;
            }
        });
        Ok(())
    }

    async fn resume_orphans(&self, reason: &str) -> Result<(), ApiError> {
        let Ok(_slot) = self.migration_slot.clone().try_lock_owned() else {
            return Ok(());
        };
        if migrations::unfinished(&self.store.db).await?.is_empty() {
            return Ok(());
        }
        let Some(_cluster) = self.store.db.try_lock(MIGRATION_LOCK).await? else {
            return Ok(());
        };
        // Read again under the lock: a run that finished meanwhile is not resumed (and the
        // aggregate refuses to resume a run that is not running, should the read model lag).
        for record in migrations::unfinished(&self.store.db).await? {
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

    async fn execute_run(
        &self,
        ctx: &RequestContext,
        id: &ResourceName,
        command: MigrationCommand,
    ) -> Result<(), ApiError> {
        self.execute::<MigrationRun>(&self.store.migrations, ctx, id, command).await
    }

    /// The secrets a run looks at: those named, or every secret on either backend (the ones on
    /// the destination may still have a source copy to remove).
    async fn candidates(&self, run: &Run) -> Result<Vec<String>, ApiError> {
        if let Some(names) = &run.names {
            return Ok(names.clone());
        }
        let mut names = secrets::on_backend(&self.store.db, run.from.as_str()).await?;
        names.extend(secrets::on_backend(&self.store.db, run.to.as_str()).await?);
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// A dry run: what would move, without a write or an event.
    async fn plan(&self, run: &Run, tx: mpsc::Sender<Progress>) -> Result<(), ApiError> {
        let candidates = self.candidates(run).await?;
        let mut lines = Vec::new();
        let (mut moved, mut skipped) = (0, 0);
        for name in &candidates {
            let (outcome, message) = match secrets::get(&self.store.db, name).await? {
                None => ("skipped", Some("not found".to_owned())),
                Some(s) if s.spec.backend == run.from => match self.pinned_by(name, run).as_slice() {
                    [] => ("wouldMigrate", None),
                    backends => (
                        "skipped",
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
                    ("skipped", Some(format!("already on {}", run.to)))
                }
                Some(s) => ("skipped", Some(format!("on backend {}", s.spec.backend))),
            };
            if outcome == "wouldMigrate" {
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
            .send(Progress::Finished { run: run_id, status: "planned", moved, skipped, failed: 0, error: None })
            .await;
        Ok(())
    }

    /// Runs (or resumes) `run` to its end, reporting to `tx` if someone listens.
    async fn run_migration(&self, ctx: &RequestContext, run: Run, tx: Option<mpsc::Sender<Progress>>) {
        let report = |line: Progress| {
            let tx = tx.clone();
            async move {
                if let Some(tx) = tx {
                    // A client that went away does not stop the run.
                    let _ = tx.send(line).await;
                }
            }
        };
        let finish = |status: &'static str, moved: u64, skipped: u64, failed: u64, error: Option<String>| {
            Progress::Finished { run: run.id.to_string(), status, moved, skipped, failed, error }
        };
        let drivers =
            async { Ok::<_, ApiError>((self.driver(run.from.as_str()).await?, self.driver(run.to.as_str()).await?)) };
        let (candidates, (source, destination)) = match (self.candidates(&run).await, drivers.await) {
            (Ok(candidates), Ok(drivers)) => (candidates, drivers),
            (Err(e), _) | (_, Err(e)) => {
                let reason = e.to_string();
                let fail = MigrationCommand::FailMigration { id: run.id.clone(), secret: None, reason: reason.clone() };
                let _ = self.execute_run(ctx, &run.id, fail).await;
                report(finish("failed", 0, 0, 0, Some(reason))).await;
                return;
            }
        };
        report(Progress::Started {
            run: run.id.to_string(),
            from: run.from.to_string(),
            to: run.to.to_string(),
            total: candidates.len(),
            dry_run: false,
        })
        .await;
        let (mut moved, mut skipped) = (Vec::new(), Vec::new());
        let (mut moved_total, mut skipped_total) = (0u64, 0u64);
        let (source, destination) = (source.as_ref(), destination.as_ref());
        // A pipeline of two: while one batch's flips are committed and its source copies
        // removed, the next batch is copied. Copies still happen one at a time, and never after
        // a copy that failed.
        let mut chunks = candidates.chunks(PROGRESS_BATCH);
        let mut in_flight: Option<Batch> = None;
        loop {
            let next = match &in_flight {
                Some(batch) if batch.stopped() => None,
                _ => chunks.next(),
            };
            let (settled, copied) = tokio::join!(
                async {
                    match in_flight.take() {
                        Some(batch) => Some(self.settle(ctx, &run, batch, source, destination).await),
                        None => None,
                    }
                },
                async {
                    match next {
                        Some(names) => Some(self.copy_chunk(ctx, &run, names, source, destination).await),
                        None => None,
                    }
                },
            );
            for (name, outcome) in settled.into_iter().flatten() {
                match outcome {
                    Ok(Outcome::Moved) => {
                        moved_total += 1;
                        moved.push(name.clone());
                        report(Progress::Secret { name, outcome: "migrated", message: None }).await;
                    }
                    Ok(Outcome::Skipped(reason)) if run.names.is_none() && reason.starts_with("already on") => {}
                    Ok(Outcome::Skipped(reason)) => {
                        skipped_total += 1;
                        skipped.push(SkippedSecret { secret: name.clone(), reason: reason.clone() });
                        report(Progress::Secret { name, outcome: "skipped", message: Some(reason) }).await;
                    }
                    Err(reason) => {
                        if let Some(abandoned) = copied {
                            // Copied but never to be flipped: not left behind as orphaned versions.
                            for copy in abandoned.copies {
                                let _ = destination.discard(copy.name.as_str(), &copy.written.value_ref).await;
                            }
                        }
                        self.record_progress(ctx, &run, &mut moved, &mut skipped).await;
                        let fail = MigrationCommand::FailMigration {
                            id: run.id.clone(),
                            secret: Some(name.clone()),
                            reason: reason.clone(),
                        };
                        if let Err(e) = self.execute_run(ctx, &run.id, fail).await {
                            tracing::warn!(run = %run.id, error = %e, "could not record the failure of a migration");
                        }
                        report(Progress::Secret {
                            name: name.clone(),
                            outcome: "failed",
                            message: Some(reason.clone()),
                        })
                        .await;
                        let error = format!("stopped at secret {name:?}: {reason}");
                        report(finish("failed", moved_total, skipped_total, 1, Some(error))).await;
                        return;
                    }
                }
            }
            if moved.len() + skipped.len() >= PROGRESS_BATCH {
                self.record_progress(ctx, &run, &mut moved, &mut skipped).await;
            }
            match copied {
                Some(batch) => in_flight = Some(batch),
                None => break,
            }
        }
        self.record_progress(ctx, &run, &mut moved, &mut skipped).await;
        let complete = MigrationCommand::CompleteMigration {
            id: run.id.clone(),
            moved: moved_total,
            skipped: skipped_total,
            failed: 0,
        };
        if let Err(e) = self.execute_run(ctx, &run.id, complete).await {
            tracing::warn!(run = %run.id, error = %e, "could not record the completion of a migration");
        }
        report(finish("completed", moved_total, skipped_total, 0, None)).await;
    }

    async fn record_progress(
        &self,
        ctx: &RequestContext,
        run: &Run,
        moved: &mut Vec<String>,
        skipped: &mut Vec<SkippedSecret>,
    ) {
        let command = MigrationCommand::RecordProgress {
            id: run.id.clone(),
            moved: std::mem::take(moved),
            skipped: std::mem::take(skipped),
        };
        if let Err(e) = self.record::<MigrationRun>(&self.store.migrations, ctx, &run.id, command).await {
            tracing::warn!(run = %run.id, error = %e, "could not record a migration's progress");
        }
    }

    /// The first half of moving a batch: each secret is read and written to the destination on
    /// its own (or settled at once), and its flip rehearsed. Stops at the first secret the run
    /// must stop at.
    async fn copy_chunk(
        &self,
        ctx: &RequestContext,
        run: &Run,
        names: &[String],
        source: &dyn SecretBackendDriver,
        destination: &dyn SecretBackendDriver,
    ) -> Batch {
        let mut outcomes: Vec<(String, Option<Result<Outcome, String>>)> = Vec::new();
        let mut copies = Vec::new();
        let records = match secrets::get_many(&self.store.db, names).await {
            Ok(records) => records,
            Err(e) => return Batch { outcomes: vec![(names[0].clone(), Some(Err(e.to_string())))], copies },
        };
        let to_copy: Vec<String> = names
            .iter()
            .filter(|n| {
                records.get(*n).is_some_and(|r| r.spec.backend == run.from) && self.pinned_by(n, run).is_empty()
            })
            .cloned()
            .collect();
        if !to_copy.is_empty()
            && let Err(e) = destination.prepare(&to_copy).await
        {
            // Each copy then does it for itself, and the run stops at the first that fails.
            tracing::debug!(run = %run.id, error = %e, "could not prepare the destination for a batch");
        }
        let mut prefetched = self.prefetch(&to_copy, &records, source).await;
        prefetched.records = records;
        for name in names {
            match self.copy_one(ctx, run, name, &mut prefetched, source, destination).await {
                Ok(Step::Done(outcome)) => outcomes.push((name.clone(), Some(Ok(outcome)))),
                Ok(Step::Copied(copy)) => {
                    outcomes.push((name.clone(), None));
                    copies.push(*copy);
                }
                Err(reason) => {
                    outcomes.push((name.clone(), Some(Err(reason))));
                    break;
                }
            }
        }
        // A batch that stopped part-way leaves prepared paths unwritten: give them up.
        if let Err(e) = destination.release(&to_copy).await {
            tracing::warn!(run = %run.id, error = %e, "could not release the destination paths a batch did not use");
        }
        Batch { outcomes, copies }
    }

    /// The second half: all the batch's flips are recorded in one commit (one fsync instead of
    /// one per secret), the run waits until readers see them, and the source copies go.
    /// Outcomes come back in order; the list ends at the first secret the run must stop at.
    async fn settle(
        &self,
        ctx: &RequestContext,
        run: &Run,
        batch: Batch,
        source: &dyn SecretBackendDriver,
        destination: &dyn SecretBackendDriver,
    ) -> Vec<(String, Result<Outcome, String>)> {
        let Batch { mut outcomes, mut copies } = batch;
        if !copies.is_empty() {
            let items = copies.iter().map(|c| (c.name.to_string(), c.sequence, c.events.clone())).collect();
            let flipped =
                match self.store.append_batch::<domain::secret::Secret>(items, ctx.metadata().into_map()).await {
                    Ok(()) => {
                        let last = &copies[copies.len() - 1].name;
                        self.await_projection(domain::secret::AGGREGATE_TYPE, last).await.map_err(|e| e.to_string())
                    }
                    Err(cqrs_es::AggregateError::AggregateConflict) => {
                        // One of them changed meanwhile: move these one at a time instead.
                        for copy in &copies {
                            let _ = destination.discard(copy.name.as_str(), &copy.written.value_ref).await;
                            let outcome = self.migrate_one(ctx, run, copy.name.as_str(), source, destination).await;
                            if let Some(slot) = outcomes.iter_mut().find(|(n, _)| n == copy.name.as_str()) {
                                slot.1 = Some(outcome);
                            }
                        }
                        copies.clear();
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                };
            match flipped {
                Ok(()) => {
                    if !run.keep_source {
                        self.remove_sources(ctx, run, &copies, source).await;
                    }
                    for (_, outcome) in outcomes.iter_mut().filter(|(_, o)| o.is_none()) {
                        *outcome = Some(Ok(Outcome::Moved));
                    }
                }
                Err(reason) => {
                    // Recorded or not, the run stops at the first of them; a re-run sorts it out
                    // from the secrets' histories.
                    let first = outcomes.iter().position(|(_, o)| o.is_none()).unwrap_or(0);
                    outcomes.truncate(first + 1);
                    outcomes[first].1 = Some(Err(reason));
                }
            }
        }
        let mut done = Vec::new();
        for (name, outcome) in outcomes {
            let Some(outcome) = outcome else { break };
            let stop = outcome.is_err();
            done.push((name, outcome));
            if stop {
                break;
            }
        }
        done
    }

    /// Copies one secret and rehearses its flip for a batch commit; or settles it at once
    /// (skipped, already moved, or, when it changed under the copy, moved the slow way).
    async fn copy_one(
        &self,
        ctx: &RequestContext,
        run: &Run,
        name: &str,
        prefetched: &mut Prefetched,
        source: &dyn SecretBackendDriver,
        destination: &dyn SecretBackendDriver,
    ) -> Result<Step, String> {
        let known = Known { record: prefetched.records.remove(name), values: prefetched.values.remove(name) };
        let mut copy = match self.copy(ctx, run, name, known, source, destination).await? {
            Some(Step::Done(outcome)) => return Ok(Step::Done(outcome)),
            Some(Step::Copied(copy)) => copy,
            // Changed since the batch was read: moved on its own, the slow way.
            None => return self.migrate_one(ctx, run, name, source, destination).await.map(Step::Done),
        };
        let (mut aggregate, sequence) = match prefetched.aggregates.remove(name) {
            Some(loaded) => loaded,
            None => self.store.load::<Secret>(name).await.map_err(|e| e.to_string())?,
        };
        let decided = crate::store::decide(&mut aggregate, copy.flip.clone()).await.map_err(|e| {
            ApiError::from_command(domain::secret::AGGREGATE_TYPE, name, cqrs_es::AggregateError::UserError(e))
        });
        match decided {
            Ok(events) => {
                copy.events = events;
                copy.sequence = sequence;
                copy.aggregate = aggregate;
                Ok(Step::Copied(copy))
            }
            Err(ApiError::Conflict(_)) => {
                let _ = destination.discard(name, &copy.written.value_ref).await;
                self.migrate_one(ctx, run, name, source, destination).await.map(Step::Done)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Looks at one secret (`record`, as read just before): settles it if there is nothing to
    /// copy, otherwise reads it from the source and writes it to the destination (before any
    /// flip: a crash in between leaves a copy that the next attempt writes over). `None` when
    /// the secret changed since `record` was read.
    async fn copy(
        &self,
        ctx: &RequestContext,
        run: &Run,
        name: &str,
        known: Known,
        source: &dyn SecretBackendDriver,
        destination: &dyn SecretBackendDriver,
    ) -> Result<Option<Step>, String> {
        let secret_name = ResourceName::parse(name).map_err(|m| format!("{name:?}: {m}"))?;
        let Known { record, values } = known;
        let Some(record) = record else {
            return Ok(Some(Step::Done(Outcome::Skipped("not found".into()))));
        };
        if record.spec.backend == run.to {
            return self.finish_moved(ctx, run, &secret_name, source).await.map(|o| Some(Step::Done(o)));
        }
        if record.spec.backend != run.from {
            return Ok(Some(Step::Done(Outcome::Skipped(format!("on backend {}", record.spec.backend)))));
        }
        let pinned_by = self.pinned_by(name, run);
        if !pinned_by.is_empty() {
            let backends = pinned_by.join(", ");
            return Ok(Some(Step::Done(Outcome::Skipped(format!(
                "holds the token of secretbackend {backends}; it stays on plaintext"
            )))));
        }
        let values = match values {
            Some(values) => Some(values),
            None => source.get(name, &record.spec.value_ref).await.map_err(|e| e.to_string())?,
        };
        let Some(values) = values else {
            // Superseded since `record` was read (an update removes the old version)?
            let now = secrets::get(&self.store.db, name).await.map_err(|e| e.to_string())?;
            if now.is_some_and(|now| now.resource_version != record.resource_version) {
                return Ok(None);
            }
            return Err(format!("its values are missing from {}", run.from));
        };
        let written = destination.put(name, &values, None).await.map_err(|e| e.to_string())?;
        let flip = SecretCommand::MigrateSecret {
            name: secret_name.clone(),
            from: run.from.clone(),
            to: run.to.clone(),
            copied_data_version: record.spec.data_version as u64,
            value_ref: written.value_ref.clone(),
            external_ref: written.external_ref.clone(),
            run: run.id.to_string(),
            pinned_by,
        };
        Ok(Some(Step::Copied(Box::new(Copy {
            name: secret_name,
            source_ref: record.spec.value_ref,
            written,
            flip,
            events: Vec::new(),
            sequence: 0,
            aggregate: Secret::default(),
        }))))
    }

    /// What a batch's copies need, read for all of them at once: their values on the source and
    /// their aggregates. Whatever is missing here (a failed read) is read again one by one.
    async fn prefetch(
        &self,
        names: &[String],
        records: &std::collections::HashMap<String, Record<SecretState>>,
        source: &dyn SecretBackendDriver,
    ) -> Prefetched {
        let items: Vec<(String, String)> =
            names.iter().filter_map(|n| records.get(n).map(|r| (n.clone(), r.spec.value_ref.clone()))).collect();
        let values = source
            .get_many(&items)
            .await
            .into_iter()
            .zip(&items)
            .filter_map(|(values, (name, _))| Some((name.clone(), values.ok()??)))
            .collect();
        let aggregates = self.store.load_many::<Secret>(names).await.unwrap_or_default();
        Prefetched { records: Default::default(), values, aggregates }
    }

    /// Deletes the source copies of flipped secrets and records the outcomes in one commit.
    async fn remove_sources(&self, ctx: &RequestContext, run: &Run, copies: &[Copy], source: &dyn SecretBackendDriver) {
        let mut records = Vec::new();
        let items: Vec<(String, String)> = copies.iter().map(|c| (c.name.to_string(), c.source_ref.clone())).collect();
        let outcomes = source.delete_many(&items).await;
        for (copy, outcome) in copies.iter().zip(outcomes) {
            let outcome = outcome.map_err(|e| e.to_string());
            if let Err(reason) = &outcome {
                tracing::warn!(secret = %copy.name, %reason, "the source copy of a migrated secret could not be removed");
            }
            let command = SecretCommand::RecordSourceCleanup {
                name: copy.name.clone(),
                backend: run.from.clone(),
                outcome,
                run: run.id.to_string(),
            };
            // Rehearsed on the secret as the flip left it: no need to load it again.
            let mut aggregate = copy.aggregate.clone();
            match crate::store::decide(&mut aggregate, command).await {
                Ok(events) => records.push((copy.name.to_string(), copy.sequence + copy.events.len() as u64, events)),
                Err(e) => tracing::warn!(secret = %copy.name, error = %e, "could not record a source clean-up"),
            }
        }
        if let Err(e) = self.store.append_batch::<domain::secret::Secret>(records, ctx.metadata().into_map()).await {
            // The secrets are fully usable on the destination; a re-run finds the clean-ups
            // missing from their histories and does them again.
            tracing::warn!(run = %run.id, error = %e, "could not record the source clean-ups of a batch");
        }
    }

    /// Moves one secret on its own, copying again while it changes under the copy; `Err` is
    /// the reason the run must stop here.
    async fn migrate_one(
        &self,
        ctx: &RequestContext,
        run: &Run,
        name: &str,
        source: &dyn SecretBackendDriver,
        destination: &dyn SecretBackendDriver,
    ) -> Result<Outcome, String> {
        for _ in 0..COPY_ATTEMPTS {
            let record = secrets::get(&self.store.db, name).await.map_err(|e| e.to_string())?;
            let copy = match self.copy(ctx, run, name, Known { record, values: None }, source, destination).await? {
                Some(Step::Done(outcome)) => return Ok(outcome),
                Some(Step::Copied(copy)) => copy,
                None => continue,
            };
            match self.execute(&self.store.secrets, ctx, &copy.name, copy.flip.clone()).await {
                Ok(()) => {
                    if !run.keep_source {
                        self.remove_source(ctx, run, &copy.name, source, &copy.source_ref).await;
                    }
                    return Ok(Outcome::Moved);
                }
                // Changed or moved meanwhile: drop this copy and look again.
                Err(ApiError::Conflict(_)) => {
                    let _ = destination.discard(name, &copy.written.value_ref).await;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(format!("it kept changing; gave up after {COPY_ATTEMPTS} copies"))
    }

    /// Secret -> the openbao backends whose token it holds, if moving secrets to `to` would take
    /// them off plaintext (a token's secret is the trust root and has to stay readable without
    /// those backends); empty when `to` is plaintext.
    async fn token_pins(&self, to: &ResourceName) -> Result<std::collections::HashMap<String, Vec<String>>, ApiError> {
        let mut pins = std::collections::HashMap::<String, Vec<String>>::new();
        let destination = secret_backends::get(&self.store.db, to.as_str()).await?;
        if destination.is_some_and(|d| d.spec.spec.backend_type == domain::secret_backend::BackendType::Plaintext) {
            return Ok(pins);
        }
        for backend in secret_backends::list(&self.store.db).await? {
            if let Some(config) = &backend.spec.spec.config {
                pins.entry(config.token_secret_ref.name.to_string()).or_default().push(backend.name);
            }
        }
        Ok(pins)
    }

    /// The backends that pin `secret` to plaintext for this run.
    fn pinned_by(&self, secret: &str, run: &Run) -> Vec<String> {
        run.pins.get(secret).cloned().unwrap_or_default()
    }

    /// A secret already on the destination: if a migration from this source left its source
    /// copy behind (a crash between the flip and the clean-up), remove it now.
    async fn finish_moved(
        &self,
        ctx: &RequestContext,
        run: &Run,
        name: &ResourceName,
        source: &dyn SecretBackendDriver,
    ) -> Result<Outcome, String> {
        let history = self
            .store
            .log
            .aggregate_history(domain::secret::AGGREGATE_TYPE, name.as_str())
            .await
            .map_err(|e| e.to_string())?;
        let mut pending: Option<(String, String)> = None;
        for event in history {
            match serde_json::from_value::<SecretEvent>(event.payload) {
                Ok(SecretEvent::SecretMigrated { from, source_value_ref, run: by, .. }) if from == run.from => {
                    pending = Some((source_value_ref, by));
                }
                Ok(SecretEvent::SecretSourceDeleted { .. }) | Ok(SecretEvent::SecretMigrated { .. }) => pending = None,
                _ => {}
            }
        }
        match pending {
            Some((source_ref, by)) => {
                if !run.keep_source {
                    self.remove_source(ctx, run, name, source, &source_ref).await;
                }
                // Moved by this very run before an interruption: it counts as moved.
                if by == run.id.as_str() {
                    return Ok(Outcome::Moved);
                }
                Ok(Outcome::Skipped(format!("already on {}", run.to)))
            }
            None => Ok(Outcome::Skipped(format!("already on {}", run.to))),
        }
    }

    /// Removes the source copy, best effort, and records how that went on the secret.
    async fn remove_source(
        &self,
        ctx: &RequestContext,
        run: &Run,
        name: &ResourceName,
        source: &dyn SecretBackendDriver,
        value_ref: &str,
    ) {
        let outcome = source.delete(name.as_str(), value_ref).await.map_err(|e| e.to_string());
        if let Err(reason) = &outcome {
            tracing::warn!(secret = %name, %reason, "the source copy of a migrated secret could not be removed");
        }
        let record = SecretCommand::RecordSourceCleanup {
            name: name.clone(),
            backend: run.from.clone(),
            outcome,
            run: run.id.to_string(),
        };
        if let Err(e) = self.record(&self.store.secrets, ctx, name, record).await {
            tracing::warn!(secret = %name, error = %e, "could not record the clean-up of a migrated secret");
        }
    }
}

/// For handlers: the stream's lines as NDJSON.
pub fn ndjson(rx: mpsc::Receiver<Progress>) -> impl futures::Stream<Item = Result<String, std::convert::Infallible>> {
    futures::stream::unfold(rx, |mut rx| async move {
        let line = rx.recv().await?;
        let mut text = serde_json::to_string(&line).expect("progress serialises");
        text.push('\n');
        Some((Ok(text), rx))
    })
}

/// Shared so the handlers and the runner agree on one slot per process.
pub type MigrationSlot = Arc<tokio::sync::Mutex<()>>;

/// The advisory lock a running migration holds on PostgreSQL, so replicas run one at a time.
const MIGRATION_LOCK: &str = "secret-migration";

/// How often each mcpd looks for a migration whose runner died.
const RESUME_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3);

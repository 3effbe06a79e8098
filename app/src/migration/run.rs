//! One run's loop: batches copied and settled in a pipeline of two, progress recorded and
//! streamed, the run completed or failed.

use super::*;

impl Runner {
    /// Runs (or resumes) `run` to its end, reporting to `tx` if someone listens.
    pub(super) async fn run_migration(&self, ctx: &RequestContext, run: Run, tx: Option<mpsc::Sender<Progress>>) {
        let report = |line: Progress| {
            let tx = tx.clone();
            async move {
                if let Some(tx) = tx {
                    // A client that went away does not stop the run.
                    let _ = tx.send(line).await;
                }
            }
        };
        let Some((candidates, source, destination)) = self.open_run(ctx, &run, &report).await else { return };
        report(Progress::Started {
            run: run.id.to_string(),
            from: run.from.to_string(),
            to: run.to.to_string(),
            total: candidates.len(),
            dry_run: false,
        })
        .await;
        let mut tally = Tally::default();
        let (source, destination) = (source.as_ref(), destination.as_ref());
        // A pipeline of two: while one batch's flips are committed and its source copies
        // removed, the next batch is copied. Copies still happen one at a time, and never after
        // a copy that failed.
        let mut chunks = candidates.chunks(PROGRESS_BATCH);
        let mut in_flight: Option<Batch> = None;
        loop {
            // Shutting down: no new batch; the one in flight settles, and the run is handed over.
            let stopping = *self.services.shutdown.borrow();
            let next = match &in_flight {
                Some(batch) if batch.stopped() => None,
                _ if stopping => None,
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
            let outcomes = settled.into_iter().flatten();
            if let Err((name, reason)) = self.take(&run, outcomes, &mut tally, &report).await {
                if let Some(abandoned) = copied {
                    // Copied but never to be flipped: not left behind as orphaned versions.
                    for copy in abandoned.copies {
                        let _ = destination.discard(copy.name.as_str(), &copy.written.value_ref).await;
                    }
                }
                self.fail_run(ctx, &run, tally, name, reason, &report).await;
                return;
            }
            if tally.moved.len() + tally.skipped.len() >= PROGRESS_BATCH {
                self.record_progress(ctx, &run, &mut tally.moved, &mut tally.skipped).await;
            }
            match copied {
                Some(batch) => in_flight = Some(batch),
                None => break,
            }
        }
        self.record_progress(ctx, &run, &mut tally.moved, &mut tally.skipped).await;
        self.close_run(ctx, &run, tally, chunks.len(), &report).await;
    }

    /// Records that the run stopped at secret `name` for `reason`, with the progress before it.
    async fn fail_run<F: Future<Output = ()>>(
        &self,
        ctx: &RequestContext,
        run: &Run,
        mut tally: Tally,
        name: String,
        stop: Stop,
        report: &impl Fn(Progress) -> F,
    ) {
        let reason = stop.to_string();
        self.record_progress(ctx, run, &mut tally.moved, &mut tally.skipped).await;
        let fail =
            MigrationCommand::FailMigration { id: run.id.clone(), secret: Some(name.clone()), reason: reason.clone() };
        if let Err(e) = self.execute_run(ctx, &run.id, fail).await {
            tracing::warn!(run = %run.id, error = %e, "could not record the failure of a migration");
        }
        report(Progress::Secret { name: name.clone(), outcome: SecretOutcome::Failed, message: Some(reason.clone()) })
            .await;
        let error = format!("stopped at secret {name:?}: {reason}");
        report(finished(run, Finish::Failed, tally.moved_total, tally.skipped_total, 1, Some(error))).await;
    }

    /// The run's candidates and both drivers; `None` when one cannot be had, the run then
    /// recorded as failed and reported.
    async fn open_run<F: Future<Output = ()>>(
        &self,
        ctx: &RequestContext,
        run: &Run,
        report: &impl Fn(Progress) -> F,
    ) -> Option<(Vec<String>, Arc<dyn SecretBackendDriver>, Arc<dyn SecretBackendDriver>)> {
        let drivers = async {
            Ok::<_, ApiError>((
                self.services.drivers.get(run.from.as_str()).await?,
                self.services.drivers.get(run.to.as_str()).await?,
            ))
        };
        match (self.candidates(run).await, drivers.await) {
            (Ok(candidates), Ok((source, destination))) => Some((candidates, source, destination)),
            (Err(e), _) | (_, Err(e)) => {
                let reason = e.to_string();
                let fail = MigrationCommand::FailMigration { id: run.id.clone(), secret: None, reason: reason.clone() };
                let _ = self.execute_run(ctx, &run.id, fail).await;
                report(finished(run, Finish::Failed, 0, 0, 0, Some(reason))).await;
                None
            }
        }
    }

    /// Records the end of a run that copied every batch it took: complete, or (`left` chunks
    /// not taken, a shutdown) handed over.
    async fn close_run<F: Future<Output = ()>>(
        &self,
        ctx: &RequestContext,
        run: &Run,
        tally: Tally,
        left: usize,
        report: &impl Fn(Progress) -> F,
    ) {
        let finish = |status, moved, skipped, failed, error| finished(run, status, moved, skipped, failed, error);
        let Tally { moved_total, skipped_total, .. } = tally;
        if left > 0 {
            // Stopped between batches by a shutdown: the run stays running, and another replica
            // (or the next start) resumes it once this one has let go of the migration lock.
            tracing::info!(run = %run.id, left = left * PROGRESS_BATCH, "shutting down: a migration stopped between batches and is handed over");
            let error = "mcpd is shutting down; the run resumes on another replica or at the next start \
                         (mcpctl get migrations follows it)";
            report(finish(Finish::Interrupted, moved_total, skipped_total, 0, Some(error.into()))).await;
            return;
        }
        let complete = MigrationCommand::CompleteMigration {
            id: run.id.clone(),
            moved: moved_total,
            skipped: skipped_total,
            failed: 0,
        };
        if let Err(e) = self.execute_run(ctx, &run.id, complete).await {
            tracing::warn!(run = %run.id, error = %e, "could not record the completion of a migration");
        }
        report(finish(Finish::Completed, moved_total, skipped_total, 0, None)).await;
    }

    /// Counts and reports a settled batch's outcomes, in order; the first failure stops it and
    /// is handed back (the secret and why).
    async fn take<F: Future<Output = ()>>(
        &self,
        run: &Run,
        outcomes: impl Iterator<Item = (String, Result<Outcome, Stop>)>,
        tally: &mut Tally,
        report: &impl Fn(Progress) -> F,
    ) -> Result<(), (String, Stop)> {
        for (name, outcome) in outcomes {
            match outcome {
                Ok(Outcome::Moved) => {
                    tally.moved_total += 1;
                    tally.moved.push(name.clone());
                    report(Progress::Secret { name, outcome: SecretOutcome::Migrated, message: None }).await;
                }
                Ok(Outcome::Skipped(Skip::AlreadyThere(_))) if run.names.is_none() => {}
                Ok(Outcome::Skipped(reason)) => {
                    tally.skipped_total += 1;
                    let reason = reason.to_string();
                    tally.skipped.push(SkippedSecret { secret: name.clone(), reason: reason.clone() });
                    report(Progress::Secret { name, outcome: SecretOutcome::Skipped, message: Some(reason) }).await;
                }
                Err(stop) => return Err((name, stop)),
            }
        }
        Ok(())
    }

    pub(super) async fn record_progress(
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
        if let Err(e) = self.services.writer.record::<MigrationRun>(ctx, &run.id, command).await {
            tracing::warn!(run = %run.id, error = %e, "could not record a migration's progress");
        }
    }
}

/// What a run has done so far: the secrets moved and skipped since progress was last recorded,
/// and the totals.
#[derive(Default)]
struct Tally {
    moved: Vec<String>,
    skipped: Vec<SkippedSecret>,
    moved_total: u64,
    skipped_total: u64,
}

/// The last line of a run's progress.
fn finished(run: &Run, status: Finish, moved: u64, skipped: u64, failed: u64, error: Option<String>) -> Progress {
    Progress::Finished { run: run.id.to_string(), status, moved, skipped, failed, error }
}

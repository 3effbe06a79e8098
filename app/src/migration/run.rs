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
        let finish = |status: &'static str, moved: u64, skipped: u64, failed: u64, error: Option<String>| {
            Progress::Finished { run: run.id.to_string(), status, moved, skipped, failed, error }
        };
        let drivers = async {
            Ok::<_, ApiError>((
                self.services.drivers.get(run.from.as_str()).await?,
                self.services.drivers.get(run.to.as_str()).await?,
            ))
        };
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
            for (name, outcome) in settled.into_iter().flatten() {
                match outcome {
                    Ok(Outcome::Moved) => {
                        moved_total += 1;
                        moved.push(name.clone());
                        report(Progress::Secret { name, outcome: "migrated", message: None }).await;
                    }
                    Ok(Outcome::Skipped(Skip::AlreadyThere(_))) if run.names.is_none() => {}
                    Ok(Outcome::Skipped(reason)) => {
                        skipped_total += 1;
                        let reason = reason.to_string();
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
        if chunks.len() > 0 {
            // Stopped between batches by a shutdown: the run stays running, and another replica
            // (or the next start) resumes it once this one has let go of the migration lock.
            tracing::info!(run = %run.id, left = chunks.len() * PROGRESS_BATCH, "shutting down: a migration stopped between batches and is handed over");
            let error = "mcpd is shutting down; the run resumes on another replica or at the next start \
                         (mcpctl get migrations follows it)";
            report(finish("interrupted", moved_total, skipped_total, 0, Some(error.into()))).await;
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
        report(finish("completed", moved_total, skipped_total, 0, None)).await;
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
        if let Err(e) =
            self.services.writer.record::<MigrationRun>(&self.services.store.migrations, ctx, &run.id, command).await
        {
            tracing::warn!(run = %run.id, error = %e, "could not record a migration's progress");
        }
    }
}

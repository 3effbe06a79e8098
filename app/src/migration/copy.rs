//! Copying secrets to the destination: a batch read in one go, each secret copied (or found
//! settled already), and a batch's flips recorded in one commit.

use super::*;

impl Runner {
    /// The first half of moving a batch: each secret is read and written to the destination on
    /// its own (or settled at once), and its flip rehearsed. Stops at the first secret the run
    /// must stop at.
    pub(super) async fn copy_chunk(
        &self,
        ctx: &RequestContext,
        run: &Run,
        names: &[String],
        source: &dyn SecretBackendDriver,
        destination: &dyn SecretBackendDriver,
    ) -> Batch {
        let mut outcomes: Vec<(String, Option<Result<Outcome, Stop>>)> = Vec::new();
        let mut copies = Vec::new();
        let records = match secrets::get_many(&self.services.store.db, names).await {
            Ok(records) => records,
            Err(e) => return Batch { outcomes: vec![(names[0].clone(), Some(Err(e.into())))], copies },
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
    pub(super) async fn settle(
        &self,
        ctx: &RequestContext,
        run: &Run,
        batch: Batch,
        source: &dyn SecretBackendDriver,
        destination: &dyn SecretBackendDriver,
    ) -> Vec<(String, Result<Outcome, Stop>)> {
        let Batch { mut outcomes, mut copies } = batch;
        if !copies.is_empty() {
            let decided: Vec<Decided<Secret>> =
                copies.iter().map(|c| Decided { id: c.name.as_str(), before: c.sequence, events: &c.events }).collect();
            // The run goes on once readers see the flips; a projector that lags stops it here.
            let recorded = self.services.writer.execute_batch(ctx, &decided).await;
            drop(decided);
            let flipped = match recorded {
                Ok(Recorded::Visible) => Ok(()),
                Ok(Recorded::Lagging(message)) => Err(Stop::Lagging(message)),
                Err(WriteError::Clash { .. }) => {
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
                Err(e) => Err(e.into()),
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
    pub(super) async fn copy_one(
        &self,
        ctx: &RequestContext,
        run: &Run,
        name: &str,
        prefetched: &mut Prefetched,
        source: &dyn SecretBackendDriver,
        destination: &dyn SecretBackendDriver,
    ) -> Result<Step, Stop> {
        let known = Known { record: prefetched.records.remove(name), values: prefetched.values.remove(name) };
        let mut copy = match self.copy(ctx, run, name, known, source, destination).await? {
            Some(Step::Done(outcome)) => return Ok(Step::Done(outcome)),
            Some(Step::Copied(copy)) => copy,
            // Changed since the batch was read: moved on its own, the slow way.
            None => return self.migrate_one(ctx, run, name, source, destination).await.map(Step::Done),
        };
        let mut aggregate = match prefetched.aggregates.remove(name) {
            Some(loaded) => loaded,
            None => self.services.store.load::<Secret>(name).await?,
        };
        let decided = crate::store::write::decide(&mut aggregate.aggregate, copy.flip.clone())
            .await
            .map_err(|e| ApiError::from_refusal(domain::secret::AGGREGATE_TYPE, e));
        match decided {
            Ok(events) => {
                copy.events = events;
                copy.sequence = aggregate.sequence;
                copy.aggregate = aggregate.aggregate;
                Ok(Step::Copied(copy))
            }
            Err(ApiError::Conflict(_)) => {
                let _ = destination.discard(name, &copy.written.value_ref).await;
                self.migrate_one(ctx, run, name, source, destination).await.map(Step::Done)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Looks at one secret (`record`, as read just before): settles it if there is nothing to
    /// copy, otherwise reads it from the source and writes it to the destination (before any
    /// flip: a crash in between leaves a copy that the next attempt writes over). `None` when
    /// the secret changed since `record` was read.
    pub(super) async fn copy(
        &self,
        ctx: &RequestContext,
        run: &Run,
        name: &str,
        known: Known,
        source: &dyn SecretBackendDriver,
        destination: &dyn SecretBackendDriver,
    ) -> Result<Option<Step>, Stop> {
        let secret_name = secret_name(name)?;
        let Known { record, values } = known;
        let Some(record) = record else {
            return Ok(Some(Step::Done(Outcome::Skipped(Skip::NotFound))));
        };
        if record.spec.backend == run.to {
            return self.finish_moved(ctx, run, &secret_name, source).await.map(|o| Some(Step::Done(o)));
        }
        if record.spec.backend != run.from {
            return Ok(Some(Step::Done(Outcome::Skipped(Skip::OnAnotherBackend(record.spec.backend.clone())))));
        }
        let pinned_by = self.pinned_by(name, run);
        if !pinned_by.is_empty() {
            return Ok(Some(Step::Done(Outcome::Skipped(Skip::HoldsToken(pinned_by)))));
        }
        let values = match values {
            Some(values) => Some(values),
            None => source.get(name, &record.spec.value_ref).await?,
        };
        let Some(values) = values else {
            // Superseded since `record` was read (an update removes the old version)?
            let now = secrets::get(&self.services.store.db, name).await?;
            if now.is_some_and(|now| now.resource_version != record.resource_version) {
                return Ok(None);
            }
            return Err(Stop::ValuesMissing(run.from.clone()));
        };
        let written = destination.put(name, &values, None).await?;
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
    pub(super) async fn prefetch(
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
        let aggregates = self.services.store.load_many::<Secret>(names).await.unwrap_or_default();
        Prefetched { records: Default::default(), values, aggregates }
    }

    /// Moves one secret on its own, copying again while it changes under the copy; `Err` is
    /// the reason the run must stop here.
    pub(super) async fn migrate_one(
        &self,
        ctx: &RequestContext,
        run: &Run,
        name: &str,
        source: &dyn SecretBackendDriver,
        destination: &dyn SecretBackendDriver,
    ) -> Result<Outcome, Stop> {
        let secret = secret_name(name)?;
        for attempt in 0..COPY_ATTEMPTS {
            if attempt > 0 {
                // It changed under the last copy: look again once the read models show the change
                // (the write side may be ahead of them), or every attempt meets the same old row.
                let shown = self.services.writer.await_projection(domain::secret::AGGREGATE_TYPE, &secret).await?;
                if let Recorded::Lagging(message) = shown {
                    return Err(Stop::Lagging(message));
                }
            }
            let record = secrets::get(&self.services.store.db, name).await?;
            let copy = match self.copy(ctx, run, name, Known { record, values: None }, source, destination).await? {
                Some(Step::Done(outcome)) => return Ok(outcome),
                Some(Step::Copied(copy)) => copy,
                None => continue,
            };
            match self.services.writer.execute::<Secret>(ctx, &copy.name, copy.flip.clone()).await {
                Ok(Recorded::Visible) => {
                    if !run.keep_source {
                        self.remove_source(ctx, run, &copy.name, source, &copy.source_ref).await;
                    }
                    return Ok(Outcome::Moved);
                }
                // Flipped, but readers do not see it yet: the run stops here, and a run again
                // finishes the job (the flip is in the secret's history).
                Ok(Recorded::Lagging(message)) => return Err(Stop::Lagging(message)),
                // Changed or moved meanwhile: drop this copy and look again.
                Err(ApiError::Conflict(_)) => {
                    let _ = destination.discard(name, &copy.written.value_ref).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Stop::KeptChanging)
    }
}

/// `name` as a resource name; a row whose name does not parse stops the run there.
fn secret_name(name: &str) -> Result<ResourceName, Stop> {
    ResourceName::parse(name).map_err(|m| Stop::BadName { name: name.to_owned(), message: m.to_string() })
}

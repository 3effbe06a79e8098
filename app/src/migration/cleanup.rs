//! After the flips: source copies removed, secrets found already moved finished, and the
//! secrets that hold an OpenBao backend's token pinned where they are.

use super::*;

impl Runner {
    /// Deletes the source copies of flipped secrets and records the outcomes in one commit.
    pub(super) async fn remove_sources(
        &self,
        ctx: &RequestContext,
        run: &Run,
        copies: &[Copy],
        source: &dyn SecretBackendDriver,
    ) {
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
            match crate::store::write::decide(&mut aggregate, command).await {
                Ok(events) => records.push((copy, events)),
                Err(e) => tracing::warn!(secret = %copy.name, error = %e, "could not record a source clean-up"),
            }
        }
        let decided: Vec<Decided<Secret>> = records
            .iter()
            .map(|(copy, events)| Decided {
                id: copy.name.as_str(),
                before: copy.sequence + copy.events.len() as u64,
                events,
            })
            .collect();
        if let Err(e) = self.services.writer.record_batch(ctx, &decided).await {
            // The secrets are fully usable on the destination; a re-run finds the clean-ups
            // missing from their histories and does them again.
            tracing::warn!(run = %run.id, error = %e, "could not record the source clean-ups of a batch");
        }
    }

    /// Secret -> the openbao backends whose token it holds, if moving secrets to `to` would take
    /// them off plaintext (a token's secret is the trust root and has to stay readable without
    /// those backends); empty when `to` is plaintext.
    pub(super) async fn token_pins(
        &self,
        to: &ResourceName,
    ) -> Result<std::collections::HashMap<String, Vec<String>>, ApiError> {
        let mut pins = std::collections::HashMap::<String, Vec<String>>::new();
        let destination = secret_backends::get(&self.services.store.db, to.as_str()).await?;
        if destination.is_some_and(|d| d.spec.spec.backend_type == domain::secret_backend::BackendType::Plaintext) {
            return Ok(pins);
        }
        for backend in secret_backends::list(&self.services.store.db).await? {
            if let Some(config) = &backend.spec.spec.config {
                pins.entry(config.token_secret_ref.name.to_string()).or_default().push(backend.name);
            }
        }
        Ok(pins)
    }

    /// The backends that pin `secret` to plaintext for this run.
    pub(super) fn pinned_by(&self, secret: &str, run: &Run) -> Vec<String> {
        run.pins.get(secret).cloned().unwrap_or_default()
    }

    /// A secret already on the destination: if a migration from this source left its source
    /// copy behind (a crash between the flip and the clean-up), remove it now.
    pub(super) async fn finish_moved(
        &self,
        ctx: &RequestContext,
        run: &Run,
        name: &ResourceName,
        source: &dyn SecretBackendDriver,
    ) -> Result<Outcome, Stop> {
        let history = self.services.store.log.aggregate_history(domain::secret::AGGREGATE_TYPE, name.as_str()).await?;
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
                Ok(Outcome::Skipped(Skip::AlreadyThere(run.to.clone())))
            }
            None => Ok(Outcome::Skipped(Skip::AlreadyThere(run.to.clone()))),
        }
    }

    /// Removes the source copy, best effort, and records how that went on the secret.
    pub(super) async fn remove_source(
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
        if let Err(e) = self.services.writer.record::<Secret>(ctx, name, record).await {
            tracing::warn!(secret = %name, error = %e, "could not record the clean-up of a migrated secret");
        }
    }
}

//! Ownership of OpenBao paths, kept in mcpd's database (`openbao_claims`): a path is
//! claimed once it was seen empty and before mcpd first writes it, so data mcpd did not write
//! is never overwritten; one LIST of the prefix serves a minute of a migration's batches.

use super::*;

impl OpenBaoDriver {
    /// Where a secret's path is, for `openbao_claims`: another server, namespace or mount is
    /// another path.
    pub(super) fn claim_key(&self, secret: &str) -> String {
        let server = self.config.url.trim_end_matches('/');
        let namespace = self.config.namespace.as_deref().unwrap_or("");
        format!("{server} {namespace} {}", self.location("data", secret))
    }

    /// Which of `secrets` have claimed paths.
    pub(super) async fn claimed(&self, secrets: &[&str]) -> BackendResult<BTreeSet<String>> {
        if secrets.is_empty() {
            return Ok(BTreeSet::new());
        }
        let keys: BTreeMap<String, &str> = secrets.iter().map(|s| (self.claim_key(s), *s)).collect();
        let placeholders: Vec<String> = (1..=keys.len()).map(|i| format!("${i}")).collect();
        let sql = format!("SELECT location FROM openbao_claims WHERE location IN ({})", placeholders.join(", "));
        let mut query = sqlx::query_scalar::<_, String>(&sql);
        for key in keys.keys() {
            query = query.bind(key);
        }
        let rows = query.fetch_all(&self.db.pool).await.map_err(|e| BackendError::Internal(e.into()))?;
        Ok(rows.iter().filter_map(|key| keys.get(key)).map(|s| (*s).to_owned()).collect())
    }

    /// Claims the paths of `secrets`, in one commit.
    pub(super) async fn claim(&self, secrets: &[&str]) -> BackendResult<()> {
        if secrets.is_empty() {
            return Ok(());
        }
        let now = jiff::Timestamp::now().to_string();
        let rows: Vec<String> =
            (0..secrets.len()).map(|i| format!("(${}, $1, ${}, $2)", 3 + 2 * i, 4 + 2 * i)).collect();
        let sql = format!(
            "INSERT INTO openbao_claims (location, backend, secret, claimed_at) VALUES {} \
             ON CONFLICT (location) DO NOTHING",
            rows.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(&self.backend).bind(now);
        for secret in secrets {
            query = query.bind(self.claim_key(secret)).bind(*secret);
        }
        query.execute(&self.db.pool).await.map_err(|e| BackendError::Internal(e.into()))?;
        Ok(())
    }

    /// Gives up the claim on `secret`'s path (it is gone, or it was never mcpd's).
    pub(super) async fn unclaim(&self, secret: &str) -> BackendResult<()> {
        {
            let mut prepared = self.prepared.lock().expect("claims lock");
            prepared.known.remove(secret);
            prepared.fresh.remove(secret);
            if let Some((_, listing)) = prepared.listing.as_mut() {
                listing.remove(secret);
            }
        }
        sqlx::query("DELETE FROM openbao_claims WHERE location = $1")
            .bind(self.claim_key(secret))
            .execute(&self.db.pool)
            .await
            .map_err(|e| BackendError::Internal(e.into()))?;
        Ok(())
    }

    /// Writes to a path that is mcpd's: check-and-set on `cas` (the version mcpd last recorded),
    /// and when a version mcpd never recorded is there (a crash after a write), on that one.
    pub(super) async fn write_owned(&self, secret: &str, data: &SecretData, cas: u64) -> BackendResult<u64> {
        match self.write(secret, data, cas).await {
            Err(BackendError::Conflict { .. }) => {
                let current = self.metadata(secret).await?.map_or(0, |(version, _)| version);
                self.write(secret, data, current).await
            }
            written => written,
        }
    }

    /// The secrets' paths under the prefix (one LIST); `None` when the token may not list them.
    pub(super) async fn listed(&self) -> BackendResult<Option<BTreeSet<String>>> {
        let mut url = self.url("metadata", Some(""))?;
        url.query_pairs_mut().append_pair("list", "true");
        let path = self.location("metadata", "");
        let answer = match self.call(Method::GET, url, None, &path).await {
            Err(BackendError::PermissionDenied { .. }) => return Ok(None),
            answer => answer?,
        };
        match answer.status {
            StatusCode::NOT_FOUND => Ok(Some(BTreeSet::new())),
            status if status.is_success() => Ok(Some(
                answer.body["data"]["keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            )),
            _ => Err(self.unexpected(&path, &answer)),
        }
    }
}

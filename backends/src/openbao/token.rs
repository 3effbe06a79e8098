//! The OpenBao token: read from its plaintext secret, cached while that secret's version
//! stays, read afresh after a 403.

use super::*;

pub(super) struct CachedToken {
    value_ref: String,
    token: SecretString,
}

impl OpenBaoDriver {
    /// The token, from the cache unless the token secret changed or `refresh` is asked.
    pub(super) async fn token(&self, refresh: bool) -> BackendResult<SecretString> {
        let reference = &self.config.token_secret_ref;
        let fail = |reason: String| BackendError::Token { backend: self.backend.clone(), reason };
        let trusted = self.token_trusted_until.lock().expect("token lock").is_some_and(|until| Instant::now() < until);
        if trusted
            && !refresh
            && let Some(cached) = self.token.lock().await.as_ref()
        {
            return Ok(cached.token.clone());
        }
        let secret = secrets::get(&self.db, reference.name.as_str())
            .await
            .map_err(|e| BackendError::Internal(e.into()))?
            .ok_or_else(|| fail(format!("token secret {:?} does not exist", reference.name)))?;
        let mut cached = self.token.lock().await;
        if let Some(cached) = cached.as_mut()
            && !refresh
            && cached.value_ref == secret.spec.value_ref
        {
            return Ok(cached.token.clone());
        }
        let mut data = plaintext::get(&self.db, &secret.spec.value_ref)
            .await?
            .ok_or_else(|| fail(format!("the values of token secret {:?} are missing", reference.name)))?;
        let token = data
            .remove(&reference.key)
            .ok_or_else(|| fail(format!("token secret {:?} has no key {:?}", reference.name, reference.key)))?;
        *cached = Some(CachedToken { value_ref: secret.spec.value_ref, token: token.clone() });
        Ok(token)
    }
}

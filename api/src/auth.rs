//! Authentication: bearer tokens. A token is `mcpd_<id>_<secret>`: the id names the token's
//! aggregate (so a request finds its row in one look-up, and `mcpctl get tokens` can show it),
//! the secret is 256 random bits. mcpd keeps only the SHA-256 of the whole token and compares
//! hashes in constant time. A token works while it exists, is not revoked, has not expired and
//! its user still exists; everything else is 401, the same answer whatever the reason (the
//! reason is logged, without the token).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::rbac::{Permissions, built_in};
use projections::read_models::{rbac, tokens, users};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::context::RequestContext;
use crate::error::ApiError;
use crate::service::Services;

const PREFIX: &str = "mcpd_";
/// How often a token's last use is written, at most.
const USAGE_INTERVAL: Duration = Duration::from_secs(60);

/// Routes anyone may call: liveness, readiness and the server version.
const OPEN_PATHS: [&str; 3] = ["/healthz", "/readyz", "/version"];

/// A token as issued: shown once, then only its hash is kept.
pub struct IssuedToken {
    pub id: String,
    pub token: SecretString,
    pub hash: String,
}

/// A fresh token: a new id and 256 bits from the operating system's CSPRNG.
pub fn generate() -> anyhow::Result<IssuedToken> {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id).map_err(|e| anyhow::anyhow!("the system random source failed: {e}"))?;
    getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("the system random source failed: {e}"))?;
    let id = format!("tok-{}", hex::encode(id));
    let token = SecretString::from(format!("{PREFIX}{id}_{}", hex::encode(secret)));
    let hash = hash(token.expose_secret());
    Ok(IssuedToken { id, token, hash })
}

/// A token given from outside (`MCPD_BOOTSTRAP_TOKEN`): its id comes from its own form when it
/// has mcpd's, otherwise from its hash.
pub fn adopt(token: SecretString) -> anyhow::Result<IssuedToken> {
    let raw = token.expose_secret();
    if raw.len() < 32 || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        anyhow::bail!("a bootstrap token must be at least 32 printable characters without spaces");
    }
    let hash = hash(raw);
    let id = match token_id(raw) {
        Some(id) => id.to_owned(),
        None => format!("tok-{}", &hash[..16]),
    };
    Ok(IssuedToken { id, token, hash })
}

/// Hex SHA-256.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The id inside a token of mcpd's form.
fn token_id(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.rsplit_once('_')?;
    (id.starts_with("tok-") && !secret.is_empty()).then_some(id)
}

/// When each token's use was last written, so a busy client costs one write a minute.
#[derive(Clone, Default)]
pub struct UsageLog(Arc<Mutex<HashMap<String, Instant>>>);

impl UsageLog {
    fn due(&self, id: &str) -> bool {
        let mut seen = self.0.lock().expect("usage lock");
        let now = Instant::now();
        match seen.get(id) {
            Some(last) if now.duration_since(*last) < USAGE_INTERVAL => false,
            _ => {
                seen.insert(id.to_owned(), now);
                true
            }
        }
    }
}

/// Why a token was not accepted.
#[derive(Debug)]
pub enum Refusal {
    /// The token is not valid: unknown, revoked, expired, or its user is gone (the reason is
    /// for the log, never for the client).
    Invalid(&'static str),
    /// The token could not be checked: the database did not answer.
    Unavailable(ApiError),
}

/// The user a bearer token authenticates, and the token's id.
pub async fn authenticate_token(s: &Services, token: &str) -> Result<(String, String), Refusal> {
    let id = match token_id(token) {
        Some(id) => id.to_owned(),
        None => format!("tok-{}", &hash(token)[..16]),
    };
    let record = match tokens::get(&s.store.db, &id).await {
        Ok(Some(record)) => record,
        Ok(None) => return Err(Refusal::Invalid("unknown token")),
        Err(e) => return Err(Refusal::Unavailable(e.into())),
    };
    let presented = hash(token);
    if !bool::from(presented.as_bytes().ct_eq(record.spec.hash.as_bytes())) {
        return Err(Refusal::Invalid("unknown token"));
    }
    if record.spec.revoked {
        return Err(Refusal::Invalid("revoked token"));
    }
    if let Some(expires) = &record.spec.expires_at {
        let expired = expires.parse::<jiff::Timestamp>().map_or(true, |at| at <= jiff::Timestamp::now());
        if expired {
            return Err(Refusal::Invalid("expired token"));
        }
    }
    match users::get(&s.store.db, &record.spec.user).await {
        Ok(Some(_)) => Ok((record.spec.user, id)),
        Ok(None) => Err(Refusal::Invalid("the token's user was deleted")),
        Err(e) => Err(Refusal::Unavailable(e.into())),
    }
}

/// The middleware: every route but [`OPEN_PATHS`] needs a valid bearer token.
pub async fn authenticate(State(s): State<Services>, mut request: Request, next: Next) -> Response {
    if OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let header = request.headers().get(header::AUTHORIZATION).map(|v| v.to_str().map(str::to_owned));
    let token = match header {
        None => return unauthenticated("no token: send Authorization: Bearer <token> (see mcpctl login)"),
        Some(Err(_)) => return unauthenticated("the Authorization header is malformed"),
        Some(Ok(value)) => match bearer(&value) {
            Some(token) => token.to_owned(),
            None => return unauthenticated("the Authorization header is malformed: expected Bearer <token>"),
        },
    };
    let (user, token_id) = match authenticate_token(&s, &token).await {
        Ok(found) => found,
        Err(Refusal::Invalid(reason)) => {
            tracing::info!(reason, "a request was refused authentication");
            return unauthenticated("the token is not valid (unknown, expired or revoked)");
        }
        // Not 401: the token may well be good, and a client that heard 401 would give up on it.
        Err(Refusal::Unavailable(e)) => return e.into_response(),
    };
    if s.usage.due(&token_id) {
        let (db, id) = (s.store.db.clone(), token_id.clone());
        tokio::spawn(async move {
            if let Err(e) = tokens::touch(&db, &id, &jiff::Timestamp::now().to_string()).await {
                tracing::warn!(token = %id, error = %e, "could not record a token's last use");
            }
        });
    }
    let permissions = match permissions_of(&s, &user).await {
        Ok(permissions) => permissions,
        Err(e) => return e.into_response(),
    };
    if let Some(ctx) = request.extensions_mut().get_mut::<RequestContext>() {
        ctx.actor = user;
        ctx.token_id = token_id;
        ctx.permissions = Arc::new(permissions);
    }
    next.run(request).await
}

/// The union of the roles bound to `user`. A binding naming a role that does not exist grants
/// nothing.
pub async fn permissions_of(s: &Services, user: &str) -> Result<Permissions, ApiError> {
    let mut roles = Vec::new();
    for binding in rbac::bindings(&s.store.db).await? {
        if !binding.spec.users.iter().any(|u| u == user) {
            continue;
        }
        match built_in(&binding.spec.role) {
            Some(role) => roles.push(role),
            None => {
                if let Some(role) = rbac::role(&s.store.db, &binding.spec.role).await? {
                    roles.push(role.spec);
                }
            }
        }
    }
    Ok(Permissions::new(roles))
}

/// The token in an `Authorization: Bearer <token>` value; the scheme is case-insensitive
/// (RFC 7235).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn unauthenticated(message: &str) -> Response {
    ApiError::Unauthenticated(message.to_owned()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_their_id_and_256_random_bits() {
        let issued = generate().unwrap();
        let raw = issued.token.expose_secret();
        assert_eq!(token_id(raw), Some(issued.id.as_str()));
        let secret = raw.rsplit_once('_').unwrap().1;
        assert_eq!(secret.len(), 64, "32 bytes, hex");
        assert_eq!(issued.hash, hash(raw));
        assert_ne!(generate().unwrap().hash, issued.hash);
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearerabc"), None);
    }

    #[test]
    fn a_foreign_bootstrap_token_gets_an_id_from_its_hash() {
        let adopted = adopt(SecretString::from("x".repeat(40))).unwrap();
        assert!(adopted.id.starts_with("tok-"));
        assert!(adopt(SecretString::from("short".to_owned())).is_err());
        assert!(adopt(SecretString::from(format!("{} with space", "x".repeat(40)))).is_err());
    }
}

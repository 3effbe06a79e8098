//! Authentication: the middleware that turns a bearer token (see [`app::bearer`] for its
//! format) into the request's user and permissions. mcpd compares token hashes in constant time.
//! A token works while it exists, is not revoked, has not expired and its user still exists;
//! everything else is 401, the same answer whatever the reason (the reason is logged, without
//! the token). A token that could not be checked (the database is down) is 503, never 401.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use projections::read_models::Record;
use projections::read_models::tokens::TokenState;
use subtle::ConstantTimeEq;

use app::context::RequestContext;
use app::error::{ApiError, RefusedBecause};
use app::service::Services;

/// Why a token was not accepted.
#[derive(Debug)]
pub enum Refusal {
    /// The token is not valid: unknown, revoked, expired, or its user is gone (the reason is
    /// for the log, never for the client).
    Invalid(&'static str),
    /// The token could not be checked: the database did not answer.
    Unavailable(ApiError),
}

pub use app::bearer::hash;
use app::bearer::{bearer, token_id};

/// The user a bearer token authenticates, and the token's id. A token not held in memory is
/// looked up in the database unless `peer` is past its allowance of look-ups that found
/// nothing (429 then).
pub async fn authenticate_token(
    s: &Services,
    token: &str,
    peer: Option<std::net::IpAddr>,
) -> Result<(String, String), Refusal> {
    let id = match token_id(token) {
        Some(id) => id.to_owned(),
        None => format!("tok-{}", &hash(token)[..16]),
    };
    let load = async {
        if let Some(peer) = peer {
            s.limits.may_look_up(peer)?;
        }
        let found = s.token_record(&id).await?;
        if let (None, Some(peer)) = (&found, peer) {
            s.limits.failed_look_up(peer);
        }
        Ok(found)
    };
    let record = match s.access.token(&id, load).await {
        Ok(Some(record)) => record,
        Ok(None) => return Err(Refusal::Invalid("unknown token")),
        Err(e) => return Err(Refusal::Unavailable(e)),
    };
    let presented = hash(token);
    if !bool::from(presented.as_bytes().ct_eq(record.spec.hash.as_bytes())) {
        return Err(Refusal::Invalid("unknown token"));
    }
    live(s, &record).await.map(|()| (record.spec.user.clone(), id))
}

/// Whether a token found by its id still authenticates: not revoked, not expired, its user
/// still there.
async fn live(s: &Services, record: &Record<TokenState>) -> Result<(), Refusal> {
    if record.spec.revoked {
        return Err(Refusal::Invalid("revoked token"));
    }
    if let Some(expires) = &record.spec.expires_at {
        let expired = expires.parse::<jiff::Timestamp>().map_or(true, |at| at <= jiff::Timestamp::now());
        if expired {
            return Err(Refusal::Invalid("expired token"));
        }
    }
    match user(s, &record.spec.user).await? {
        Some(_) => Ok(()),
        None => Err(Refusal::Invalid("the token's user was deleted")),
    }
}

/// Whether what authenticated a request long under way (a watch) still does: its token (by
/// id, from the access cache, so revocations on other replicas count once followed) or, for a
/// client certificate, its user.
pub async fn still_authenticated(s: &Services, user: &str, token_id: &str) -> Result<(), Refusal> {
    if token_id == CERTIFICATE_TOKEN_ID {
        return match self::user(s, user).await? {
            Some(_) => Ok(()),
            None => Err(Refusal::Invalid("no such user")),
        };
    }
    let load = s.token_record(token_id);
    let record = match s.access.token(token_id, load).await {
        Ok(Some(record)) => record,
        Ok(None) => return Err(Refusal::Invalid("unknown token")),
        Err(e) => return Err(Refusal::Unavailable(e)),
    };
    if record.spec.user != user {
        return Err(Refusal::Invalid("unknown token"));
    }
    live(s, &record).await
}

/// The middleware: every route but the open ones ([`crate::routes::Facts::open`]) needs a valid
/// token.
pub async fn authenticate(State(s): State<Services>, request: Request, next: Next) -> Response {
    let facts = crate::routes::facts_of(&request);
    if facts.open {
        return next.run(request).await;
    }
    let header = request.headers().get(header::AUTHORIZATION).map(|v| v.to_str().map(str::to_owned));
    // The Anthropic SDK sends its key as `x-api-key`: on the Anthropic surface, that is the token.
    let api_key = || {
        let value = request.headers().get("x-api-key")?;
        facts.api_key_header.then(|| value.to_str().map(|v| format!("Bearer {v}")))
    };
    let certificate = request.extensions().get::<crate::tls::ClientCertificate>().cloned();
    let token = match header.or_else(api_key) {
        // A verified client certificate (--client-ca) authenticates its common name's user.
        None if let Some(certificate) = certificate => {
            return match by_certificate(&s, &certificate).await {
                Ok(user) => with_user(&s, request, next, user, CERTIFICATE_TOKEN_ID.to_owned()).await,
                Err(Refusal::Invalid(reason)) => {
                    tracing::info!(reason, user = %certificate.common_name, "a client certificate was refused");
                    let mut response = unauthenticated("the client certificate names no user of mcpd");
                    let why = format!("client certificate for {:?}: {reason}", certificate.common_name);
                    response.extensions_mut().insert(RefusedBecause(why));
                    response
                }
                Err(Refusal::Unavailable(e)) => e.into_response(),
            };
        }
        None => return unauthenticated("no token: send Authorization: Bearer <token> (see mcpctl login)"),
        Some(Err(_)) => return unauthenticated("the Authorization header is malformed"),
        Some(Ok(value)) => match bearer(&value) {
            Some(token) => token.to_owned(),
            None => return unauthenticated("the Authorization header is malformed: expected Bearer <token>"),
        },
    };
    let peer = request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    let (user, token_id) = match authenticate_token(&s, &token, peer).await {
        Ok(found) => found,
        Err(Refusal::Invalid(reason)) => {
            tracing::info!(reason, "a request was refused authentication");
            let mut response = unauthenticated("the token is not valid (unknown, expired or revoked)");
            response.extensions_mut().insert(RefusedBecause(reason.to_owned()));
            // Its id, which names it without being it (the token's own part is never kept).
            if let Some(id) = token_id(&token) {
                response.extensions_mut().insert(Authenticated { user: None, token_id: id.to_owned() });
            }
            return response;
        }
        // Not 401: the token may well be good, and a client that heard 401 would give up on it.
        Err(Refusal::Unavailable(e)) => return e.into_response(),
    };
    if s.usage.due(&token_id) {
        s.touch_token(&token_id);
    }
    with_user(&s, request, next, user, token_id).await
}

/// What a request authenticated by a client certificate records as its token id.
pub const CERTIFICATE_TOKEN_ID: &str = "client-certificate";

/// The user a client certificate's common name names, if it exists, and if the certificate is
/// not older than that user: a user deleted and created again under the same name
/// (`resourceVersion` past 1) is not whoever held the name before, so a certificate whose
/// `notBefore` precedes the re-creation was made for someone else. From the access cache.
async fn by_certificate(s: &Services, certificate: &crate::tls::ClientCertificate) -> Result<String, Refusal> {
    let name = &certificate.common_name;
    let Some(user) = user(s, name).await? else {
        return Err(Refusal::Invalid("no such user"));
    };
    if user.version > 1 && certificate.not_before < user.created_at {
        return Err(Refusal::Invalid("the certificate is older than the user, who was created again since"));
    }
    Ok(name.clone())
}

/// The user `name` as the access cache holds it (read from the read model when it does not).
async fn user(s: &Services, name: &str) -> Result<Option<app::service::access_cache::Incarnation>, Refusal> {
    s.cached_user(name).await.map_err(Refusal::Unavailable)
}

/// Runs the request as `user`, with that user's permissions.
async fn with_user(s: &Services, mut request: Request, next: Next, user: String, token_id: String) -> Response {
    tracing::Span::current().record("user", user.as_str());
    // Each certificate user has a rate of their own, as each token has.
    let rate_key = if token_id == CERTIFICATE_TOKEN_ID { format!("certificate:{user}") } else { token_id.clone() };
    if let Err(limited) = s.limits.admit(&rate_key) {
        tracing::info!(user = %user, "a token went past its rate limit");
        return limited.into_response();
    }
    let permissions = match s.permissions_of(&user).await {
        Ok(permissions) => permissions,
        Err(e) => return e.into_response(),
    };
    if let Some(ctx) = request.extensions_mut().get_mut::<RequestContext>() {
        ctx.actor = user.clone();
        ctx.token_id = token_id.clone();
        ctx.permissions = permissions;
    }
    let mut response = next.run(request).await;
    response.extensions_mut().insert(Authenticated { user: Some(user), token_id });
    response
}

/// Who a request was authenticated as (or, `user` `None`, which token id a refused one named),
/// on its response, for the refusals' audit stream (`app::denials`).
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user: Option<String>,
    pub token_id: String,
}

fn unauthenticated(message: &str) -> Response {
    ApiError::Unauthenticated(message.to_owned()).into_response()
}

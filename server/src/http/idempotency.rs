//! `Idempotency-Key` on POST, PUT and DELETE. A write carrying a key claims it in the
//! transaction that records its events (`projections::idempotency`), so across restarts and
//! replicas the key and the change exist together or not at all. A retry with the same key and
//! the same request (method, path, query, body) gets the first answer back, marked
//! `Idempotent-Replayed: true`, and records nothing; with a different request it is 422. A
//! request that recorded nothing (refused, invalid) claims nothing: its retry runs again.
//!
//! When mcpd stopped between recording a change and storing its answer, the retry answers with
//! the resource as it is now (201 for a create, 200 for a replace, 204 for a delete). Keys live
//! for `--idempotency-key-hours` and belong to the user who sent them: to that incarnation of
//! the user (a user deleted and created again under the same name starts with no keys), and
//! only while they may still make the request (a replay is authorised as the request was).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use projections::idempotency::{Answer, Claim};
use sha2::{Digest, Sha256};

use app::context::RequestContext;
use app::error::ApiError;
use app::service::Services;

use crate::routes::RouteTable;
use domain::rbac::{Operation, Verb};

pub const HEADER: &str = "idempotency-key";
const REPLAYED: &str = "idempotent-replayed";
/// The largest answer read back to store (answers are documents, far smaller).
const STORED_ANSWER_LIMIT: usize = 4 * 1024 * 1024;

/// Whether a route takes the request's method: a request answered 404 or 405 claims no key.
fn routed(routes: &RouteTable, request: &Request) -> bool {
    let Some(matched) = request.extensions().get::<axum::extract::MatchedPath>() else {
        return false;
    };
    routes.serves(request.method(), matched.as_str())
}

/// The middleware (inside authentication: keys are the user's own).
pub async fn idempotency(State((s, routes)): State<(Services, RouteTable)>, request: Request, next: Next) -> Response {
    if !crate::routes::facts_of(&request).idempotent(request.method()) || !routed(&routes, &request) {
        return next.run(request).await;
    }
    let Some(key) = request.headers().get(HEADER) else {
        return next.run(request).await;
    };
    let key = match key.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic()) => key.to_owned(),
        _ => {
            return ApiError::BadRequest("Idempotency-Key must be 1 to 255 visible ASCII characters".into())
                .into_response();
        }
    };
    let Some(ctx) = request.extensions().get::<RequestContext>().cloned() else {
        return next.run(request).await;
    };
    let (mut parts, body) = request.into_parts();
    let body = match super::extract::body_bytes(body, super::extract::BODY_LIMIT).await {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let hash = request_hash(&parts.method, parts.uri.path_and_query().map_or("", |p| p.as_str()), &body);
    let method = parts.method.clone();
    let issues_token = parts.uri.path() == domain::document::Kind::Token.path();
    let key = match owned_key(&s, &ctx, &key).await {
        Ok(key) => key,
        Err(e) => return e.into_response(),
    };
    match earlier(&s, &ctx, &method, &key, &hash).await {
        Ok(Some(answer)) => return answer,
        Ok(None) => {}
        Err(e) => return e.into_response(),
    }
    if let Some(ctx) = parts.extensions.get_mut::<RequestContext>() {
        ctx.idempotency = Some((key.clone(), hash.clone()));
    }
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let status = response.status();
    if app::request_scope::recorded() && status.is_success() {
        return store(&s, &ctx, &key, response, issues_token).await;
    }
    if status == StatusCode::CONFLICT {
        // Another request with this key may have claimed it first (both ran at once).
        if let Ok(Some(answer)) = earlier(&s, &ctx, &method, &key, &hash).await {
            return answer;
        }
    }
    response
}

/// The key as stored: the client's, prefixed with the incarnation of the user who sent it (the
/// version of their user record, which a user deleted and created again does not share).
async fn owned_key(s: &Services, ctx: &RequestContext, key: &str) -> Result<String, ApiError> {
    let user = s.user_record(&ctx.actor).await?;
    // Authentication found the user; a user the read model does not show (yet) has no keys
    // to meet.
    let incarnation = user.map_or(0, |u| u.resource_version);
    Ok(format!("{incarnation}/{key}"))
}

/// The client's part of a stored key, for messages.
fn client_part(key: &str) -> &str {
    key.split_once('/').map_or(key, |(_, k)| k)
}

/// Whether the caller may still make the request whose answer `claim` holds: a replay hands
/// out what the request did, so it is authorised as the request would be now.
fn may_replay(ctx: &RequestContext, method: &Method, claim: &Claim) -> bool {
    use domain::document::Kind;
    match Kind::ALL.into_iter().find(|k| k.info().aggregate_type == claim.aggregate_type) {
        Some(Kind::Migration) => ctx.permissions.allows_operation(Operation::MigrateSecrets),
        Some(kind) => {
            let verb = match *method {
                Method::POST => Verb::Create,
                Method::PUT => Verb::Edit,
                _ => Verb::Delete,
            };
            ctx.may(kind.info().rbac_resource, verb, Some(&claim.aggregate_id))
        }
        // The default backend's stream: choosing it needs reveal on every secret.
        None => ctx.permissions.may_reveal_all(),
    }
}

/// Method, path with query, and body, hashed: what "the same request" means.
fn request_hash(method: &Method, path_and_query: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    for part in [method.as_str().as_bytes(), b"\n", path_and_query.as_bytes(), b"\n", body] {
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

/// The answer to a retry of an earlier request with this key, if there was one.
async fn earlier(
    s: &Services,
    ctx: &RequestContext,
    method: &Method,
    key: &str,
    hash: &str,
) -> Result<Option<Response>, ApiError> {
    let since =
        jiff::Timestamp::now() - jiff::SignedDuration::from_secs(s.limits.tuning.idempotency_lifetime.as_secs() as i64);
    let Some(claim) = s.idempotency_claim(&ctx.actor, key, since).await? else {
        return Ok(None);
    };
    if claim.request_hash != hash {
        return Err(ApiError::KeyReused(format!(
            "Idempotency-Key {:?} was used for a different request (request {}); use a new key for a new request",
            client_part(key),
            claim.request_id
        )));
    }
    if !may_replay(ctx, method, &claim) {
        return Err(ApiError::Forbidden(format!(
            "user {:?} may no longer make the request this Idempotency-Key was used for (request {})",
            ctx.actor, claim.request_id
        )));
    }
    let mut response = match &claim.answer {
        Some(answer) => replay(answer),
        None => reconstruct(s, method, &claim).await?,
    };
    response.headers_mut().insert(REPLAYED, HeaderValue::from_static("true"));
    Ok(Some(response))
}

fn replay(answer: &Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, answer.body.clone().unwrap_or_default()).into_response();
    let headers = response.headers_mut();
    for (name, value) in [(header::CONTENT_TYPE, &answer.content_type), (header::LOCATION, &answer.location)] {
        if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    }
    response
}

/// The answer of a request whose change was recorded but whose answer was not stored (mcpd
/// stopped in between, or it was too large): the resource as it is now.
async fn reconstruct(s: &Services, method: &Method, claim: &Claim) -> Result<Response, ApiError> {
    let in_flight = || {
        ApiError::Conflict(format!(
            "the request with this Idempotency-Key (request {}) is still being answered; retry shortly",
            claim.request_id
        ))
    };
    let Some(kind) = domain::document::Kind::ALL.into_iter().find(|k| k.info().aggregate_type == claim.aggregate_type)
    else {
        return Err(in_flight());
    };
    if kind == domain::document::Kind::Token {
        // A token is shown once, when issued; it is never stored to be shown again.
        return Err(ApiError::Conflict(format!(
            "this request already issued token {:?}, which is shown only once: revoke it and issue a new one",
            claim.aggregate_id
        )));
    }
    // The change is in the log; read it once the read models show it, as its request would
    // have (bounded: 202 when they lag, as the request would have answered).
    let name = domain::ResourceName::parse(&claim.aggregate_id).map_err(|_| {
        ApiError::Conflict(format!("the request with this Idempotency-Key changed {:?}", claim.aggregate_id))
    })?;
    if let app::service::Recorded::Lagging(message) =
        s.writer.await_projection(kind.info().aggregate_type, &name).await?
    {
        return Ok(app::error::accepted(&message));
    }
    match super::resources::current_of(s, kind, &claim.aggregate_id).await? {
        Some(mut response) if *method == Method::POST => {
            *response.status_mut() = StatusCode::CREATED;
            Ok(response)
        }
        Some(response) => Ok(response),
        None if *method == Method::DELETE => Ok(StatusCode::NO_CONTENT.into_response()),
        None => Err(ApiError::Conflict(format!(
            "the request with this Idempotency-Key was applied, but {kind} {:?} has been deleted since",
            claim.aggregate_id
        ))),
    }
}

/// Stores a recorded write's answer under its key, then answers it.
async fn store(s: &Services, ctx: &RequestContext, key: &str, response: Response, issues_token: bool) -> Response {
    let (parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, STORED_ANSWER_LIMIT).await else {
        return (parts.status, "").into_response();
    };
    let text = |name: header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    // A token's answer holds the token itself: it is never stored (a retry is told so).
    let holds_credential = issues_token;
    let answer = Answer {
        status: parts.status.as_u16(),
        content_type: text(header::CONTENT_TYPE),
        location: text(header::LOCATION),
        body: if holds_credential { None } else { String::from_utf8(body.to_vec()).ok() },
    };
    if !holds_credential && let Err(e) = s.keep_idempotent_answer(&ctx.actor, key, &ctx.request_id, &answer).await {
        tracing::warn!(error = %e, "storing an idempotent answer failed; a retry gets the resource as it is then");
    }
    Response::from_parts(parts, Body::from(body))
}

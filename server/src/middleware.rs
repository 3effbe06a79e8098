//! The request-context middleware: each request's id, its context for the handlers, its tracing
//! span, the request timeout, the one log line when it completes, and the refusals' audit.

use std::time::Instant;

use app::context::RequestContext;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::metadata::ANONYMOUS;
use tracing::Instrument;

const REQUEST_ID_HEADER: &str = "x-request-id";

/// Whether the request timeout applies: not to streamed or long routes ([`crate::routes::Facts`]),
/// nor to watches.
fn timed(request: &Request) -> bool {
    crate::routes::facts_of(request).timed()
        && !request
            .uri()
            .query()
            .is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "watch" && v != "false"))
}

/// Gives each request an id (the client's `X-Request-Id` when it is sane), a context for the
/// handlers, a tracing span, and one log line when it completes.
pub async fn request_context(
    axum::extract::State(s): axum::extract::State<app::service::Services>,
    mut request: Request,
    next: Next,
) -> Response {
    let ctx = context_of(&request);
    let request_id = ctx.request_id.clone();
    let source_address = ctx.source_address.clone();
    request.extensions_mut().insert(ctx);
    // The route template (`/api/v1/llms/{name}`), for the metrics and the log; the user is
    // filled in by authentication.
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        route = %route,
        path = %request.uri().path(),
        user = tracing::field::Empty,
    );
    let started = Instant::now();
    let timeout = if timed(&request) { s.limits.tuning.request_timeout } else { None };
    let served = app::request_scope::run(request_id.clone(), next.run(request), timeout).instrument(span.clone()).await;
    let mut response = answer_of(served, &request_id, timeout, &span);
    if matches!(response.status().as_u16(), 401 | 403) {
        record_refusal(&s, &response, &request_id, &method, &route, &path, &source_address);
    }
    crate::metrics::request(&method, &route, response.status().as_u16(), started.elapsed());
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "served"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// A random (version 4) UUID from the thread's fast generator: a request id is no secret and
/// names no credential, and asking the kernel for one (a `getrandom` system call each) was 1% of
/// a proxied request's CPU.
fn new_request_id() -> String {
    let mut bytes = [0u8; 16];
    fastrand::fill(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

/// A request's context before authentication: its id (the client's `X-Request-Id` when it is
/// sane), the peer and the user agent.
fn context_of(request: &Request) -> RequestContext {
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(new_request_id, str::to_owned);
    let source_address = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.to_string())
        .unwrap_or_default();
    let user_agent = request
        .headers()
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(200).collect())
        .unwrap_or_default();
    RequestContext {
        // Set by authentication once the token is checked.
        actor: ANONYMOUS.to_owned(),
        request_id,
        source: "api",
        token_id: String::new(),
        source_address,
        user_agent,
        permissions: Default::default(),
        idempotency: None,
    }
}

/// The answer to a request that ran (or was stopped at its timeout). A request that recorded a
/// change is never answered 5xx or 404: the change happened, a 5xx would make the client retry
/// it, and a 404 (another request deleted the resource right after) would say it did not. What
/// failed after it (reading the result back, cleaning up) was logged where it happened.
fn answer_of(
    served: Result<(Response, bool), app::request_scope::TimedOut>,
    request_id: &str,
    timeout: Option<std::time::Duration>,
    span: &tracing::Span,
) -> Response {
    let (response, recorded) = match served {
        Ok(served) => served,
        Err(app::request_scope::TimedOut) => {
            let limit = timeout.unwrap_or_default().as_secs();
            span.in_scope(|| {
                tracing::warn!(timeout_seconds = limit, "a request ran past the request timeout; stopped")
            });
            let error = app::error::ApiError::Overloaded(format!(
                "the request took longer than {limit} s (--request-timeout-secs) and was stopped before it changed anything"
            ));
            (app::request_scope::with_id(request_id.to_owned(), || error.into_response()), false)
        }
    };
    let status = response.status();
    if recorded && (status.is_server_error() || status == axum::http::StatusCode::NOT_FOUND) {
        return app::request_scope::with_id(request_id.to_owned(), || {
            app::error::accepted(&format!(
                "the change was recorded, but answering failed afterwards ({status}); read it back later \
                 (another request may have changed it since)"
            ))
        });
    }
    response
}

/// Records a refused request in the refusals' audit stream: who (as authentication found, or
/// the token id a refused token named), which peer, what (method, and the path when a route
/// took it: an unmatched path is whatever the client sent), why.
fn record_refusal(
    s: &app::service::Services,
    response: &Response,
    request_id: &str,
    method: &axum::http::Method,
    route: &str,
    path: &str,
    source_address: &str,
) {
    let who = response.extensions().get::<crate::auth::Authenticated>();
    let reason = response.extensions().get::<app::error::RefusedBecause>().map_or_else(
        || response.status().canonical_reason().unwrap_or("refused").to_owned(),
        |r| r.0.chars().take(500).collect(),
    );
    s.denials.record(projections::denials::Denial {
        at: projections::denials::stamp(jiff::Timestamp::now()),
        request_id: request_id.to_owned(),
        actor: who.and_then(|w| w.user.clone()),
        token_id: who.map(|w| w.token_id.clone()).filter(|id| !id.is_empty()),
        source_address: source_address.to_owned(),
        method: method.to_string(),
        path: if route == "unmatched" { "(no such route)".to_owned() } else { path.chars().take(500).collect() },
        status: response.status().as_u16(),
        reason,
        ..Default::default()
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_random_version_4_uuids() {
        let (a, b) = (super::new_request_id(), super::new_request_id());
        let parsed = uuid::Uuid::parse_str(&a).expect("a UUID");
        assert_eq!(parsed.get_version(), Some(uuid::Version::Random));
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        assert_ne!(a, b);
    }
}

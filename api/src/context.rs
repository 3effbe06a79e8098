//! Who is asking and which request this is: attached to every request by a middleware, carried
//! into event metadata and error answers, and into the request's tracing span.

use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use domain::metadata::{ANONYMOUS, EventMetadata};
use tracing::Instrument;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The request id of the request being served, or `-` outside one.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_else(|_| "-".to_owned())
}

/// The caller of one request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub actor: String,
    pub request_id: String,
    pub source: &'static str,
}

impl RequestContext {
    /// Actions mcpd takes on its own behalf (seeding the default backend).
    pub fn system(source: &'static str) -> Self {
        Self { actor: "mcpd".into(), request_id: uuid::Uuid::new_v4().to_string(), source }
    }

    pub fn metadata(&self) -> EventMetadata {
        EventMetadata {
            actor: self.actor.clone(),
            request_id: self.request_id.clone(),
            recorded_at: jiff::Timestamp::now().to_string(),
            source: self.source.to_owned(),
        }
    }
}

const REQUEST_ID_HEADER: &str = "x-request-id";

/// Gives each request an id (the client's `X-Request-Id` when it is sane), a context for the
/// handlers, a tracing span, and one log line when it completes.
pub async fn request_context(mut request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    request.extensions_mut().insert(RequestContext {
        // Authentication arrives with the RBAC work; the field is recorded from the start.
        actor: ANONYMOUS.to_owned(),
        request_id: request_id.clone(),
        source: "api",
    });
    let span = tracing::info_span!("request", request_id = %request_id, method = %request.method(), path = %request.uri().path());
    let started = Instant::now();
    let mut response = REQUEST_ID.scope(request_id.clone(), next.run(request)).instrument(span.clone()).await;
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

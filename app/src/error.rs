//! The one API error type. Each variant documents the HTTP status it answers with. Bad input is
//! never a 500; unexpected failures are logged with their cause chain and answered with the
//! request id only.

use axum_core::response::{IntoResponse, Response};
use domain::error::{Classified, ErrorClass};
use domain::{FieldError, ValidationErrors};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use crate::store::write::{StoreError, WriteError};

use crate::request_scope::current_request_id;
use backends::BackendError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: fields failed validation; every one is listed in `details`.
    #[error("invalid {kind}: {errors}")]
    Invalid { kind: &'static str, errors: ValidationErrors },
    /// 409: a well-formed document naming what does not exist (yet); every such field is
    /// listed in `details`.
    #[error("{kind} refers to what does not exist: {errors}")]
    Unresolved { kind: &'static str, errors: ValidationErrors },
    /// 400: a header or query parameter is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no token, or one that is malformed, unknown, expired or revoked.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: a known caller without the permission this request needs.
    #[error("{0}")]
    Forbidden(String),
    /// 404: the addressed resource does not exist (or the caller may not know it does).
    #[error("{kind} {name:?} not found")]
    NotFound { kind: domain::document::Kind, name: String },
    /// 404: anything else that is not there: a route, a projection, a kind's schema; and the
    /// domain's own "not found" rules.
    #[error("{0}")]
    Missing(String),
    /// 405: the route exists but not with this method; the ones it takes, for `Allow`.
    #[error("method not allowed: this route takes {0}")]
    MethodNotAllowed(String),
    /// 408: the request body did not arrive within the body-read timeout.
    #[error("the request body did not arrive within {0} seconds")]
    RequestTimeout(u64),
    /// 409: the request clashes with current state (exists, in use, stale If-Match, concurrent write).
    #[error("{0}")]
    Conflict(String),
    /// 413: the body exceeds the size limit.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 415: the body is not declared as JSON.
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// 422: the body is not valid JSON, or not the shape this resource takes.
    #[error("{0}")]
    MalformedBody(String),
    /// 422: an `Idempotency-Key` already used with a different request.
    #[error("{0}")]
    KeyReused(String),
    /// 429 with `Retry-After`: the token's request rate is over its limit.
    #[error("{message}")]
    RateLimited { message: String, retry_after: u64 },
    /// 503 with `Retry-After`: mcpd is at a limit of its own (streams open at once) or a
    /// request ran past the request timeout before it changed anything.
    #[error("{0}")]
    Overloaded(String),
    /// 503 with `Retry-After`: what the request needs was changed, and the change is recorded
    /// but not visible yet (the read models lag); serving the state before it could send a
    /// credential where it no longer goes.
    #[error("{0}")]
    Changing(String),
    /// 502: a secret backend answered, but not as it should (permission denied, an error).
    #[error("{0}")]
    BadGateway(String),
    /// 502: an Llm's provider could not be reached, or answered in a way mcpd cannot pass on.
    #[error("{0}")]
    UpstreamFailed(String),
    /// 504: an Llm's provider did not answer within the Llm's timeout.
    #[error("{0}")]
    UpstreamTimeout(String),
    /// 503: a secret backend cannot be reached (down, hung past its timeout, sealed).
    #[error("{0}")]
    BackendUnavailable(String),
    /// 503 with `Retry-After`: mcpd's own database cannot be reached. Never 401 for a token
    /// that could not be checked: the client should retry, not conclude the token is bad.
    #[error("mcpd's database cannot be reached; retry shortly")]
    StoreUnavailable,
    /// 503: the connection to mcpd's database broke while a change was committing, and it
    /// stayed out of reach: the change may or may not have been recorded. The one 5xx that
    /// does not promise "nothing changed"; a retry with the same `Idempotency-Key` is safe
    /// (it replays the change if it was recorded), and a read tells which.
    #[error(
        "the connection to mcpd's database broke while the change was committing: it may or may not have been \
         recorded; read it back, or retry with the same Idempotency-Key"
    )]
    OutcomeUnknown,
    /// 507: mcpd's database has no space left on its disk: nothing was changed, and writes work
    /// again by themselves once there is space (reads are served meanwhile).
    #[error(
        "mcpd's database is out of disk space: nothing was changed; free space where it keeps its data, then retry"
    )]
    StorageFull,
    /// 500: anything unexpected. Logged with its causes; the client sees only the request id.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// 404 for resource `name` of `kind`.
    pub fn not_found(kind: domain::document::Kind, name: impl Into<String>) -> Self {
        ApiError::NotFound { kind, name: name.into() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } | ApiError::Missing(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Conflict(_) | ApiError::Unresolved { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MalformedBody(_) | ApiError::KeyReused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded(_) | ApiError::Changing(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadGateway(_) | ApiError::UpstreamFailed(_) => StatusCode::BAD_GATEWAY,
            ApiError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::BackendUnavailable(_) | ApiError::StoreUnavailable | ApiError::OutcomeUnknown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid { .. } => "Invalid",
            ApiError::Unresolved { .. } => "Unresolved",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Unauthenticated(_) => "Unauthenticated",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::NotFound { .. } | ApiError::Missing(_) => "NotFound",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::RequestTimeout(_) => "RequestTimeout",
            ApiError::Conflict(_) => "Conflict",
            ApiError::PayloadTooLarge(_) => "PayloadTooLarge",
            ApiError::UnsupportedMediaType => "UnsupportedMediaType",
            ApiError::MalformedBody(_) => "MalformedBody",
            ApiError::KeyReused(_) => "IdempotencyKeyReused",
            ApiError::RateLimited { .. } => "RateLimited",
            ApiError::Overloaded(_) => "Overloaded",
            ApiError::Changing(_) => "Changing",
            ApiError::BadGateway(_) => "BackendFailed",
            ApiError::UpstreamFailed(_) => "UpstreamFailed",
            ApiError::UpstreamTimeout(_) => "UpstreamTimeout",
            ApiError::BackendUnavailable(_) => "BackendUnavailable",
            ApiError::StoreUnavailable => "StoreUnavailable",
            ApiError::OutcomeUnknown => "OutcomeUnknown",
            ApiError::StorageFull => "StorageFull",
            ApiError::Internal(_) => "Internal",
        }
    }

    /// Maps a write that recorded nothing: domain rules by their class, a concurrency clash
    /// to 409 (retry), store failures to 503/507 (nothing changed) or 500.
    pub fn from_write<E>(kind: &'static str, name: &str, error: WriteError<E>) -> Self
    where
        E: std::error::Error + Classified + Send + Sync + 'static,
    {
        match error {
            WriteError::Refused(e) => ApiError::from_refusal(kind, e),
            WriteError::Clash { .. } => {
                ApiError::Conflict(format!("{kind} {name:?} was changed by another request at the same time; retry"))
            }
            WriteError::KeyClaimed => ApiError::Conflict(
                "another request with this Idempotency-Key recorded its change at the same time; retry to get its answer"
                    .into(),
            ),
            WriteError::Store(e) => ApiError::from_store(kind, name, e),
        }
    }

    /// A domain rule's refusal, by its class.
    pub fn from_refusal<E>(kind: &'static str, e: E) -> Self
    where
        E: std::error::Error + Classified,
    {
        match e.class() {
            ErrorClass::NotFound => ApiError::Missing(e.to_string()),
            ErrorClass::Conflict => ApiError::Conflict(e.to_string()),
            ErrorClass::Invalid => {
                let mut errors = ValidationErrors::default();
                errors.add(e.field().unwrap_or("spec"), e.to_string());
                ApiError::Invalid { kind, errors }
            }
            ErrorClass::Unresolved => {
                let mut errors = ValidationErrors::default();
                errors.add(e.field().unwrap_or("spec"), e.to_string());
                ApiError::Unresolved { kind, errors }
            }
        }
    }

    /// The store failed on the write path.
    pub fn from_store(kind: &'static str, name: &str, error: StoreError) -> Self {
        match error {
            StoreError::Database(e) => match ApiError::from(e) {
                ApiError::Internal(e) => ApiError::Internal(e.context(format!("writing {kind} {name:?}"))),
                outage => outage,
            },
            StoreError::OutcomeUnknown(_) => ApiError::OutcomeUnknown,
            other => ApiError::Internal(anyhow::Error::new(other).context(format!("writing {kind} {name:?}"))),
        }
    }
}

impl From<BackendError> for ApiError {
    fn from(error: BackendError) -> Self {
        match error {
            BackendError::Unreachable { .. } | BackendError::TimedOut { .. } | BackendError::Sealed { .. } => {
                ApiError::BackendUnavailable(error.to_string())
            }
            BackendError::PermissionDenied { .. } | BackendError::Failed { .. } | BackendError::Token { .. } => {
                ApiError::BadGateway(error.to_string())
            }
            BackendError::Conflict { .. } | BackendError::Foreign { .. } => ApiError::Conflict(error.to_string()),
            // mcpd's own store keeps its values in the database: losing it mid-call is an outage
            // (503, nothing changed), as it is for every other query, not an internal error.
            BackendError::Internal(e)
                if e.chain().filter_map(|c| c.downcast_ref::<sqlx::Error>()).any(crate::outage::out_of_space) =>
            {
                tracing::warn!(error = %e, "the database is out of disk space");
                ApiError::StorageFull
            }
            BackendError::Internal(e)
                if e.chain().filter_map(|c| c.downcast_ref::<sqlx::Error>()).any(crate::outage::unreachable) =>
            {
                tracing::warn!(error = %e, "the database cannot be reached");
                ApiError::StoreUnavailable
            }
            BackendError::Internal(e) => ApiError::Internal(e.context("calling a secret backend")),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if crate::outage::out_of_space(&error) {
            tracing::warn!(error = %error, "the database is out of disk space");
            return ApiError::StorageFull;
        }
        if crate::outage::unreachable(&error) {
            tracing::warn!(error = %error, "the database cannot be reached");
            return ApiError::StoreUnavailable;
        }
        ApiError::Internal(anyhow::Error::new(error).context("querying the read models"))
    }
}

/// 202 Accepted: not an error, but the answer to a change that was recorded and cannot be read
/// back yet (the read models did not show it within `--projection-wait-ms`, or reading it back
/// failed); it becomes readable once they catch up. Never a 5xx: a client that retried would
/// repeat a change that already happened. The body keeps the shape of an error answer (code
/// `Lagging`) so that clients read its message where they read every other.
pub fn accepted(message: &str) -> Response {
    json_response(StatusCode::ACCEPTED, &accepted_body(message))
}

/// `body` as a JSON answer with `status`.
fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The body of [`accepted`], for answers that add to it.
pub fn accepted_body(message: &str) -> serde_json::Value {
    json!({"error": {"code": "Lagging", "message": message, "details": [], "requestId": current_request_id()}})
}

/// Why a request was refused (401, 403), on its response for the refusals' audit stream
/// (`crate::denials`); authentication puts the precise reason there, which the client is not
/// told. Never a token or a value.
#[derive(Debug, Clone)]
pub struct RefusedBecause(pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let request_id = current_request_id();
        let (message, details): (String, &[FieldError]) = match &self {
            ApiError::Internal(error) => {
                tracing::error!(request_id = %request_id, error = format!("{error:#}"), "request failed");
                (format!("internal error; quote request id {request_id} when reporting it"), &[])
            }
            ApiError::Invalid { errors, .. } | ApiError::Unresolved { errors, .. } => (self.to_string(), &errors.0),
            _ => (self.to_string(), &[]),
        };
        let body =
            json!({"error": {"code": self.code(), "message": message, "details": details, "requestId": request_id}});
        let mut response = json_response(status, &body);
        if let ApiError::MethodNotAllowed(allow) = &self
            && let Ok(allow) = HeaderValue::from_str(allow)
        {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        if let ApiError::StoreUnavailable | ApiError::Overloaded(_) | ApiError::Changing(_) = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let ApiError::RateLimited { retry_after, .. } = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        if let ApiError::Unauthenticated(_) = self {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"mcpd\""));
        }
        if let ApiError::Unauthenticated(_) | ApiError::Forbidden(_) = self {
            response.extensions_mut().insert(RefusedBecause(message));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mcpd's own backend keeps values in the database: losing the connection between loading a
    /// secret and storing its new values is the database's outage (503, nothing changed), not
    /// an internal error (found by the history checker: a PUT answered 500 under a reset).
    #[test]
    fn the_own_backend_losing_the_database_is_503_not_500() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let error = BackendError::Internal(anyhow::Error::new(io).context("storing the values of secret \"s\""));
        assert!(matches!(ApiError::from(error), ApiError::StoreUnavailable));
        let other = BackendError::Internal(anyhow::anyhow!("the stored values are not a JSON string map"));
        assert!(matches!(ApiError::from(other), ApiError::Internal(_)));
    }
}

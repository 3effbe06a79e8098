//! Request extractors that answer bad input with the API's JSON errors: the JSON body (415, 413,
//! 422), `If-Match` (400), and the `reveal` and `dryRun` query flags (400).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde_json::Value;

use app::error::ApiError;

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// How long a request body may take to arrive once the headers are in: a client sending a
/// byte a second is cut off rather than holding a connection.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A request body that must be JSON.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|v| v == "application/json" || (v.starts_with("application/") && v.ends_with("+json")));
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let read = Bytes::from_request(request, state);
        let read = tokio::time::timeout(BODY_READ_TIMEOUT, read).await;
        let bytes = read.map_err(|_| ApiError::RequestTimeout(BODY_READ_TIMEOUT.as_secs()))?.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(BODY_LIMIT)
            } else {
                ApiError::BadRequest(format!("reading the request body: {rejection}"))
            }
        })?;
        let body: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::MalformedBody(format!("the body is not valid JSON: {e}")))?;
        // Every body mcpd takes is an object; serde would read an array as a struct's fields
        // in order, so `["alice"]` must not get that far.
        if !body.is_object() {
            return Err(ApiError::MalformedBody("the body must be a JSON object".into()));
        }
        let mut errors = domain::ValidationErrors::default();
        find_nul(&body, &mut String::new(), &mut errors);
        if !errors.is_empty() {
            return Err(ApiError::Invalid { kind: "request", errors });
        }
        Ok(JsonBody(body))
    }
}

/// A request body read whole: up to `limit` bytes (413 past it), within [`BODY_READ_TIMEOUT`]
/// of the headers (408). For middleware and handlers that need the bytes before (or instead of)
/// [`JsonBody`].
pub async fn body_bytes(body: axum::body::Body, limit: usize) -> Result<Bytes, ApiError> {
    tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| ApiError::RequestTimeout(BODY_READ_TIMEOUT.as_secs()))?
        .map_err(|_| ApiError::PayloadTooLarge(limit))
}

/// Adds an error for every string (or object key) under `value` that holds a NUL character:
/// PostgreSQL cannot store one, and SQLite would, so both refuse it alike, before anything is
/// written anywhere.
fn find_nul(value: &Value, path: &mut String, errors: &mut domain::ValidationErrors) {
    const MESSAGE: &str = "must not contain a NUL character";
    let field = |path: &str| if path.is_empty() { "body".to_owned() } else { path.to_owned() };
    match value {
        Value::String(s) if s.contains('\0') => errors.add(field(path), MESSAGE),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                find_nul(item, path, errors);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&key.replace('\0', "\\0"));
                if key.contains('\0') {
                    errors.add(field(path), format!("the key {MESSAGE}"));
                }
                find_nul(item, path, errors);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// 400 for a URL holding a NUL character (`%00`) in its path or query: no name, filter or
/// value can hold one, and PostgreSQL would fail on it rather than find nothing.
pub async fn refuse_nul_in_url(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let uri = request.uri();
    if uri.path().contains("%00") || uri.query().is_some_and(|q| q.contains("%00")) {
        return ApiError::BadRequest("the URL must not contain a NUL character (%00)".into()).into_response();
    }
    next.run(request).await
}

/// `If-Match: <resourceVersion>` (quoted, as an ETag, or bare).
pub struct IfMatch(pub Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let text = value.to_str().unwrap_or_default().trim();
        if text == "*" {
            return Ok(IfMatch(None));
        }
        let bare = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
        bare.parse().map(|v| IfMatch(Some(v))).map_err(|_| {
            ApiError::BadRequest(format!("If-Match must be a resourceVersion such as \"3\", not {text:?}"))
        })
    }
}

/// A boolean query flag such as `?reveal=true`: `true`, or the bare name, means yes.
fn query_flag(parts: &Parts, name: &str) -> Result<bool, ApiError> {
    let query = parts.uri.query().unwrap_or_default();
    let mut flag = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, "true"));
        if key == name {
            flag = parse_flag(name, value)?;
        }
    }
    Ok(flag)
}

/// A flag's value: `true` or `false` in any case, nothing else (`1`, `yes` or an empty value
/// are refused rather than guessed at).
pub fn parse_flag(name: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        v if v.eq_ignore_ascii_case("true") => Ok(true),
        v if v.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(ApiError::BadRequest(format!("{name} must be true or false, not {other:?}"))),
    }
}

/// `?reveal=true` asks for secret values.
pub struct Reveal(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for Reveal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        query_flag(parts, "reveal").map(Reveal)
    }
}

/// `?dryRun=true`: validate and check every rule, record nothing, answer with what would be.
pub struct DryRun(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for DryRun {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        query_flag(parts, "dryRun").map(DryRun)
    }
}

/// `?limit=N&continue=TOKEN`: one page of a list, the Kubernetes way. Without `limit`, the
/// whole list; the token is the one the previous page's `metadata.continue` gave.
pub struct ListPage {
    pub limit: Option<i64>,
    pub continue_token: Option<String>,
}

/// The largest page a client may ask for.
pub const MAX_LIMIT: i64 = 10_000;

impl<S: Send + Sync> FromRequestParts<S> for ListPage {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let mut page = ListPage { limit: None, continue_token: None };
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "limit" => match value.parse::<i64>() {
                    Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => page.limit = Some(limit),
                    _ => {
                        return Err(ApiError::BadRequest(format!(
                            "limit must be a whole number from 1 to {MAX_LIMIT}, not {value:?}"
                        )));
                    }
                },
                "continue" if !value.is_empty() => page.continue_token = Some(value.into_owned()),
                _ => {}
            }
        }
        Ok(page)
    }
}

/// axum's `Query`, answering a malformed query string with the API's error shape (400) instead
/// of axum's plain-text rejection.
pub struct Query<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
    }
}

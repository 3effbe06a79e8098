//! An inference request's body, read within its limits and parsed at its top level only.

use app::error::ApiError;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::HeaderMap;

use super::BODY_LIMIT;

/// An inference request's body, its top level only: each field's JSON as the client wrote it,
/// borrowed from the body, so that a large conversation is never built into a tree (only the
/// few fields mcpd reads are parsed; a translated request is the exception).
pub(super) type Fields<'a> = std::collections::BTreeMap<String, &'a serde_json::value::RawValue>;

/// Reads an inference request's body (up to [`BODY_LIMIT`], within the body-read timeout).
pub(super) async fn read_body(request: Request) -> Result<(HeaderMap, Bytes), ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = crate::http::extract::body_bytes(body, BODY_LIMIT).await?;
    Ok((parts.headers, bytes))
}

/// The body's fields; a body that is not a JSON object is refused.
pub(super) fn fields(bytes: &[u8]) -> Result<Fields<'_>, ApiError> {
    match serde_json::from_slice::<Fields<'_>>(bytes) {
        Ok(fields) => Ok(fields),
        Err(e) if e.is_data() => Err(ApiError::MalformedBody("the body must be a JSON object".into())),
        Err(e) => Err(ApiError::MalformedBody(format!("the body is not valid JSON: {e}"))),
    }
}

/// Field `name`, read as a `T` (`None` when absent, null or of another type).
pub(super) fn field<T: serde::de::DeserializeOwned>(fields: &Fields<'_>, name: &str) -> Option<T> {
    fields.get(name).and_then(|raw| serde_json::from_str(raw.get()).ok())
}

/// The fields as a JSON object, with `changes` made (a value replaced or added).
pub(super) fn with_changes(fields: &Fields<'_>, changes: &[(&str, &serde_json::value::RawValue)]) -> String {
    let mut out: std::collections::BTreeMap<&str, &serde_json::value::RawValue> =
        fields.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    for (name, value) in changes {
        out.insert(name, value);
    }
    serde_json::to_string(&out).expect("raw JSON values serialise")
}

//! Calling an Llm's provider: where (its `url`, else its type's official endpoint), how it
//! authenticates (per type), within what time (the Llm's `extra.timeoutSeconds`), and never
//! following a redirect, so the key goes nowhere but where the Llm says.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use domain::llm::{LlmSpec, LlmType};
use projections::projector::error_chain;
use secrecy::{ExposeSecret, SecretString};

use app::error::ApiError;

/// How long a provider has to answer (and, streaming, between two chunks) unless the Llm says.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

pub use domain::llm::TIMEOUT_KEY;

/// The Anthropic API version sent when the client names none.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// The wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// OpenAI's Chat Completions (openai, deepseek, vllm, ollama).
    OpenAi,
    /// Anthropic's Messages.
    Anthropic,
}

/// What `provider` speaks; `None` for a type that runs on the client (gemini-cli).
pub fn wire_of(provider: LlmType) -> Option<Wire> {
    match provider {
        LlmType::Anthropic => Some(Wire::Anthropic),
        LlmType::Openai | LlmType::Deepseek | LlmType::Vllm | LlmType::Ollama => Some(Wire::OpenAi),
        LlmType::GeminiCli => None,
    }
}

/// The Llm's timeout: `extra.timeoutSeconds` (validated when the Llm is written), else the default.
pub fn timeout(spec: &LlmSpec) -> Duration {
    spec.extra
        .get(TIMEOUT_KEY)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs_f64)
}

/// The Llm's base URL, up to and including `/v1` (added unless the URL ends with it).
pub fn base(spec: &LlmSpec) -> Result<String, ApiError> {
    let url = spec
        .url
        .as_deref()
        .or(spec.provider.official_url())
        .ok_or_else(|| ApiError::Conflict(format!("an Llm of type {} needs a url", spec.provider.as_str())))?;
    let url = url.trim_end_matches('/');
    Ok(if url.ends_with("/v1") { url.to_owned() } else { format!("{url}/v1") })
}

/// The Llm's endpoint `path` (below `/v1`). Parsed once per distinct URL (parsing with its
/// host's IDNA mapping was 4% of a proxied request's CPU): the few endpoints in use are kept,
/// and the memo is emptied when it passes [`PARSED_URLS`].
pub fn endpoint(spec: &LlmSpec, path: &str) -> Result<reqwest::Url, ApiError> {
    static PARSED: std::sync::LazyLock<std::sync::Mutex<HashMap<String, reqwest::Url>>> =
        std::sync::LazyLock::new(Default::default);
    let raw = format!("{}/{path}", base(spec)?);
    if let Some(url) = PARSED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&raw) {
        return Ok(url.clone());
    }
    let url =
        reqwest::Url::parse(&raw).map_err(|e| ApiError::Conflict(format!("the Llm's url does not parse: {e}")))?;
    let mut parsed = PARSED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if parsed.len() >= PARSED_URLS {
        parsed.clear();
    }
    parsed.insert(raw, url.clone());
    Ok(url)
}

/// How many parsed endpoints [`endpoint`] keeps at most.
const PARSED_URLS: usize = 4096;

/// The headers that authenticate to a provider of `provider` with `key`, marked sensitive so
/// that no debug output shows them. `anthropic` takes the client's `anthropic-version` and
/// `anthropic-beta` when it sent them.
pub fn auth_headers(provider: LlmType, key: Option<&SecretString>, client: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let secret = |value: String| {
        let mut value = HeaderValue::from_str(&value).ok()?;
        value.set_sensitive(true);
        Some(value)
    };
    match wire_of(provider) {
        Some(Wire::Anthropic) => {
            if let Some(value) = key.and_then(|k| secret(k.expose_secret().to_owned())) {
                headers.insert("x-api-key", value);
            }
            let version = client.get("anthropic-version").cloned();
            headers.insert("anthropic-version", version.unwrap_or(HeaderValue::from_static(ANTHROPIC_VERSION)));
            if let Some(beta) = client.get("anthropic-beta") {
                headers.insert("anthropic-beta", beta.clone());
            }
        }
        Some(Wire::OpenAi) | None => {
            if let Some(value) = key.and_then(|k| secret(format!("Bearer {}", k.expose_secret()))) {
                headers.insert(axum::http::header::AUTHORIZATION, value);
            }
        }
    }
    headers
}

/// What hides `key` in everything a provider answers (see [`super::redact`]); `None` for a
/// keyless Llm.
pub fn redactor(key: Option<&SecretString>) -> Option<super::redact::Redactor> {
    key.and_then(|k| super::redact::Redactor::new(k.expose_secret()))
}

/// `bytes` with the key redacted.
pub fn redact(redactor: Option<&super::redact::Redactor>, bytes: axum::body::Bytes) -> axum::body::Bytes {
    match redactor.map(|r| r.bytes(&bytes)) {
        Some(std::borrow::Cow::Owned(clean)) => clean.into(),
        _ => bytes,
    }
}

/// `text` with the key redacted.
pub fn redact_text(redactor: Option<&super::redact::Redactor>, text: String) -> String {
    match redactor.map(|r| r.text(&text)) {
        Some(std::borrow::Cow::Owned(clean)) => clean,
        _ => text,
    }
}

/// Why a provider gave no answer.
#[derive(Debug)]
pub enum Failure {
    Unreachable(String),
    TimedOut(Duration),
}

impl Failure {
    pub fn into_error(self, llm: &str) -> ApiError {
        match self {
            Failure::Unreachable(why) => {
                ApiError::UpstreamFailed(format!("llm {llm:?}: the provider cannot be reached: {why}"))
            }
            Failure::TimedOut(after) => ApiError::UpstreamTimeout(format!(
                "llm {llm:?}: the provider did not answer within {}s (the Llm's extra.{TIMEOUT_KEY})",
                after.as_secs_f64()
            )),
        }
    }
}

/// Sends `request`, waiting at most `timeout` for the answer's headers.
pub async fn send(request: reqwest::RequestBuilder, timeout: Duration) -> Result<reqwest::Response, Failure> {
    match tokio::time::timeout(timeout, request.send()).await {
        Err(_) => Err(Failure::TimedOut(timeout)),
        Ok(Err(e)) if e.is_timeout() => Err(Failure::TimedOut(timeout)),
        Ok(Err(e)) => Err(Failure::Unreachable(error_chain(&e))),
        Ok(Ok(response)) => Ok(response),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use domain::llm::Tier;

    use super::*;

    fn spec(provider: LlmType, url: Option<&str>) -> LlmSpec {
        LlmSpec {
            provider,
            model: "m".into(),
            url: url.map(str::to_owned),
            tier: Tier::Fast,
            description: String::new(),
            api_key_ref: None,
            extra: BTreeMap::new(),
        }
    }

    #[test]
    fn endpoints_default_per_type_and_add_v1_once() {
        let url = |p, u| endpoint(&spec(p, u), "chat/completions").unwrap().to_string();
        assert_eq!(url(LlmType::Openai, None), "https://api.openai.com/v1/chat/completions");
        assert_eq!(url(LlmType::Deepseek, None), "https://api.deepseek.com/v1/chat/completions");
        assert_eq!(url(LlmType::Ollama, Some("http://127.0.0.1:11434")), "http://127.0.0.1:11434/v1/chat/completions");
        assert_eq!(url(LlmType::Vllm, Some("http://h:8000/v1/")), "http://h:8000/v1/chat/completions");
        assert_eq!(
            endpoint(&spec(LlmType::Anthropic, None), "messages").unwrap().as_str(),
            "https://api.anthropic.com/v1/messages"
        );
    }

    #[test]
    fn each_type_authenticates_its_own_way_and_hides_the_key() {
        let key = SecretString::from("sk-test-123");
        let client = HeaderMap::new();
        let openai = auth_headers(LlmType::Openai, Some(&key), &client);
        assert_eq!(openai["authorization"], "Bearer sk-test-123");
        assert!(openai["authorization"].is_sensitive());
        assert!(!format!("{openai:?}").contains("sk-test-123"));
        let anthropic = auth_headers(LlmType::Anthropic, Some(&key), &client);
        assert_eq!(anthropic["x-api-key"], "sk-test-123");
        assert_eq!(anthropic["anthropic-version"], ANTHROPIC_VERSION);
        assert!(anthropic.get("authorization").is_none());
        assert!(auth_headers(LlmType::Ollama, None, &client).is_empty());
    }

    #[test]
    fn an_echoed_key_is_redacted_from_answers() {
        let key = SecretString::from("sk-echo");
        let r = redactor(Some(&key));
        let body = axum::body::Bytes::from_static(b"{\"error\": \"bad key sk-echo, sk\\u002decho!\"}");
        assert_eq!(&redact(r.as_ref(), body.clone())[..], b"{\"error\": \"bad key [redacted], [redacted]!\"}");
        assert_eq!(redact(None, body.clone()), body);
        assert!(redactor(Some(&SecretString::from(""))).is_none());
    }

    #[test]
    fn the_timeout_comes_from_extra() {
        let mut s = spec(LlmType::Openai, None);
        assert_eq!(timeout(&s), DEFAULT_TIMEOUT);
        s.extra.insert(TIMEOUT_KEY.into(), "1.5".into());
        assert_eq!(timeout(&s), Duration::from_millis(1500));
    }
}

//! One call to one Llm: the provider's request built from the client's, sent with the Llm's key,
//! and its answer passed back (refused, whole, or streamed through a [`Relay`]), redacted and
//! counted.

use std::collections::VecDeque;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::llm::LlmSpec;
use futures::StreamExt;
use projections::read_models::Record;
use serde_json::{Value, json};

use super::body::{Fields, field, with_changes};
use super::meter::Meter;
use super::relay::{Mode, Relay};
use super::upstream::{self, Failure, Wire};
use super::{ANSWER_LIMIT, Surface, labels, provider_message, redact, sse, translate, warm};
use app::context::RequestContext;
use app::error::ApiError;
use app::observed::usage::Counts;
use app::service::Services;

/// One try at one Llm: its answer, or a failure the next Llm of a tier may make up for.
pub(super) enum Attempt {
    Answer(Response),
    Failover(Response),
}

/// Calls `llm` with `body` as `surface` sent it. An error is answered (and, when `true`, a
/// tier may fail over from it).
pub(super) async fn try_llm(
    s: &Services,
    ctx: &RequestContext,
    surface: Surface,
    llm: &Record<LlmSpec>,
    body: &Fields<'_>,
    client_headers: &HeaderMap,
) -> Result<Attempt, (ApiError, bool)> {
    let spec = &llm.spec;
    let wire = upstream::wire_of(spec.provider).expect("candidates are served");
    let stream = field::<bool>(body, "stream") == Some(true);
    let (path, upstream_body, client_usage) = provider_request(surface, wire, spec, body, stream)?;
    let meter = Meter {
        counters: s.inference.usage.clone(),
        user: ctx.actor.clone(),
        llm: llm.name.clone(),
        counts: Counts { requests: 1, errors: 1, ..Counts::default() },
    };
    let key = s.api_key_of(llm).await.map_err(|e| (e, true))?;
    let url = upstream::endpoint(spec, path).map_err(|e| (e, false))?;
    let mut headers = upstream::auth_headers(spec.provider, key.as_deref(), client_headers);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let accept = if stream { "text/event-stream" } else { "application/json" };
    headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
    let timeout = upstream::timeout(spec);
    let request = s.inference.client.post(url).headers(headers).body(upstream_body);
    let asked = std::time::Instant::now();
    let sent = upstream::send(request, timeout).await;
    // Until the provider's answer began (its headers), or it failed.
    metrics::histogram!("mcpd_inference_upstream_seconds", "llm" => labels::label_of(&llm.name))
        .record(asked.elapsed().as_secs_f64());
    let response = match sent {
        Ok(response) => response,
        Err(failure) => {
            warm::note_failure(&s.inference.health, &llm.name, &failure);
            tracing::warn!(llm = %llm.name, failure = ?failure, "an Llm's provider gave no answer");
            return Err((failure.into_error(&llm.name), true));
        }
    };
    let redactor = upstream::redactor(key.as_deref());
    let call = Call { s, llm, surface, wire, redactor: redactor.as_ref(), timeout };
    let status = response.status();
    if !status.is_success() {
        return call.refused(response).await;
    }
    s.inference.health.answered(&llm.name, status.as_u16(), "");
    if stream { Ok(call.streamed(response, meter, client_usage)) } else { call.whole(response, meter).await }
}

/// The provider's path and body for a client's `body` (the model set to the Llm's, the usage
/// asked for, or translated), and whether the client asked for the usage of a stream.
fn provider_request(
    surface: Surface,
    wire: Wire,
    spec: &LlmSpec,
    body: &Fields<'_>,
    stream: bool,
) -> Result<(&'static str, String, bool), (ApiError, bool)> {
    let stream_options = field::<Value>(body, "stream_options").filter(Value::is_object);
    let client_usage =
        stream_options.as_ref().and_then(|o| o.get("include_usage")).and_then(Value::as_bool) == Some(true);
    let raw = |value: &Value| serde_json::value::to_raw_value(value).expect("JSON values serialise");
    let model = raw(&json!(spec.model));
    let (path, upstream_body) = match (surface, wire) {
        (Surface::OpenAi, Wire::OpenAi) => {
            let mut options = stream_options.unwrap_or_else(|| json!({}));
            // Always asked for, to count tokens; dropped again unless the client asked.
            options["include_usage"] = json!(true);
            let options = raw(&options);
            let mut changes = vec![("model", &*model)];
            if stream {
                changes.push(("stream_options", &*options));
            }
            ("chat/completions", with_changes(body, &changes))
        }
        (Surface::OpenAi, Wire::Anthropic) => {
            // Translation reads the whole conversation: the one place it is parsed whole.
            let whole: Value = serde_json::from_str(&with_changes(body, &[])).expect("the fields were JSON");
            let b = translate::request(&whole, &spec.model).map_err(|m| (ApiError::BadRequest(m), false))?;
            ("messages", b.to_string())
        }
        (Surface::Anthropic, _) => ("messages", with_changes(body, &[("model", &*model)])),
    };
    Ok((path, upstream_body, client_usage))
}

/// One call whose provider answered: what passing its answer on needs.
struct Call<'a> {
    s: &'a Services,
    llm: &'a Record<LlmSpec>,
    surface: Surface,
    wire: Wire,
    redactor: Option<&'a redact::Redactor>,
    timeout: Duration,
}

impl Call<'_> {
    /// The provider refused: its answer passed on (translated, redacted), or an error of mcpd's
    /// when the refusal is about the Llm's key or a redirect.
    async fn refused(&self, response: reqwest::Response) -> Result<Attempt, (ApiError, bool)> {
        let (llm, redactor, status) = (self.llm, self.redactor, response.status());
        let passed_headers = passed_on(response.headers(), redactor);
        let bytes = upstream::redact(redactor, read_all(response, self.timeout).await.unwrap_or_default());
        let message = upstream::redact_text(redactor, provider_message(&bytes));
        self.s.inference.health.answered(&llm.name, status.as_u16(), &message);
        tracing::info!(llm = %llm.name, status = status.as_u16(), "an Llm's provider refused a request");
        if status.is_redirection() {
            let e = ApiError::UpstreamFailed(format!(
                "llm {:?}: the provider answered with a redirect ({status}); mcpd does not follow redirects with a key",
                llm.name
            ));
            return Err((e, true));
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            // Not the client's token: the Llm's key. A 401 would tell the client to drop its own.
            let e = ApiError::UpstreamFailed(format!(
                "llm {:?}: the provider refused the Llm's key ({status}): {message}",
                llm.name
            ));
            return Err((e, true));
        }
        let body = match (self.surface, self.wire) {
            (Surface::OpenAi, Wire::Anthropic) => {
                upstream::redact(redactor, Bytes::from(translate::error(&bytes).to_string()))
            }
            _ => bytes,
        };
        let mut answer = (status, passed_headers, body).into_response();
        if !answer.headers().contains_key(header::CONTENT_TYPE) {
            answer.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let failover = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
        Ok(if failover { Attempt::Failover(answer) } else { Attempt::Answer(answer) })
    }

    /// A whole answer: read, redacted before it is parsed (nothing decoded from it carries the
    /// key), counted, translated where the surfaces differ.
    async fn whole(&self, response: reqwest::Response, mut meter: Meter) -> Result<Attempt, (ApiError, bool)> {
        let (llm, redactor, status) = (self.llm, self.redactor, response.status());
        let passed_headers = passed_on(response.headers(), redactor);
        let bytes = read_all(response, self.timeout).await.map_err(|f| (f.into_error(&llm.name), false))?;
        let bytes = upstream::redact(redactor, bytes);
        // The whole answer is parsed only to translate it; passed through, its usage alone is read.
        let translated = matches!((self.surface, self.wire), (Surface::OpenAi, Wire::Anthropic));
        let parsed: Option<Value> = if translated { serde_json::from_slice(&bytes).ok() } else { None };
        let usage = match &parsed {
            Some(parsed) => parsed.get("usage").cloned(),
            None => serde_json::from_slice::<UsageOnly>(&bytes).ok().and_then(|u| u.usage),
        };
        let (input, output) = match self.wire {
            Wire::OpenAi => translate::openai_usage(usage.as_ref()).unwrap_or((0, 0)),
            Wire::Anthropic => translate::anthropic_usage(usage.as_ref()),
        };
        meter.tokens(input, output);
        meter.counts.errors = 0;
        let body = match (self.surface, self.wire, parsed) {
            (Surface::OpenAi, Wire::Anthropic, Some(parsed)) => {
                upstream::redact(redactor, Bytes::from(translate::response(&parsed).to_string()))
            }
            (Surface::OpenAi, Wire::Anthropic, None) => {
                let e = ApiError::UpstreamFailed(format!("llm {:?}: the provider's answer is not JSON", llm.name));
                return Err((e, false));
            }
            _ => bytes,
        };
        let mut answer = (status, passed_headers, body).into_response();
        answer.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(Attempt::Answer(answer))
    }

    /// A streamed answer: passed on through a [`Relay`] as it arrives.
    fn streamed(&self, response: reqwest::Response, mut meter: Meter, client_usage: bool) -> Attempt {
        let (s, status) = (self.s, response.status());
        let passed_headers = passed_on(response.headers(), self.redactor);
        meter.counts.errors = 0;
        let mode = match (self.surface, self.wire) {
            (Surface::OpenAi, Wire::OpenAi) => Mode::OpenAi { client_usage },
            (Surface::OpenAi, Wire::Anthropic) => Mode::Translate(Box::new(translate::Stream::new(client_usage))),
            (Surface::Anthropic, _) => Mode::Anthropic { input: 0, output: 0 },
        };
        let relay = Relay {
            upstream: Box::pin(response.bytes_stream()),
            splitter: sse::Splitter::default(),
            mode,
            idle: self.timeout,
            queue: VecDeque::new(),
            done: false,
            meter: Some(meter),
            redactor: self.redactor.cloned(),
            shutdown: s.shutdown.subscribe(),
            stream_grace: s.limits.tuning.stream_grace,
            stop_at: None,
            ends_at: tokio::time::Instant::now() + s.limits.tuning.max_stream_duration,
            longest: s.limits.tuning.max_stream_duration,
        };
        let mut answer = (status, passed_headers, Body::from_stream(relay.into_stream())).into_response();
        answer.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        answer.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        Attempt::Answer(answer)
    }
}

/// An answer's `usage`, every other field skipped unread.
#[derive(serde::Deserialize)]
struct UsageOnly {
    #[serde(default)]
    usage: Option<Value>,
}

/// The provider's headers a client may use: rate limits and when to retry (the key redacted
/// from their values).
fn passed_on(headers: &HeaderMap, redactor: Option<&redact::Redactor>) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        let value = match redactor.map(|r| r.bytes(value.as_bytes())) {
            Some(std::borrow::Cow::Owned(clean)) => match HeaderValue::from_bytes(&clean) {
                Ok(clean) => clean,
                Err(_) => continue,
            },
            _ => value.clone(),
        };
        let n = name.as_str();
        let keep = n == "retry-after"
            || n == "retry-after-ms"
            || n.starts_with("x-ratelimit-")
            || n.starts_with("anthropic-ratelimit-")
            || n == "content-type";
        if keep {
            out.append(name.clone(), value);
        }
    }
    out
}

/// A whole non-streamed answer, within `timeout`.
async fn read_all(response: reqwest::Response, timeout: Duration) -> Result<Bytes, Failure> {
    let read = async {
        let mut body = Vec::new();
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| Failure::Unreachable(projections::projector::error_chain(&e)))?;
            if body.len() + chunk.len() > ANSWER_LIMIT {
                return Err(Failure::Unreachable(format!("the answer is larger than {ANSWER_LIMIT} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(body))
    };
    tokio::time::timeout(timeout, read).await.map_err(|_| Failure::TimedOut(timeout))?
}

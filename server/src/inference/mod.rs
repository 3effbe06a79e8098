//! The inference proxy: OpenAI-compatible (`/openai/v1`) and Anthropic-compatible
//! (`/anthropic/v1`) endpoints. A client names an Llm (or a tier), authenticates with its mcpd
//! token, and mcpd calls the provider with the key it resolves itself: provider keys never
//! leave the server. See docs/inference.md.
//!
//! Who may: `run:infer`, scoped by a rule's `names` to the Llms it names. Where a key goes is
//! decided when the Llm is written (the guard of `service::guard`), never by the caller here:
//! the request body's `model` only picks among Llms, and redirects are never followed.

pub mod labels;
pub mod redact;
mod sse;
mod translate;
pub mod upstream;
mod warm;

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, http::Method};
use domain::llm::{LlmSpec, Tier};
use futures::{Stream, StreamExt};
use projections::read_models::{Record, llms};
use serde_json::{Value, json};

use self::upstream::{Failure, Wire};
use app::context::RequestContext;
use app::error::ApiError;
use app::observed::health;
use app::observed::usage::{self, Counts};
use app::service::Services;

/// The response header naming the Llm that answered.
pub const LLM_HEADER: &str = "x-mcpd-llm";

/// The largest inference request body accepted (long conversations, images).
pub const BODY_LIMIT: usize = 32 * 1024 * 1024;

/// The largest non-streamed answer passed on.
const ANSWER_LIMIT: usize = 64 * 1024 * 1024;

/// The API a client speaks to mcpd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    OpenAi,
    Anthropic,
}

impl Surface {
    fn path(self) -> &'static str {
        match self {
            Surface::OpenAi => "/openai/v1",
            Surface::Anthropic => "/anthropic/v1",
        }
    }
}

/// The provider's own message in an error body (OpenAI's and Anthropic's shapes), else the
/// body's start.
pub(crate) fn provider_message(body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let message = parsed.as_ref().and_then(|b| {
        let error = b.get("error")?;
        error.get("message").and_then(Value::as_str).map(str::to_owned).or_else(|| error.as_str().map(str::to_owned))
    });
    message.unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(500).collect())
}

/// Counts one call to an Llm when dropped: at the end of a stream, or when the client goes away.
struct Meter {
    counters: usage::Counters,
    user: String,
    llm: String,
    counts: Counts,
}

impl Meter {
    fn tokens(&mut self, input: u64, output: u64) {
        self.counts.input_tokens = input as i64;
        self.counts.output_tokens = output as i64;
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.counters.record(&self.user, &self.llm, self.counts);
        let outcome = if self.counts.errors > 0 { "error" } else { "ok" };
        let llm = labels::label_of(&self.llm);
        metrics::counter!("mcpd_inference_requests_total", "llm" => llm.clone(), "outcome" => outcome).increment(1);
        for (direction, tokens) in [("input", self.counts.input_tokens), ("output", self.counts.output_tokens)] {
            metrics::counter!("mcpd_inference_tokens_total", "llm" => llm.clone(), "direction" => direction)
                .increment(tokens.max(0) as u64);
        }
    }
}

/// The Llms `model` names for this caller and surface, in the order to try them: one Llm,
/// or every Llm of a tier (`tier:fast`) the caller may use, those last seen failing last.
async fn candidates(
    s: &Services,
    ctx: &RequestContext,
    model: &str,
    surface: Surface,
) -> Result<Vec<Record<LlmSpec>>, ApiError> {
    let who = &ctx.actor;
    if !ctx.permissions.may_infer_some() {
        return Err(ApiError::Forbidden(format!("user {who:?} may not run:infer on any Llm")));
    }
    let all = s.access.llms(async { Ok(llms::list(&s.store.db).await?) }).await?;
    let served = |l: &&Record<LlmSpec>| {
        matches!(
            (surface, upstream::wire_of(l.spec.provider)),
            (Surface::OpenAi, Some(_)) | (Surface::Anthropic, Some(Wire::Anthropic))
        )
    };
    if let Some(tier) = model.strip_prefix("tier:") {
        let tier = Tier::parse(tier)
            .ok_or_else(|| ApiError::BadRequest(format!("unknown tier {tier:?}: tier:fast or tier:heavy")))?;
        let mut list: Vec<Record<LlmSpec>> = all
            .iter()
            .filter(|l| l.spec.tier == tier && ctx.permissions.may_infer(&l.name))
            .filter(served)
            .cloned()
            .collect();
        list.sort_by_key(|l| s.inference.health.failing(&l.name));
        if list.is_empty() {
            return Err(ApiError::Missing(format!(
                "no Llm of tier {} that user {who:?} may use is served on {}",
                tier.as_str(),
                surface.path()
            )));
        }
        return Ok(list);
    }
    if !ctx.permissions.may_infer(model) {
        return Err(ApiError::Forbidden(format!("user {who:?} may not run:infer on llm {model:?}")));
    }
    let Some(llm) = all.iter().find(|l| l.name == model) else {
        if s.access.is_unshown(domain::llm::AGGREGATE_TYPE, model) {
            return Err(ApiError::Changing(format!(
                "llm {model:?} was changed and the change is not visible yet: it is not served until it is; retry shortly"
            )));
        }
        return Err(ApiError::not_found(domain::document::Kind::Llm, model));
    };
    match (surface, upstream::wire_of(llm.spec.provider)) {
        (_, None) => Err(ApiError::BadRequest(format!(
            "llm {model:?} is of type {}, which runs on the client: mcpd does not call it",
            llm.spec.provider.as_str()
        ))),
        (Surface::Anthropic, Some(Wire::OpenAi)) => Err(ApiError::BadRequest(format!(
            "llm {model:?} is of type {}: /anthropic/v1 serves anthropic Llms only; use /openai/v1",
            llm.spec.provider.as_str()
        ))),
        _ => Ok(vec![llm.clone()]),
    }
}

/// An inference request's body, its top level only: each field's JSON as the client wrote it,
/// borrowed from the body, so that a large conversation is never built into a tree (only the
/// few fields mcpd reads are parsed; a translated request is the exception).
type Fields<'a> = std::collections::BTreeMap<String, &'a serde_json::value::RawValue>;

/// Reads an inference request's body (up to [`BODY_LIMIT`], within the body-read timeout).
async fn read_body(request: Request) -> Result<(HeaderMap, Bytes), ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = crate::http::extract::body_bytes(body, BODY_LIMIT).await?;
    Ok((parts.headers, bytes))
}

/// The body's fields; a body that is not a JSON object is refused.
fn fields(bytes: &[u8]) -> Result<Fields<'_>, ApiError> {
    match serde_json::from_slice::<Fields<'_>>(bytes) {
        Ok(fields) => Ok(fields),
        Err(e) if e.is_data() => Err(ApiError::MalformedBody("the body must be a JSON object".into())),
        Err(e) => Err(ApiError::MalformedBody(format!("the body is not valid JSON: {e}"))),
    }
}

/// Field `name`, read as a `T` (`None` when absent, null or of another type).
fn field<T: serde::de::DeserializeOwned>(fields: &Fields<'_>, name: &str) -> Option<T> {
    fields.get(name).and_then(|raw| serde_json::from_str(raw.get()).ok())
}

/// The fields as a JSON object, with `changes` made (a value replaced or added).
fn with_changes(fields: &Fields<'_>, changes: &[(&str, &serde_json::value::RawValue)]) -> String {
    let mut out: std::collections::BTreeMap<&str, &serde_json::value::RawValue> =
        fields.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    for (name, value) in changes {
        out.insert(name, value);
    }
    serde_json::to_string(&out).expect("raw JSON values serialise")
}

/// `POST /openai/v1/chat/completions`
async fn chat_completions(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    request: Request,
) -> Response {
    proxy(&s, &ctx, Surface::OpenAi, request).await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /anthropic/v1/messages`
async fn messages(State(s): State<Services>, Extension(ctx): Extension<RequestContext>, request: Request) -> Response {
    proxy(&s, &ctx, Surface::Anthropic, request).await.unwrap_or_else(IntoResponse::into_response)
}

/// One try at one Llm: its answer, or a failure the next Llm of a tier may make up for.
enum Attempt {
    Answer(Response),
    Failover(Response),
}

async fn proxy(s: &Services, ctx: &RequestContext, surface: Surface, request: Request) -> Result<Response, ApiError> {
    // Before the body is read: a caller who may use no Llm sends mcpd nothing to hold.
    if !ctx.permissions.may_infer_some() {
        return Err(ApiError::Forbidden(format!("user {:?} may not run:infer on any Llm", ctx.actor)));
    }
    let (headers, bytes) = read_body(request).await?;
    let body = fields(&bytes)?;
    let model: String = field(&body, "model").ok_or_else(|| {
        ApiError::BadRequest("`model` is required: the name of an Llm, or tier:fast or tier:heavy".into())
    })?;
    let candidates = candidates(s, ctx, &model, surface).await?;
    // A stream holds one of the --max-streams permits until it ends.
    let permit = match field::<bool>(&body, "stream") {
        Some(true) => Some(s.limits.stream(&ctx.actor)?),
        _ => None,
    };
    let count = candidates.len();
    for (i, llm) in candidates.iter().enumerate() {
        let (mut response, failover) = match try_llm(s, ctx, surface, llm, &body, &headers).await {
            Ok(Attempt::Answer(response)) => (response, false),
            Ok(Attempt::Failover(response)) => (response, true),
            Err((error, failover)) => (error.into_response(), failover),
        };
        if let Ok(name) = HeaderValue::from_str(&llm.name) {
            response.headers_mut().insert(LLM_HEADER, name);
        }
        if !failover || i + 1 == count {
            return Ok(match permit {
                Some(permit) => response.map(|body| {
                    Body::from_stream(body.into_data_stream().map(move |chunk| {
                        let _held = &permit;
                        chunk
                    }))
                }),
                None => response,
            });
        }
        tracing::info!(llm = %llm.name, status = response.status().as_u16(), "trying the next Llm of the tier");
    }
    unreachable!("candidates are never empty")
}

/// Calls `llm` with `body` as `surface` sent it. An error is answered (and, when `true`, a
/// tier may fail over from it).
async fn try_llm(
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
    let mut meter = Meter {
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
    let status = response.status();
    let redactor = upstream::redactor(key.as_deref());
    let redactor = redactor.as_ref();
    let passed_headers = passed_on(response.headers(), redactor);
    if !status.is_success() {
        let bytes = upstream::redact(redactor, read_all(response, timeout).await.unwrap_or_default());
        let message = upstream::redact_text(redactor, provider_message(&bytes));
        s.inference.health.answered(&llm.name, status.as_u16(), &message);
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
        let body = match (surface, wire) {
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
        return Ok(if failover { Attempt::Failover(answer) } else { Attempt::Answer(answer) });
    }
    s.inference.health.answered(&llm.name, status.as_u16(), "");
    if !stream {
        let bytes = read_all(response, timeout).await.map_err(|f| (f.into_error(&llm.name), false))?;
        // Redacted before it is parsed: nothing decoded from it carries the key.
        let bytes = upstream::redact(redactor, bytes);
        let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
        let (input, output) = match wire {
            Wire::OpenAi => translate::openai_usage(parsed.as_ref().and_then(|b| b.get("usage"))).unwrap_or((0, 0)),
            Wire::Anthropic => translate::anthropic_usage(parsed.as_ref().and_then(|b| b.get("usage"))),
        };
        meter.tokens(input, output);
        meter.counts.errors = 0;
        let body = match (surface, wire, parsed) {
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
        return Ok(Attempt::Answer(answer));
    }
    meter.counts.errors = 0;
    let mode = match (surface, wire) {
        (Surface::OpenAi, Wire::OpenAi) => Mode::OpenAi { client_usage },
        (Surface::OpenAi, Wire::Anthropic) => Mode::Translate(Box::new(translate::Stream::new(client_usage))),
        (Surface::Anthropic, _) => Mode::Anthropic { input: 0, output: 0 },
    };
    let relay = Relay {
        upstream: Box::pin(response.bytes_stream()),
        splitter: sse::Splitter::default(),
        mode,
        idle: timeout,
        queue: VecDeque::new(),
        done: false,
        meter: Some(meter),
        redactor: redactor.cloned(),
        shutdown: s.shutdown.subscribe(),
        stream_grace: s.limits.tuning.stream_grace,
        stop_at: None,
        ends_at: tokio::time::Instant::now() + s.limits.tuning.max_stream_duration,
        longest: s.limits.tuning.max_stream_duration,
    };
    let mut answer = (status, passed_headers, Body::from_stream(relay.into_stream())).into_response();
    answer.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    answer.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(Attempt::Answer(answer))
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

/// The tokens a stream's provider reported so far, on its meter.
fn count(meter: &mut Option<Meter>, input: u64, output: u64) {
    if let Some(meter) = meter {
        meter.tokens(input, output);
    }
}

/// How long the rest of a stream whose client went away is read for its usage.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

impl Drop for Relay {
    /// A client that went away before the stream ended: the rest is read for its usage in the
    /// background ([`Relay::drain`]) rather than lost with the connection.
    fn drop(&mut self) {
        if self.done || self.meter.is_none() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let rest = Relay {
            upstream: std::mem::replace(&mut self.upstream, Box::pin(futures::stream::empty())),
            splitter: std::mem::take(&mut self.splitter),
            mode: std::mem::replace(&mut self.mode, Mode::Anthropic { input: 0, output: 0 }),
            idle: self.idle,
            queue: VecDeque::new(),
            done: false,
            meter: self.meter.take(),
            redactor: None,
            shutdown: self.shutdown.clone(),
            stream_grace: self.stream_grace,
            stop_at: None,
            ends_at: self.ends_at,
            longest: self.longest,
        };
        runtime.spawn(rest.drain());
    }
}

/// How a stream is passed on.
enum Mode {
    /// OpenAI to OpenAI: event by event; the usage chunk mcpd asked for is dropped unless the
    /// client asked for it too.
    OpenAi { client_usage: bool },
    /// Anthropic to Anthropic: event by event.
    Anthropic { input: u64, output: u64 },
    /// Anthropic to OpenAI: translated.
    Translate(Box<translate::Stream>),
}

/// A stream on its way from the provider to the client. Dropped when the client goes away,
/// which drops the provider's request too.
struct Relay {
    upstream: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    splitter: sse::Splitter,
    mode: Mode,
    idle: Duration,
    queue: VecDeque<Bytes>,
    done: bool,
    /// Counts the call when dropped; `None` once handed to the drain of a stream its client left.
    meter: Option<Meter>,
    /// Hides the key in every event passed on (whole events: the splitter never cuts one).
    redactor: Option<redact::Redactor>,
    /// Set when mcpd begins shutting down; the stream then gets `stream_grace` to finish.
    shutdown: tokio::sync::watch::Receiver<bool>,
    stream_grace: Duration,
    stop_at: Option<tokio::time::Instant>,
    /// When the stream has gone on as long as one may (`--max-stream-secs`).
    ends_at: tokio::time::Instant,
    longest: Duration,
}

impl Relay {
    fn into_stream(self) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
        futures::stream::unfold(self, |mut relay| async move {
            loop {
                // Everything one read of the provider completed goes out in one write.
                let out = match relay.queue.len() {
                    0 => None,
                    1 => relay.queue.pop_front(),
                    _ => {
                        let mut joined = Vec::with_capacity(relay.queue.iter().map(Bytes::len).sum());
                        relay.queue.drain(..).for_each(|b| joined.extend_from_slice(&b));
                        Some(Bytes::from(joined))
                    }
                };
                if let Some(bytes) = out {
                    return Some((Ok(upstream::redact(relay.redactor.as_ref(), bytes)), relay));
                }
                if relay.done {
                    return None;
                }
                if relay.stop_at.is_none() && *relay.shutdown.borrow() {
                    relay.stop_at = Some(tokio::time::Instant::now() + relay.stream_grace);
                }
                let idle = tokio::time::Instant::now() + relay.idle;
                let until = relay.stop_at.map_or(idle, |stop| stop.min(idle)).min(relay.ends_at);
                let read = tokio::select! {
                    read = tokio::time::timeout_at(until, relay.upstream.next()) => read,
                    // Shutting down: recompute the deadline and read on.
                    _ = relay.shutdown.changed(), if relay.stop_at.is_none() => continue,
                };
                if read.is_err() && relay.stop_at.is_some_and(|stop| tokio::time::Instant::now() >= stop) {
                    relay.interrupted("mcpd is shutting down; the answer was cut off here: ask again");
                    continue;
                }
                if read.is_err() && tokio::time::Instant::now() >= relay.ends_at {
                    let message = format!(
                        "the answer went on for {}s, the longest a stream may (--max-stream-secs); it was cut off here",
                        relay.longest.as_secs()
                    );
                    relay.interrupted(&message);
                    continue;
                }
                match read {
                    Err(_) => {
                        let message = format!("the provider sent nothing for {}s", relay.idle.as_secs_f64());
                        relay.interrupted(&message);
                    }
                    Ok(Some(Err(e))) => relay.interrupted(&format!(
                        "the provider's stream broke: {}",
                        projections::projector::error_chain(&e)
                    )),
                    Ok(Some(Ok(bytes))) => match relay.splitter.push(&bytes) {
                        Ok(events) => events.iter().for_each(|e| relay.event(e)),
                        Err(message) => relay.interrupted(&message),
                    },
                    Ok(None) => {
                        if let Some(rest) = relay.splitter.finish() {
                            relay.event(&rest);
                        }
                        if let Mode::Translate(t) = &mut relay.mode {
                            let end = t.finish();
                            relay.queue.extend(end);
                        }
                        relay.done = true;
                    }
                }
            }
        })
    }

    fn event(&mut self, event: &sse::Event) {
        match &mut self.mode {
            Mode::OpenAi { client_usage } => {
                let chunk = event.data.contains("\"usage\"").then(|| serde_json::from_str::<Value>(&event.data).ok());
                if let Some(chunk) = chunk.flatten()
                    && let Some((input, output)) = translate::openai_usage(chunk.get("usage"))
                {
                    count(&mut self.meter, input, output);
                    let only_usage = chunk.get("choices").and_then(Value::as_array).is_some_and(Vec::is_empty);
                    if only_usage && !*client_usage {
                        return;
                    }
                }
                self.queue.push_back(event.raw.clone());
            }
            Mode::Anthropic { input, output } => {
                if let Ok(data) = serde_json::from_str::<Value>(&event.data) {
                    match data.get("type").and_then(Value::as_str) {
                        Some("message_start") => {
                            (*input, *output) = translate::anthropic_usage(data.pointer("/message/usage"));
                        }
                        Some("message_delta") => {
                            if let Some(o) = data.pointer("/usage/output_tokens").and_then(Value::as_u64) {
                                *output = o;
                            }
                        }
                        _ => {}
                    }
                    let (i, o) = (*input, *output);
                    count(&mut self.meter, i, o);
                }
                self.queue.push_back(event.raw.clone());
            }
            Mode::Translate(t) => {
                let chunks = t.event(event);
                let (i, o) = (t.input_tokens, t.output_tokens);
                count(&mut self.meter, i, o);
                self.queue.extend(chunks);
            }
        }
    }

    /// The rest of a stream whose client went away, read for its usage only: the provider's
    /// final count usually follows the answer's last words within moments (OpenAI's usage
    /// chunk, Anthropic's `message_delta`), so it is waited for up to [`DRAIN_GRACE`] and the call
    /// is counted exactly. A stream still going then is closed (the provider stops generating,
    /// and bills what it made): it is counted with what was seen, as an error.
    async fn drain(mut self) {
        let until = tokio::time::Instant::now() + DRAIN_GRACE;
        while !self.done {
            match tokio::time::timeout_at(until, self.upstream.next()).await {
                Ok(Some(Ok(bytes))) => match self.splitter.push(&bytes) {
                    Ok(events) => events.iter().for_each(|e| self.event(e)),
                    Err(_) => break,
                },
                Ok(None) => {
                    if let Some(rest) = self.splitter.finish() {
                        self.event(&rest);
                    }
                    self.done = true;
                }
                Ok(Some(Err(_))) | Err(_) => break,
            }
            self.queue.clear();
        }
        if !self.done
            && let Some(meter) = &mut self.meter
        {
            meter.counts.errors = 1;
        }
        // Counted as the meter drops; nothing is drained twice.
        self.done = true;
    }

    /// The provider's stream ended early: the client gets an error event in its own format.
    fn interrupted(&mut self, message: &str) {
        let llm = self.meter.as_ref().map_or("", |m| m.llm.as_str());
        tracing::warn!(llm = %llm, message, "a streamed answer was cut off");
        if let Some(meter) = &mut self.meter {
            meter.counts.errors = 1;
        }
        self.done = true;
        let event = match self.mode {
            Mode::Anthropic { .. } => sse::encode(
                Some("error"),
                &json!({"type": "error", "error": {"type": "api_error", "message": message}}).to_string(),
            ),
            _ => sse::encode(None, &json!({"error": {"message": message, "type": "api_error"}}).to_string()),
        };
        self.queue.push_back(event);
    }
}

/// `GET /openai/v1/models`: the Llms the caller may use, and the tiers they make up.
async fn models(State(s): State<Services>, Extension(ctx): Extension<RequestContext>) -> Result<Json<Value>, ApiError> {
    let all = s.access.llms(async { Ok(llms::list(&s.store.db).await?) }).await?;
    let usable: Vec<&Record<LlmSpec>> = all
        .iter()
        .filter(|l| ctx.permissions.may_infer(&l.name) && upstream::wire_of(l.spec.provider).is_some())
        .collect();
    let created = |at: &str| at.parse::<jiff::Timestamp>().map_or(0, |t| t.as_second());
    let mut data: Vec<Value> = usable
        .iter()
        .map(|l| json!({"id": l.name, "object": "model", "created": created(&l.created_at), "owned_by": l.spec.provider.as_str()}))
        .collect();
    for tier in [Tier::Fast, Tier::Heavy] {
        if usable.iter().any(|l| l.spec.tier == tier) {
            data.push(
                json!({"id": format!("tier:{}", tier.as_str()), "object": "model", "created": 0, "owned_by": "mcpd"}),
            );
        }
    }
    Ok(Json(json!({"object": "list", "data": data})))
}

/// `POST /api/v1/llms/{name}/warmup`: loads the model (ollama), checks the endpoint and the key
/// (the others); answers the Llm's health. Needs `run:infer` on the Llm: it sends the key.
async fn warmup(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !ctx.permissions.may_infer(&name) {
        return Err(ApiError::Forbidden(format!("user {:?} may not run:infer on llm {name:?}", ctx.actor)));
    }
    let llm =
        llms::get(&s.store.db, &name).await?.ok_or_else(|| ApiError::not_found(domain::document::Kind::Llm, &name))?;
    let health = warm(&s, &llm).await?;
    Ok(Json(json!({"name": name, "health": health})))
}

/// Warms `llm` up (see [`health::warm`]).
pub async fn warm(s: &Services, llm: &Record<LlmSpec>) -> Result<health::LlmHealth, ApiError> {
    let key = match s.api_key_of(llm).await {
        Ok(key) => key,
        Err(e) => {
            s.inference.health.set(&llm.name, health::LlmStatus::Failing, format!("resolving the key: {e}"));
            return Err(e);
        }
    };
    Ok(warm::warm(&s.inference.client, &s.inference.health, llm, key.as_deref()).await)
}

/// Warms up the Llms of `tier` (every Llm when `None`) in the background.
pub fn warm_in_background(s: &Services, tier: Option<Tier>) {
    let s = s.clone();
    tokio::spawn(async move {
        let all = match llms::list(&s.store.db).await {
            Ok(all) => all,
            Err(e) => return tracing::warn!(error = %e, "warmup: listing the Llms failed"),
        };
        let chosen = all.iter().filter(|l| tier.is_none_or(|t| l.spec.tier == t));
        let warmed = futures::future::join_all(chosen.map(|l| async {
            let outcome = warm(&s, l).await;
            (l.name.clone(), outcome)
        }))
        .await;
        for (name, outcome) in warmed {
            match outcome {
                Ok(h) => tracing::info!(llm = %name, status = %h.status, message = %h.message, "warmup"),
                Err(e) => tracing::warn!(llm = %name, error = %e, "warmup failed"),
            }
        }
    });
}

#[derive(serde::Deserialize)]
struct UsageQuery {
    llm: Option<String>,
    user: Option<String>,
    since: Option<String>,
}

/// `GET /api/v1/usage?llm=&user=&since=`: requests, errors and tokens per user and Llm. One's
/// own usage is anyone's to see; other users' needs `view:audit`.
async fn usage_report(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    crate::http::extract::Query(q): crate::http::extract::Query<UsageQuery>,
) -> Result<Json<Value>, ApiError> {
    let everyone = ctx.permissions.allows_operation("view:audit");
    let user = match q.user {
        Some(user) if user != ctx.actor && !everyone => {
            return Err(ApiError::Forbidden(format!(
                "user {:?} may see its own usage only (other users' needs view:audit)",
                ctx.actor
            )));
        }
        Some(user) => Some(user),
        None if everyone => None,
        None => Some(ctx.actor.clone()),
    };
    let since = match q.since.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => Some(app::time::parse_since(raw).map_err(ApiError::BadRequest)?),
    };
    let filter = usage::Filter { llm: q.llm.filter(|l| !l.is_empty()), user, since };
    let rows = s.inference.usage.query(&s.store.db, &filter).await?;
    Ok(Json(json!({"items": rows})))
}

/// The inference routes, and the usage and warmup routes of the REST API.
pub fn routes() -> crate::routes::Routes {
    crate::routes::Routes::default()
        .on(Method::POST, "/openai/v1/chat/completions", chat_completions)
        .streamed()
        .on(Method::GET, "/openai/v1/models", models)
        .on(Method::POST, "/anthropic/v1/messages", messages)
        .streamed()
        .api_key_header()
        .on(Method::POST, "/api/v1/llms/{name}/warmup", warmup)
        .streamed()
        .on(Method::GET, "/api/v1/usage", usage_report)
}

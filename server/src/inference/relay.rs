//! A streamed answer on its way from the provider to the client: events passed on whole (or
//! translated), the key redacted from each, the usage counted, and the rest read for its usage
//! when the client goes away.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use axum::body::Bytes;
use futures::{Stream, StreamExt};
use serde_json::{Value, json};

use super::meter::{Meter, count};
use super::{redact, sse, translate, upstream};

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
pub(super) enum Mode {
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
pub(super) struct Relay {
    pub(super) upstream: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    pub(super) splitter: sse::Splitter,
    pub(super) mode: Mode,
    pub(super) idle: Duration,
    pub(super) queue: VecDeque<Bytes>,
    pub(super) done: bool,
    /// Counts the call when dropped; `None` once handed to the drain of a stream its client left.
    pub(super) meter: Option<Meter>,
    /// Hides the key in every event passed on (whole events: the splitter never cuts one).
    pub(super) redactor: Option<redact::Redactor>,
    /// Set when mcpd begins shutting down; the stream then gets `stream_grace` to finish.
    pub(super) shutdown: tokio::sync::watch::Receiver<bool>,
    pub(super) stream_grace: Duration,
    pub(super) stop_at: Option<tokio::time::Instant>,
    /// When the stream has gone on as long as one may (`--max-stream-secs`).
    pub(super) ends_at: tokio::time::Instant,
    pub(super) longest: Duration,
}

impl Relay {
    pub(super) fn into_stream(self) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
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

//! `GET /api/v1/{kind}?watch=true[&resourceVersion=CURSOR]`: a kind's changes as they are
//! recorded, read from the event log in commit order, as newline-delimited JSON (one object per
//! line, `application/x-ndjson`):
//!
//! ```text
//! {"type":"ADDED","object":{…the document…},"resourceVersion":"42"}
//! {"type":"MODIFIED","object":{…},"resourceVersion":"43"}
//! {"type":"DELETED","object":{"kind":"llm","name":"x","resourceVersion":3},"resourceVersion":"44"}
//! {"type":"BOOKMARK","resourceVersion":"44"}
//! {"type":"ERROR","error":{"code":"ShuttingDown","message":"…"},"resourceVersion":"44"}
//! ```
//!
//! Each line's `resourceVersion` is its place in the log; reconnecting with it resumes right
//! after, so nothing is lost or seen twice. Without one, the watch starts with an ADDED line per
//! resource the caller may view (unless `sendInitialEvents=false`), then follows. Only resources the caller may view are shown,
//! with the permissions it holds at each change. `object` is the resource once the read models
//! show the change: that version, or a later one when changes come faster than they are read
//! (its own line follows). A BOOKMARK comes after 15 s without a change; an ERROR line ends the
//! stream when mcpd shuts down or cannot read the log, and when what the watch was allowed by
//! goes away: its token (revoked or expired), its user, or the caller's `view` on the kind
//! (`Unauthenticated` or `Forbidden`, checked at every poll from the access cache, so on this
//! replica at once and on others within the access-follow interval).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use projections::Position;
use projections::read_models::page::Page;
use serde_json::{Value, json};

use super::audit::{cursor, parse_cursor};
use app::context::RequestContext;
use app::error::ApiError;
use app::limits::StreamPermit;
use app::service::{ResourceKind, Services};
use domain::rbac::Verb;
use projections::read_models::ReadModel;

const POLL: Duration = Duration::from_millis(200);
const BOOKMARK_AFTER: Duration = Duration::from_secs(15);
const BATCH: i64 = 500;

/// Where a watch starts: after a position, or now (with the current state first, or not).
pub enum From {
    Current { initial: bool },
    After(Position),
}

/// `watch` and `resourceVersion` from a list's query; `None` when it is not a watch.
pub fn requested(query: Option<&str>) -> Result<Option<From>, ApiError> {
    let (mut watch, mut from, mut initial) = (false, None, true);
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "watch" => watch = super::extract::parse_flag("watch", &value)?,
            "sendInitialEvents" => initial = super::extract::parse_flag("sendInitialEvents", &value)?,
            "resourceVersion" if !value.is_empty() => {
                from = Some(parse_cursor(&value).filter(|p| p.position >= 0).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "resourceVersion {value:?} is not a watch position (one a watch line carried)"
                    ))
                })?);
            }
            _ => {}
        }
    }
    Ok(watch.then(|| from.map_or(From::Current { initial }, From::After)))
}

struct Watch<K: ResourceKind> {
    s: Services,
    ctx: RequestContext,
    cursor: Position,
    lines: VecDeque<Bytes>,
    quiet_since: Instant,
    shutdown: tokio::sync::watch::Receiver<bool>,
    done: bool,
    _permit: StreamPermit,
    _kind: std::marker::PhantomData<K>,
}

fn line(value: &Value) -> Bytes {
    let mut text = value.to_string();
    text.push('\n');
    Bytes::from(text)
}

/// The watch of kind `K` from `from`, for the caller `ctx`.
pub async fn serve<K: ResourceKind>(s: Services, ctx: RequestContext, from: From) -> Result<Response, ApiError> {
    ctx.require_some(K::RESOURCE, Verb::View)?;
    let permit = s.limits.stream(&ctx.actor)?;
    let mut lines = VecDeque::new();
    let start = match from {
        From::After(position) => position,
        From::Current { initial } => {
            // The read models' position, then their rows: the rows show at least that much, so
            // following from there loses nothing (a change both show comes again as MODIFIED).
            let models = ReadModel::changed_by(K::KIND.info().aggregate_type);
            let statuses = s.projection_status(&models).await?;
            let start = statuses.iter().map(|st| st.checkpoint).min().unwrap_or_default();
            let records =
                if initial { K::list(&s, false, Page { after: None, limit: None }).await? } else { Vec::new() };
            for record in records.iter().filter(|r| ctx.may(K::RESOURCE, Verb::View, Some(&r.name))) {
                let object = super::resources::document(K::KIND, record);
                lines.push_back(line(&json!({"type": "ADDED", "object": object, "resourceVersion": cursor(start)})));
            }
            start
        }
    };
    let watch = Watch::<K> {
        shutdown: s.shutdown.subscribe(),
        s,
        ctx,
        cursor: start,
        lines,
        quiet_since: Instant::now(),
        done: false,
        _permit: permit,
        _kind: std::marker::PhantomData,
    };
    let stream = futures::stream::unfold(watch, |mut watch| async move {
        let next = watch.next().await?;
        Some((Ok::<_, std::convert::Infallible>(next), watch))
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

impl<K: ResourceKind> Watch<K> {
    /// The next line to send; `None` ends the stream.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(line) = self.lines.pop_front() {
                return Some(line);
            }
            if self.done {
                return None;
            }
            if *self.shutdown.borrow() {
                self.end("ShuttingDown", "mcpd is shutting down; reconnect with this resourceVersion to resume");
                continue;
            }
            if let Some((code, message)) = self.withdrawn().await {
                self.end(code, &message);
                continue;
            }
            match self.read().await {
                Ok(true) => self.quiet_since = Instant::now(),
                Ok(false) => {
                    if self.quiet_since.elapsed() >= BOOKMARK_AFTER {
                        self.quiet_since = Instant::now();
                        return Some(line(&json!({"type": "BOOKMARK", "resourceVersion": cursor(self.cursor)})));
                    }
                    tokio::select! {
                        () = tokio::time::sleep(POLL) => {}
                        _ = self.shutdown.changed() => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a watch could not read the event log");
                    self.end("Unavailable", "the event log could not be read; reconnect with this resourceVersion");
                }
            }
        }
    }

    /// Why the watch may go on no longer, if it may not: its token or user is gone, or the
    /// caller may view none of the kind. A store that does not answer is the read's to report.
    async fn withdrawn(&self) -> Option<(&'static str, String)> {
        let (user, token) = (&self.ctx.actor, &self.ctx.token_id);
        match crate::auth::still_authenticated(&self.s, user, token).await {
            Err(crate::auth::Refusal::Invalid(reason)) => {
                tracing::info!(reason, user = %user, "a watch was ended: its authentication was withdrawn");
                return Some((
                    "Unauthenticated",
                    "the token this watch was opened with no longer authenticates (revoked, expired, or its user \
                     deleted)"
                        .to_owned(),
                ));
            }
            Err(crate::auth::Refusal::Unavailable(_)) => return None,
            Ok(()) => {}
        }
        match self.s.permissions_of(user).await {
            Ok(permissions) if !permissions.allows_some(K::RESOURCE, Verb::View) => {
                Some(("Forbidden", format!("user {user:?} may no longer view {}: the watch ends", K::RESOURCE)))
            }
            _ => None,
        }
    }

    fn end(&mut self, code: &str, message: &str) {
        let error = json!({"type": "ERROR", "error": {"code": code, "message": message}, "resourceVersion": cursor(self.cursor)});
        self.lines.push_back(line(&error));
        self.done = true;
    }

    /// Reads the changes after the cursor into lines; whether there were any events at all.
    async fn read(&mut self) -> Result<bool, ApiError> {
        let events = self.s.events_after(self.cursor, BATCH).await?;
        let Some(last) = events.last().map(|e| e.position) else {
            return Ok(false);
        };
        // Asked again once the events are read: a change recorded after a revocation was
        // acknowledged is read after it, so it is never shown to the revoked.
        if let Some((code, message)) = self.withdrawn().await {
            self.end(code, &message);
            return Ok(true);
        }
        let aggregate_type = K::KIND.info().aggregate_type;
        let models = ReadModel::changed_by(aggregate_type);
        let permissions = self.s.permissions_of(&self.ctx.actor).await?;
        for event in events.iter().filter(|e| e.aggregate_type == aggregate_type) {
            if !permissions.allows(K::RESOURCE, Verb::View, Some(&event.aggregate_id)) {
                continue;
            }
            let kind = change(&event.event_type, event.sequence);
            let object = if kind == "DELETED" {
                None
            } else {
                // Once the read models show it (bounded: a stopped read model shows the last
                // state it has).
                let _ = self.s.store.projector.wait_for(&models, event.position, Duration::from_secs(5)).await;
                match K::get(&self.s, &event.aggregate_id, false).await {
                    Ok(record) => Some(super::resources::document(K::KIND, &record)),
                    Err(ApiError::NotFound { .. } | ApiError::Missing(_)) => None,
                    Err(e) => return Err(e),
                }
            };
            let object = object.unwrap_or_else(
                || json!({"kind": K::KIND, "name": event.aggregate_id, "resourceVersion": event.sequence}),
            );
            let value = json!({"type": kind, "object": object, "resourceVersion": cursor(event.position)});
            self.lines.push_back(line(&value));
        }
        self.cursor = last;
        Ok(true)
    }
}

/// ADDED, MODIFIED or DELETED, from an event's type and its place in its stream.
fn change(event_type: &str, sequence: i64) -> &'static str {
    if event_type.ends_with("Deleted") {
        "DELETED"
    } else if event_type.ends_with("Created") || event_type.ends_with("Issued") || sequence == 1 {
        "ADDED"
    } else {
        "MODIFIED"
    }
}

//! `GET /api/v1/audit`: the event log as an audit trail, newest first, filtered, paged by cursor;
//! `GET /api/v1/audit/denials`: the requests mcpd refused (`app::denials`), likewise.
//! Each row says when, who (user and token), what (kind/name, event type) and a short summary
//! of the change: field names and new values, for secrets only which keys; never a value of a
//! secret (events hold none) and never a token hash.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::{Extension, Json};
use projections::Position;
use projections::audit::{AuditFilter, Direction};
use serde::Deserialize;
use serde_json::Value;

use app::context::RequestContext;
use app::error::ApiError;
use app::service::Services;
use domain::rbac::{Operation, Verb};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    kind: Option<String>,
    name: Option<String>,
    actor: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    /// Continue a page: rows older than this cursor.
    after: Option<String>,
    /// Follow the log: rows newer than this cursor, oldest first.
    newer: Option<String>,
}

/// A kind as a user names it (singular, plural or short name, from the kind registry), as the
/// log's aggregate type; `defaultbackend` is the one stream that is no kind of its own.
fn aggregate_type(kind: &str) -> Option<&'static str> {
    if kind.eq_ignore_ascii_case(domain::default_backend::AGGREGATE_TYPE) {
        return Some(domain::default_backend::AGGREGATE_TYPE);
    }
    domain::document::Kind::parse(kind).map(|k| k.info().aggregate_type)
}

/// A cursor as rows show it: `position` on SQLite, `transaction:position` on PostgreSQL.
pub(crate) fn cursor(position: Position) -> String {
    if position.transaction_id == 0 {
        position.position.to_string()
    } else {
        format!("{}:{}", position.transaction_id, position.position)
    }
}

pub(crate) fn parse_cursor(raw: &str) -> Option<Position> {
    // Digits only, as `cursor` writes them (no sign), and few enough to fit.
    let number = |s: &str| {
        (1..=18).contains(&s.len()).then_some(s).filter(|s| s.bytes().all(|b| b.is_ascii_digit()))?.parse().ok()
    };
    match raw.split_once(':') {
        Some((t, p)) => Some(Position { transaction_id: number(t)?, position: number(p)? }),
        None => Some(Position { transaction_id: 0, position: number(raw)? }),
    }
}

/// An event's plain fields as `name -> shown value`, nested specs one level deep (`spec.tier`);
/// never hashes, value references or data (secret events hold key names only).
fn fields(payload: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(inner) = payload.as_object().and_then(|m| m.values().next()).and_then(Value::as_object) else {
        return out;
    };
    let hidden = |key: &str| {
        let key = key.to_ascii_lowercase();
        key.contains("hash") || key.contains("valueref") || key.contains("value_ref") || key == "data"
    };
    let mut add = |key: String, value: &Value| {
        let shown = match value {
            Value::String(s) => s.clone(),
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(","),
            Value::Null => return,
            other => other.to_string(),
        };
        if !shown.is_empty() {
            out.insert(key, shown);
        }
    };
    for (key, value) in inner {
        if hidden(key) {
            continue;
        }
        match value {
            Value::Object(nested) => {
                for (field, value) in nested {
                    if !hidden(field) && !value.is_object() {
                        add(format!("{key}.{field}"), value);
                    }
                }
            }
            value => add(key.clone(), value),
        }
    }
    out
}

/// What changed, in one line: `field=value` for a new state; with `previous` (the state the
/// event replaced), only what differs, as `field: old→new` (a field only this event has, as
/// `field=value`). Secrets show key names only.
pub fn summary(payload: &Value, previous: Option<&Value>) -> String {
    let now = fields(payload);
    let parts: Vec<String> = match previous.map(fields) {
        None => now.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        Some(before) => {
            let mut parts = Vec::new();
            for (key, value) in &now {
                match before.get(key) {
                    Some(old) if old == value => {}
                    Some(old) => parts.push(format!("{key}: {old}→{value}")),
                    // A field of this event only (`changedKeys`): as it is.
                    None => parts.push(format!("{key}={value}")),
                }
            }
            // A nested spec is replaced whole, so a field gone from it was removed; top-level
            // fields an update does not repeat (a secret's backend) did not change.
            for (key, old) in &before {
                if key.contains('.') && !now.contains_key(key) {
                    parts.push(format!("{key}: {old}→(none)"));
                }
            }
            parts
        }
    };
    let mut line = parts.join(" ");
    if line.len() > 240 {
        let cut = (0..=237).rev().find(|i| line.is_char_boundary(*i)).unwrap_or(0);
        line = format!("{}...", &line[..cut]);
    }
    line
}

fn bad(field: &str, message: String) -> ApiError {
    let mut errors = domain::ValidationErrors::default();
    errors.add(field, message);
    ApiError::Invalid { kind: "audit query", errors }
}

/// The query's `since` and `until` as times (a duration ago, or RFC 3339).
fn times(since: &Option<String>, until: &Option<String>) -> Result<[Option<jiff::Timestamp>; 2], ApiError> {
    let now = jiff::Timestamp::now();
    let mut out = [None, None];
    for ((field, raw), slot) in [("since", since), ("until", until)].into_iter().zip(&mut out) {
        if let Some(raw) = raw {
            *slot = Some(app::time::point_in_time(raw, now).ok_or_else(|| {
                bad(field, format!("{raw:?} is neither a duration (2h, 30m, 7d) nor an RFC 3339 time"))
            })?);
        }
    }
    Ok(out)
}

/// The query's `limit`: 1 to 1000, 100 when absent.
fn limit_of(raw: &Option<String>) -> Result<i64, ApiError> {
    let limit = match raw {
        None => 100,
        Some(raw) => raw.parse::<i64>().map_err(|_| bad("limit", format!("{raw:?} is not a number")))?,
    };
    if !(1..=1000).contains(&limit) {
        return Err(bad("limit", "must be between 1 and 1000".into()));
    }
    Ok(limit)
}

/// May the caller read the audit streams: `view:audit`, or `view` on `audit`?
fn may_audit(ctx: &RequestContext) -> Result<(), ApiError> {
    if ctx.permissions.allows_operation(Operation::ViewAudit) || ctx.may("audit", Verb::View, None) {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!("user {:?} may not view:audit", ctx.actor)))
}

pub async fn audit(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    super::extract::Query(raw): super::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Json<wire::audit::AuditPage>, ApiError> {
    // Parsed here rather than by the extractor, so a bad parameter gets the API's error shape.
    let q: AuditQuery = serde_json::from_value(serde_json::to_value(&raw).expect("a string map serialises"))
        .map_err(|e| ApiError::BadRequest(format!("audit query: {e}")))?;
    may_audit(&ctx)?;
    let mut filter = AuditFilter {
        aggregate_id: q.name.clone(),
        actor: q.actor.clone(),
        event_type: q.event_type.clone(),
        ..AuditFilter::default()
    };
    if let Some(kind) = &q.kind {
        filter.aggregate_type =
            Some(aggregate_type(kind).ok_or_else(|| bad("kind", format!("unknown kind {kind:?}")))?.to_owned());
    }
    [filter.since, filter.until] = times(&q.since, &q.until)?;
    let limit = limit_of(&q.limit)?;
    let parse =
        |field: &str, raw: &str| parse_cursor(raw).ok_or_else(|| bad(field, format!("{raw:?} is not a cursor")));
    let direction = match (&q.after, &q.newer) {
        (Some(after), Some(newer)) => {
            Direction::Between { before: parse("after", after)?, after: parse("newer", newer)? }
        }
        (_, Some(newer)) => Direction::Newer(parse("newer", newer)?),
        (Some(after), None) => Direction::Older(Some(parse("after", after)?)),
        (None, None) => Direction::Older(None),
    };
    let events = s.audit(&filter, direction, limit).await?;
    // An update is shown against the state it replaced.
    let mut previous = Vec::with_capacity(events.len());
    for e in &events {
        previous.push(if e.event_type.ends_with("Updated") { s.audit_previous(e).await? } else { None });
    }
    let items: Vec<wire::audit::AuditEntry> = events
        .iter()
        .zip(&previous)
        .map(|(e, before)| {
            let meta = |k: &str| e.metadata.get(k).cloned().unwrap_or_default();
            wire::audit::AuditEntry {
                position: cursor(e.position),
                time: e.recorded_at.clone(),
                actor: meta(domain::metadata::ACTOR),
                token_id: meta(domain::metadata::TOKEN_ID),
                kind: e.aggregate_type.clone(),
                name: e.aggregate_id.clone(),
                event_type: e.event_type.clone(),
                summary: summary(&e.payload, before.as_ref().map(|b| &b.payload)),
                request_id: meta(domain::metadata::REQUEST_ID),
                source: meta(domain::metadata::SOURCE),
                source_address: meta(domain::metadata::SOURCE_ADDRESS),
            }
        })
        .collect();
    let next = match direction {
        Direction::Older(_) | Direction::Between { .. } if items.len() as i64 == limit => {
            events.last().map(|e| cursor(e.position))
        }
        _ => None,
    };
    Ok(Json(wire::audit::AuditPage { items, next }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenialQuery {
    actor: Option<String>,
    status: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

/// `GET /api/v1/audit/denials?actor=&status=&since=&until=&limit=&after=`: who was refused
/// what, newest first; needs what the audit log needs.
pub async fn denials(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    super::extract::Query(raw): super::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Json<wire::audit::DenialPage>, ApiError> {
    let q: DenialQuery = serde_json::from_value(serde_json::to_value(&raw).expect("a string map serialises"))
        .map_err(|e| ApiError::BadRequest(format!("denials query: {e}")))?;
    may_audit(&ctx)?;
    let mut filter = projections::denials::DenialFilter { actor: q.actor.clone(), ..Default::default() };
    filter.status = match q.status.as_deref() {
        None => None,
        Some(raw @ ("401" | "403")) => Some(raw.parse().expect("a status")),
        Some(raw) => return Err(bad("status", format!("{raw:?} is not 401 or 403"))),
    };
    [filter.since, filter.until] = times(&q.since, &q.until)?;
    let limit = limit_of(&q.limit)?;
    if let Some(after) = &q.after {
        let id = (1..=18).contains(&after.len()).then_some(after).filter(|a| a.bytes().all(|b| b.is_ascii_digit()));
        filter.before =
            Some(id.and_then(|a| a.parse().ok()).ok_or_else(|| bad("after", format!("{after:?} is not a row's id")))?);
    }
    let rows = s.denials(&filter, limit).await?;
    let next = (rows.len() as i64 == limit).then(|| rows.last().map(|r| r.id.to_string())).flatten();
    let items = rows
        .into_iter()
        .map(|r| wire::audit::DenialEntry {
            id: r.id.to_string(),
            time: r.at,
            request_id: r.request_id,
            actor: r.actor,
            token_id: r.token_id,
            source_address: r.source_address,
            method: r.method,
            path: r.path,
            status: r.status,
            reason: r.reason,
            suppressed: r.suppressed.max(0) as u64,
        })
        .collect();
    Ok(Json(wire::audit::DenialPage { items, next }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use app::time::point_in_time;

    #[test]
    fn summaries_name_fields_and_keys_never_hashes() {
        let llm = json!({"LlmUpdated": {"spec": {"model": "gpt-5", "tier": "heavy", "apiKeyRef": {"name": "x"}}}});
        assert_eq!(summary(&llm, None), "spec.model=gpt-5 spec.tier=heavy");
        let before = json!({"LlmCreated": {"spec": {"model": "gpt-5", "tier": "fast", "url": "http://a"}}});
        assert_eq!(summary(&llm, Some(&before)), "spec.tier: fast→heavy spec.url: http://a→(none)");
        let token = json!({"TokenIssued": {"user": "alice", "hash": "abc", "expiresAt": null, "description": ""}});
        assert_eq!(summary(&token, None), "user=alice");
        let secret =
            json!({"SecretUpdated": {"keys": ["A", "B"], "changedKeys": ["B"], "valueRef": "r", "dataVersion": 2}});
        assert_eq!(summary(&secret, None), "changedKeys=B dataVersion=2 keys=A,B");
    }

    #[test]
    fn times_and_cursors_parse() {
        let now: jiff::Timestamp = "2026-01-02T00:00:00Z".parse().unwrap();
        assert_eq!(point_in_time("2h", now).unwrap().to_string(), "2026-01-01T22:00:00Z");
        assert_eq!(point_in_time("1d", now).unwrap().to_string(), "2026-01-01T00:00:00Z");
        assert!(point_in_time("yesterday", now).is_none());
        assert_eq!(parse_cursor("17"), Some(Position { transaction_id: 0, position: 17 }));
        assert_eq!(parse_cursor("9:17"), Some(Position { transaction_id: 9, position: 17 }));
        assert_eq!(cursor(Position { transaction_id: 9, position: 17 }), "9:17");
        assert!(parse_cursor("x").is_none());
    }
}

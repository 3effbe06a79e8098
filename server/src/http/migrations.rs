//! `POST /api/v1/secrets/migrate` (progress as NDJSON) and the migration runs' read side.

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::extract::JsonBody;
use app::context::RequestContext;
use app::error::ApiError;
use app::migration::{MigrationRequest, ndjson};
use app::service::Services;
use domain::rbac::{Operation, Verb};

/// Starts a migration and streams its progress, one JSON object per line. The run goes on if
/// the client disconnects; `GET /api/v1/migrations/{id}` shows how it ended.
pub async fn migrate(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    ctx.require_operation(Operation::MigrateSecrets)?;
    let request: MigrationRequest = serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        ApiError::MalformedBody(format!("{path}: {}", e.into_inner()))
    })?;
    let progress = app::migration::Runner::new(s).start_migration(&ctx, request).await?;
    let mut response = Body::from_stream(ndjson(progress)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    Ok(response)
}

fn document(record: &projections::read_models::Record<projections::read_models::migrations::MigrationState>) -> Value {
    super::resources::document(domain::document::Kind::Migration, record)
}

pub async fn list(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    page: super::extract::ListPage,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Json<Value>, ApiError> {
    use projections::read_models::migrations;
    if super::watch::requested(query.as_deref())?.is_some() {
        // A run's progress streams from POST /api/v1/secrets/migrate; its state from GET by id.
        return Err(ApiError::BadRequest(
            "migrations cannot be watched: follow a run with GET /api/v1/migrations/{id}".into(),
        ));
    }
    ctx.require_some("migrations", Verb::View)?;
    let s = &s;
    let fetch = |page| async move { s.migration_page(&page).await };
    let visible = |r: &projections::read_models::Record<_>| ctx.may("migrations", Verb::View, Some(&r.name));
    let kind = domain::document::Kind::Migration;
    let (runs, next) = super::paging::page_of(kind, migrations::ORDER, page, fetch, visible).await?;
    let items = runs.iter().map(|r| hide_secrets(&ctx, document(r), None)).collect();
    Ok(Json(super::paging::list_body(items, next)))
}

/// One run, with its history: every event of the run (what it moved, skipped, why it stopped).
pub async fn get(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    ctx.require("migrations", Verb::View, Some(&id))?;
    let run =
        s.migration(&id).await?.ok_or_else(|| ApiError::not_found(domain::document::Kind::Migration, id.as_str()))?;
    let events = s.migration_events(&id).await?;
    let history: Vec<Value> = events
        .into_iter()
        .map(|e| {
            // The payload is `{EventType: {...}}`; the inner object is what happened.
            let detail = e.payload.as_object().and_then(|m| m.values().next().cloned()).unwrap_or(Value::Null);
            json!({"resourceVersion": e.sequence, "eventType": e.event_type, "recordedAt": e.recorded_at,
                   "actor": e.metadata.get("actor"), "detail": detail})
        })
        .collect();
    let mut doc = document(&run);
    doc["history"] = Value::Array(history.clone());
    Ok(Json(hide_secrets(&ctx, doc, Some(&history))))
}

/// A run as `ctx` may see it: only the secrets the caller may view are named; a failure that
/// concerns another secret keeps its place but not its name or reason. `history` is the run's
/// events, when the document carries them (a list does not, so its `lastError` is shown only
/// to callers who may view every secret).
fn hide_secrets(ctx: &RequestContext, mut doc: Value, history: Option<&[Value]>) -> Value {
    if ctx.may("secrets", Verb::View, None) {
        return doc;
    }
    let visible = |name: &Value| name.as_str().is_some_and(|n| ctx.may("secrets", Verb::View, Some(n)));
    let keep_visible = |list: Option<&mut Value>, field: Option<&str>| {
        if let Some(items) = list.and_then(Value::as_array_mut) {
            items.retain(|item| visible(field.map_or(item, |f| &item[f])));
        }
    };
    keep_visible(doc.get_mut("names"), None);
    let hidden_failure = history.is_none_or(|events| {
        events.iter().any(|e| {
            e["eventType"] == "MigrationFailed" && !e["detail"]["secret"].is_null() && !visible(&e["detail"]["secret"])
        })
    });
    if hidden_failure && let Some(map) = doc.as_object_mut() {
        map.remove("lastError");
    }
    if let Some(events) = doc.get_mut("history").and_then(Value::as_array_mut) {
        for event in events {
            let Some(detail) = event.get_mut("detail").filter(|d| d.is_object()) else { continue };
            keep_visible(detail.get_mut("names"), None);
            keep_visible(detail.get_mut("moved"), None);
            keep_visible(detail.get_mut("skipped"), Some("secret"));
            if detail.get("secret").is_some_and(|s| !s.is_null() && !visible(s)) {
                detail["secret"] = Value::Null;
                detail["reason"] = json!("(it concerns a secret you may not view)");
            }
        }
    }
    doc
}

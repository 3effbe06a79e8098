//! The read models' operations: `GET /api/v1/projections` (status), `POST
//! /api/v1/projections/rebuild` (starts a rebuild; progress shows in the status), `POST
//! /api/v1/projections/verify` (compares the tables with a replay of the log), and `/readyz`.
//! All but `/readyz` need the `run:rebuild-projections` operation.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use projections::read_models::ReadModel;
use projections::rebuild::RebuildError;
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::JsonBody;
use app::context::RequestContext;
use app::error::ApiError;
use app::service::Services;

const OPERATION: domain::rbac::Operation = domain::rbac::Operation::RebuildProjections;

/// Which read models a request names: `{"names": [...]}`, or `{"all": true}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Selection {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    all: bool,
}

impl Selection {
    fn parse(body: Value) -> Result<Self, ApiError> {
        serde_path_to_error::deserialize(body).map_err(|e| {
            let path = e.path().to_string();
            ApiError::MalformedBody(format!("{path}: {}", e.into_inner()))
        })
    }

    /// The read models named, in the projector's order; every one for `all`.
    fn models(&self, default_all: bool) -> Result<Vec<ReadModel>, ApiError> {
        if self.all && !self.names.is_empty() {
            return Err(ApiError::MalformedBody("give names or all, not both".into()));
        }
        if self.all || (self.names.is_empty() && default_all) {
            return Ok(ReadModel::ALL.to_vec());
        }
        if self.names.is_empty() {
            return Err(ApiError::MalformedBody("name the projections to rebuild, or set all".into()));
        }
        let mut models = Vec::new();
        for name in &self.names {
            let model = ReadModel::named(name).ok_or_else(|| {
                let known: Vec<&str> = ReadModel::ALL.iter().map(|m| m.name()).collect();
                ApiError::Missing(format!("no projection {name:?}; one of {}", known.join(", ")))
            })?;
            if !models.contains(&model) {
                models.push(model);
            }
        }
        Ok(ReadModel::ALL.into_iter().filter(|m| models.contains(m)).collect())
    }
}

/// Every read model's status, with what this replica knows about it.
pub async fn status(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
) -> Result<Json<Value>, ApiError> {
    ctx.require_operation(OPERATION)?;
    Ok(Json(json!({"items": items(&s).await?})))
}

async fn items(s: &Services) -> Result<Vec<Value>, ApiError> {
    let local = s.store.projector.local_status();
    let statuses = s.projection_status(&ReadModel::ALL).await?;
    Ok(statuses
        .into_iter()
        .map(|status| {
            let here = local.get(status.name).cloned().unwrap_or_default();
            let mut item = serde_json::to_value(&status).expect("a status serialises");
            item["runningHere"] = json!(here.running_here);
            item["stopped"] = json!(here.stopped);
            if status.last_error.is_none() && here.error.is_some() {
                item["lastError"] = json!(here.error);
            }
            item
        })
        .collect())
}

/// Starts rebuilding the named read models in the background: 202 with their status, or 409
/// when one of them is already being rebuilt.
pub async fn rebuild(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    ctx.require_operation(OPERATION)?;
    let models = Selection::parse(body)?.models(false)?;
    s.claim_rebuild(&models, &ctx.actor).await.map_err(rebuild_error)?;
    tracing::info!(actor = %ctx.actor, projections = ?models.iter().map(|m| m.name()).collect::<Vec<_>>(), "rebuild started");
    let names: Vec<&str> = models.iter().map(|m| m.name()).collect();
    s.rebuild_in_background(models.clone());
    let items: Vec<Value> = items(&s).await?.into_iter().filter(|i| names.iter().any(|n| i["name"] == *n)).collect();
    Ok((StatusCode::ACCEPTED, Json(json!({"items": items}))).into_response())
}

/// Replays the log and compares it with the named read models' tables (all when none are
/// named): the rows that differ.
pub async fn verify(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    ctx.require_operation(OPERATION)?;
    let models = Selection::parse(body)?.models(true)?;
    let (differences, replayed) = s.verify(&models).await.map_err(rebuild_error)?;
    let differences: Vec<Value> =
        differences.iter().map(|d| json!({"table": d.table, "key": d.key, "message": d.to_string()})).collect();
    Ok(Json(json!({
        "projections": models.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "replayed": replayed,
        "differences": differences,
    })))
}

fn rebuild_error(error: RebuildError) -> ApiError {
    match error {
        RebuildError::Busy(name) => ApiError::Conflict(format!("a rebuild of projection {name:?} is already running")),
        RebuildError::Database(e) => ApiError::from(e),
        poison @ RebuildError::Apply(_) => {
            ApiError::Internal(anyhow::anyhow!(projections::projector::error_chain(&poison)))
        }
    }
}

/// Ready when the database answers and no read model in this process is stopped.
pub async fn readyz(State(s): State<Services>) -> Response {
    if let Err(e) = s.database_answers().await {
        tracing::warn!(error = %e, "readiness: the database does not answer");
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "database unavailable"}))).into_response();
    }
    let stopped: Vec<&str> =
        s.store.projector.local_status().into_iter().filter(|(_, st)| st.stopped).map(|(n, _)| n).collect();
    if stopped.is_empty() {
        (StatusCode::OK, Json(json!({"status": "ready"}))).into_response()
    } else {
        let mut stopped = stopped;
        stopped.sort_unstable();
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "projections stopped", "stopped": stopped})))
            .into_response()
    }
}

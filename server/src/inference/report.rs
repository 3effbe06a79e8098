//! `GET /api/v1/usage`: the usage counted per user and Llm.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use app::context::RequestContext;
use app::error::ApiError;
use app::observed::usage;
use app::service::Services;
use domain::rbac::Operation;

#[derive(serde::Deserialize)]
pub(super) struct UsageQuery {
    llm: Option<String>,
    user: Option<String>,
    since: Option<String>,
}

/// `GET /api/v1/usage?llm=&user=&since=`: requests, errors and tokens per user and Llm. One's
/// own usage is anyone's to see; other users' needs `view:audit`.
pub(super) async fn usage_report(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    crate::http::extract::Query(q): crate::http::extract::Query<UsageQuery>,
) -> Result<Json<Value>, ApiError> {
    let everyone = ctx.permissions.allows_operation(Operation::ViewAudit);
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
    let rows = s.usage(&filter).await?;
    Ok(Json(json!({"items": rows})))
}

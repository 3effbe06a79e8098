//! The HTTP surface: routes, the request-context middleware, body limits and JSON fallbacks.

mod access;
pub mod audit;
pub mod extract;
mod migrations;
mod projections;
mod resources;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::get;

use crate::context::request_context;
use crate::error::ApiError;
use crate::service::Services;

/// `GET /api/v1/secretbackends/{name}/health`: is the backend reachable and does it let mcpd in?
/// Always 200 for an existing backend; the body says `ok`, `unreachable`, `sealed`,
/// `permission denied` or `error`, with a message.
async fn backend_health(
    axum::extract::State(s): axum::extract::State<Services>,
    axum::Extension(ctx): axum::Extension<crate::context::RequestContext>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<axum::Json<crate::backends::Health>, ApiError> {
    ctx.require("secretbackends", "view", Some(&name))?;
    Ok(axum::Json(s.secret_backend_health(&name).await?))
}

/// `GET /api/v1/schemas/{kind}`: the JSON Schema of a kind's document (singular or plural).
async fn schema(
    axum::extract::Path(kind): axum::extract::Path<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    use domain::document::{Kind, document_schema};
    let schema = match Kind::parse(&kind) {
        Some(Kind::Llm) => document_schema::<domain::llm::LlmInput>(),
        Some(Kind::Secret) => document_schema::<domain::secret::SecretInput>(),
        Some(Kind::SecretBackend) => document_schema::<domain::secret_backend::SecretBackendInput>(),
        None => return Err(ApiError::NotFound(format!("no resource kind {kind:?}"))),
    };
    Ok(axum::Json(schema))
}

/// The whole API, as production serves it and tests call it.
pub fn router(services: Services) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/version", get(|| async { axum::Json(serde_json::json!({"version": env!("CARGO_PKG_VERSION")})) }))
        .route("/api/v1/schemas/{kind}", get(schema))
        .route("/api/v1/secretbackends/{name}/health", get(backend_health))
        .route("/api/v1/secrets/migrate", axum::routing::post(migrations::migrate))
        .route("/api/v1/audit", get(audit::audit))
        .route("/api/v1/migrations", get(migrations::list))
        .route("/api/v1/migrations/{id}", get(migrations::get))
        .route("/readyz", get(projections::readyz))
        .route("/api/v1/projections", get(projections::status))
        .route("/api/v1/projections/rebuild", axum::routing::post(projections::rebuild))
        .route("/api/v1/projections/verify", axum::routing::post(projections::verify))
        .merge(access::routes())
        .merge(access::rbac_routes())
        .merge(resources::routes::<resources::Llms>())
        .merge(resources::routes::<resources::Secrets>())
        .merge(resources::routes::<resources::SecretBackends>())
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        .layer(middleware::from_fn(extract::refuse_nul_in_url))
        .layer(middleware::from_fn_with_state(services.clone(), crate::auth::authenticate))
        .layer(middleware::from_fn(request_context))
        .with_state(services)
}

//! The REST API's handlers under `/api/v1`: the generic resource routes of every kind, and the
//! routes of their own (audit, migrations, projections, access); their extractors, paging,
//! watch and `Idempotency-Key`.

mod access;
pub mod audit;
pub mod extract;
pub mod idempotency;
mod migrations;
pub(crate) mod paging;
pub(crate) mod projections;
mod resources;
pub(crate) mod watch;

use app::error::ApiError;
use app::service::Services;
use axum::http::Method;

use crate::routes::Routes;
use domain::rbac::Verb;

/// `GET /api/v1/secretbackends/{name}/health`: is the backend reachable and does it let mcpd in?
/// Always 200 for an existing backend; the body says `ok`, `unreachable`, `sealed`,
/// `permission denied` or `error`, with a message.
async fn backend_health(
    axum::extract::State(s): axum::extract::State<Services>,
    axum::Extension(ctx): axum::Extension<app::context::RequestContext>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<axum::Json<backends::Health>, ApiError> {
    ctx.require("secretbackends", Verb::View, Some(&name))?;
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
        Some(other @ (Kind::Migration | Kind::User | Kind::Token | Kind::Role | Kind::RoleBinding)) => {
            return Err(ApiError::Missing(format!("kind {other} has no document schema yet")));
        }
        None => return Err(ApiError::Missing(format!("no resource kind {kind:?}"))),
    };
    Ok(axum::Json(schema))
}

/// The REST API's own routes (besides each kind's generic ones, `resources`).
pub fn routes() -> Routes {
    use Method as M;
    Routes::default()
        .on(M::GET, "/api/v1/schemas/{kind}", schema)
        .on(M::GET, "/api/v1/secretbackends/{name}/health", backend_health)
        .on(M::POST, "/api/v1/secrets/migrate", migrations::migrate)
        .streamed()
        .on(M::GET, "/api/v1/audit", audit::audit)
        .on(M::GET, "/api/v1/audit/denials", audit::denials)
        .on(M::GET, "/api/v1/migrations", migrations::list)
        .on(M::GET, "/api/v1/migrations/{id}", migrations::get)
        .on(M::GET, "/api/v1/projections", projections::status)
        .on(M::POST, "/api/v1/projections/rebuild", projections::rebuild)
        .on(M::POST, "/api/v1/projections/verify", projections::verify)
        .long()
        .merge(access::routes())
        .merge(access::rbac_routes())
        .merge(resources::routes::<app::service::Llms>())
        .merge(resources::routes::<app::service::Secrets>())
        .merge(resources::routes::<app::service::SecretBackends>())
        .merge(resources::routes::<app::service::Roles>())
        .merge(resources::routes::<app::service::RoleBindings>())
        .merge(resources::routes::<app::service::Users>())
        .merge(resources::routes::<app::service::Tokens>())
}

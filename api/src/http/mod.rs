//! The HTTP surface: routes, the request-context middleware, body limits and JSON fallbacks.

pub mod extract;
mod resources;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::get;

use crate::context::request_context;
use crate::error::ApiError;
use crate::service::Services;

pub use resources::document;

/// The whole API, as production serves it and tests call it.
pub fn router(services: Services) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(resources::routes::<resources::Llms>())
        .merge(resources::routes::<resources::Secrets>())
        .merge(resources::routes::<resources::SecretBackends>())
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        .layer(middleware::from_fn(request_context))
        .with_state(services)
}

//! The whole HTTP surface assembled: every route (the REST API's, the inference proxy's, the
//! open ones), the middleware in the order a request meets it, and the fallbacks.

use std::sync::OnceLock;

use app::error::ApiError;
use app::service::Services;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::middleware;
use serde_json::Value;

use crate::routes::{Route, RouteTable, Routes};

fn all_routes() -> Routes {
    use Method as M;
    Routes::default()
        .on(M::GET, "/healthz", || async { "ok" })
        .open()
        .on(M::GET, "/version", || async { axum::Json(serde_json::json!({"version": env!("CARGO_PKG_VERSION")})) })
        .open()
        .on(M::GET, "/readyz", crate::http::projections::readyz)
        .open()
        .on(M::GET, "/metrics", crate::metrics::scrape)
        .on(M::GET, "/api/v1/openapi.json", serve_openapi)
        .open()
        .merge(crate::http::routes())
        .merge(crate::inference::routes())
}

/// Every route mcpd serves: method, path template and facts.
pub fn route_list() -> Vec<Route> {
    all_routes().list().to_vec()
}

/// The OpenAPI description of [`route_list`], built once.
pub fn openapi_document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| crate::openapi::build(&route_list()).expect("every route is described"))
}

/// `GET /api/v1/openapi.json`: open, like `/healthz`, so that tools can read it before they hold
/// a token.
async fn serve_openapi() -> axum::Json<&'static Value> {
    axum::Json(openapi_document())
}

/// `--metrics-listen`: `/metrics` alone, without authentication, for a trusted network.
pub fn metrics_router(services: Services) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(crate::metrics::scrape_open))
        .fallback(|| async { ApiError::Missing("no such route: this listener serves /metrics only".into()) })
        .with_state(services)
}

/// The whole API, as production serves it and tests call it. A request meets, outermost first:
/// its route's facts attached, the request context (id, span, timeout, log line), authentication,
/// `Idempotency-Key`, the NUL check of the URL, the body limit, then its handler.
pub fn router(services: Services) -> Router {
    let (routes, table) = all_routes().finish();
    let allowed = table.clone();
    routes
        .fallback(|| async { ApiError::Missing("no such route".into()) })
        .method_not_allowed_fallback(move |matched: Option<axum::extract::MatchedPath>| {
            let allow = allowed.allowed_methods(matched.as_ref().map_or("", |m| m.as_str()));
            async move { ApiError::MethodNotAllowed(allow) }
        })
        .layer(DefaultBodyLimit::max(crate::http::extract::BODY_LIMIT))
        .layer(middleware::from_fn(crate::http::extract::refuse_nul_in_url))
        .layer(middleware::from_fn_with_state((services.clone(), table.clone()), crate::http::idempotency::idempotency))
        .layer(middleware::from_fn_with_state(services.clone(), crate::auth::authenticate))
        .layer(middleware::from_fn_with_state(services.clone(), crate::middleware::request_context))
        .layer(middleware::map_request_with_state(table, crate::routes::attach_facts))
        .with_state(services)
}

/// The table of [`all_routes`] (for tests and tools that need the facts without a router).
pub fn route_table() -> RouteTable {
    all_routes().finish().1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(fact: impl Fn(&crate::routes::Facts) -> bool) -> Vec<String> {
        let mut routes: Vec<String> =
            route_list().into_iter().filter(|r| fact(&r.facts)).map(|r| format!("{} {}", r.method, r.path)).collect();
        routes.sort();
        routes
    }

    /// The facts the middleware acts on, as docs/api.md and docs/inference.md describe them: a
    /// route that gains or loses one changes what a client meets (a token asked for, a timeout).
    #[test]
    fn each_route_has_the_facts_the_docs_promise() {
        assert_eq!(with(|f| f.open), ["GET /api/v1/openapi.json", "GET /healthz", "GET /readyz", "GET /version"]);
        assert_eq!(
            with(|f| f.streamed),
            [
                "POST /anthropic/v1/messages",
                "POST /api/v1/llms/{name}/warmup",
                "POST /api/v1/secrets/migrate",
                "POST /openai/v1/chat/completions"
            ]
        );
        assert_eq!(with(|f| f.long), ["POST /api/v1/projections/verify"]);
        assert_eq!(with(|f| f.api_key_header), ["POST /anthropic/v1/messages"]);
    }

    #[test]
    fn a_405_lists_what_the_route_takes() {
        let table = route_table();
        assert_eq!(table.allowed_methods("/api/v1/llms/{name}"), "DELETE, GET, HEAD, PUT");
        assert_eq!(table.allowed_methods("/api/v1/users/{name}"), "DELETE, GET, HEAD");
        assert_eq!(table.allowed_methods("/api/v1/tokens"), "GET, HEAD, POST");
        assert!(table.serves(&Method::HEAD, "/healthz"));
        assert!(!table.serves(&Method::POST, "/healthz"));
    }
}

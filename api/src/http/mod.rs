//! The HTTP surface: routes, the request-context middleware, body limits and JSON fallbacks.

mod access;
pub mod audit;
pub mod extract;
pub mod idempotency;
mod migrations;
pub(crate) mod paging;
mod projections;
mod resources;
pub(crate) mod watch;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::middleware;
use axum::routing::MethodFilter;

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
        Some(other @ (Kind::Migration | Kind::User | Kind::Token | Kind::Role | Kind::RoleBinding)) => {
            return Err(ApiError::Missing(format!("kind {other} has no document schema yet")));
        }
        None => return Err(ApiError::Missing(format!("no resource kind {kind:?}"))),
    };
    Ok(axum::Json(schema))
}

/// The routes, each registered with its method and path template, so that the list of them is
/// known: the permission matrix test walks it, and a route missing from the test's table fails.
#[derive(Default)]
pub struct Routes {
    router: Router<Services>,
    list: Vec<(Method, String)>,
}

impl Routes {
    pub(crate) fn on<H, T>(mut self, method: Method, path: &str, handler: H) -> Self
    where
        H: axum::handler::Handler<T, Services>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
        self.router = self.router.route(path, axum::routing::on(filter, handler));
        self.list.push((method, path.to_owned()));
        self
    }

    fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.list.extend(other.list);
        self
    }
}

fn all_routes() -> Routes {
    use Method as M;
    Routes::default()
        .on(M::GET, "/healthz", || async { "ok" })
        .on(M::GET, "/version", || async { axum::Json(serde_json::json!({"version": env!("CARGO_PKG_VERSION")})) })
        .on(M::GET, "/readyz", projections::readyz)
        .on(M::GET, "/metrics", crate::metrics::scrape)
        .on(M::GET, "/api/v1/openapi.json", crate::openapi::serve)
        .on(M::GET, "/api/v1/schemas/{kind}", schema)
        .on(M::GET, "/api/v1/secretbackends/{name}/health", backend_health)
        .on(M::POST, "/api/v1/secrets/migrate", migrations::migrate)
        .on(M::GET, "/api/v1/audit", audit::audit)
        .on(M::GET, "/api/v1/audit/denials", audit::denials)
        .on(M::GET, "/api/v1/migrations", migrations::list)
        .on(M::GET, "/api/v1/migrations/{id}", migrations::get)
        .on(M::GET, "/api/v1/projections", projections::status)
        .on(M::POST, "/api/v1/projections/rebuild", projections::rebuild)
        .on(M::POST, "/api/v1/projections/verify", projections::verify)
        .merge(crate::inference::routes())
        .merge(access::routes())
        .merge(access::rbac_routes())
        .merge(resources::routes::<crate::service::Llms>())
        .merge(resources::routes::<crate::service::Secrets>())
        .merge(resources::routes::<crate::service::SecretBackends>())
        .merge(resources::routes::<crate::service::Roles>())
        .merge(resources::routes::<crate::service::RoleBindings>())
        .merge(resources::routes::<crate::service::Users>())
        .merge(resources::routes::<crate::service::Tokens>())
}

/// The methods the route `template` takes, as `Allow` lists them (HEAD wherever GET is).
pub(crate) fn allowed_methods(template: &str) -> String {
    static BY_ROUTE: std::sync::OnceLock<std::collections::HashMap<String, Vec<Method>>> = std::sync::OnceLock::new();
    let by_route = BY_ROUTE.get_or_init(|| {
        let mut by_route: std::collections::HashMap<String, Vec<Method>> = Default::default();
        for (method, path) in route_list() {
            let methods = by_route.entry(path).or_default();
            if method == Method::GET {
                methods.push(Method::HEAD);
            }
            methods.push(method);
        }
        by_route
    });
    let mut methods: Vec<&str> = by_route.get(template).into_iter().flatten().map(Method::as_str).collect();
    methods.sort_unstable();
    methods.dedup();
    methods.join(", ")
}

/// Every route mcpd serves: method and path template.
pub fn route_list() -> Vec<(Method, String)> {
    all_routes().list
}

/// `--metrics-listen`: `/metrics` alone, without authentication, for a trusted network.
pub fn metrics_router(services: Services) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(crate::metrics::scrape_open))
        .fallback(|| async { ApiError::Missing("no such route: this listener serves /metrics only".into()) })
        .with_state(services)
}

/// The whole API, as production serves it and tests call it.
pub fn router(services: Services) -> Router {
    all_routes()
        .router
        .fallback(|| async { ApiError::Missing("no such route".into()) })
        .method_not_allowed_fallback(|matched: Option<axum::extract::MatchedPath>| async move {
            ApiError::MethodNotAllowed(allowed_methods(matched.as_ref().map_or("", |m| m.as_str())))
        })
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        .layer(middleware::from_fn(extract::refuse_nul_in_url))
        .layer(middleware::from_fn_with_state(services.clone(), idempotency::idempotency))
        .layer(middleware::from_fn_with_state(services.clone(), crate::auth::authenticate))
        .layer(middleware::from_fn_with_state(services.clone(), request_context))
        .with_state(services)
}

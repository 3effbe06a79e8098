//! The route table: every route is registered once, with its method, its path template and its
//! facts (open, streamed, long-running, which headers carry the token). Everything else reads
//! them from here: the middleware (authentication, the request timeout, `Idempotency-Key`), the
//! `Allow` header of a 405, OpenAPI, and the permission matrix test. Depends on nothing else in
//! the crate.

use std::collections::HashMap;
use std::sync::Arc;

use app::service::Services;
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::routing::MethodFilter;

/// What a route is, beyond its method and path; declared where it is registered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    /// Served without authentication (health, version, the API description).
    pub open: bool,
    /// Its answer is streamed (inference, a warmup, a migration's progress): the request timeout
    /// does not apply (its own limits bound it), nor does `Idempotency-Key` (an answer that is a
    /// stream cannot be replayed).
    pub streamed: bool,
    /// Runs long without streaming (verifying the read models replays the whole log): the
    /// request timeout does not apply.
    pub long: bool,
    /// The token may come as `x-api-key`, as the Anthropic SDK sends it.
    pub api_key_header: bool,
}

impl Facts {
    /// Whether a write to this route may carry an `Idempotency-Key`.
    pub fn idempotent(self, method: &Method) -> bool {
        !self.streamed && matches!(*method, Method::POST | Method::PUT | Method::DELETE)
    }

    /// Whether the request timeout applies.
    pub fn timed(self) -> bool {
        !self.streamed && !self.long
    }
}

/// One registered route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    pub path: String,
    pub facts: Facts,
}

/// Routes as they are registered: the axum router and the list of them.
#[derive(Default)]
pub struct Routes {
    router: Router<Services>,
    list: Vec<Route>,
}

impl Routes {
    /// Registers `handler` for `method` on `path`, with no particular facts (authenticated,
    /// timed, idempotent when a write); the methods below add facts to the route just
    /// registered.
    pub fn on<H, T>(mut self, method: Method, path: &str, handler: H) -> Self
    where
        H: axum::handler::Handler<T, Services>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
        self.router = self.router.route(path, axum::routing::on(filter, handler));
        self.list.push(Route { method, path: path.to_owned(), facts: Facts::default() });
        self
    }

    fn last(&mut self) -> &mut Facts {
        &mut self.list.last_mut().expect("a route registered before its facts").facts
    }

    /// The route just registered is served without authentication.
    pub fn open(mut self) -> Self {
        self.last().open = true;
        self
    }

    /// The route just registered answers with a stream.
    pub fn streamed(mut self) -> Self {
        self.last().streamed = true;
        self
    }

    /// The route just registered runs long without streaming.
    pub fn long(mut self) -> Self {
        self.last().long = true;
        self
    }

    /// The route just registered takes the token as `x-api-key` too.
    pub fn api_key_header(mut self) -> Self {
        self.last().api_key_header = true;
        self
    }

    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.list.extend(other.list);
        self
    }

    /// The router and the table of its routes.
    pub fn finish(self) -> (Router<Services>, RouteTable) {
        let table = RouteTable::new(&self.list);
        (self.router, table)
    }

    pub fn list(&self) -> &[Route] {
        &self.list
    }
}

/// The registered routes, by path template: what the middleware looks a request's route up in.
#[derive(Debug, Clone, Default)]
pub struct RouteTable(Arc<HashMap<String, Vec<(Method, Facts)>>>);

impl RouteTable {
    fn new(routes: &[Route]) -> RouteTable {
        let mut by_path: HashMap<String, Vec<(Method, Facts)>> = HashMap::new();
        for route in routes {
            by_path.entry(route.path.clone()).or_default().push((route.method.clone(), route.facts));
        }
        RouteTable(Arc::new(by_path))
    }

    /// The facts of `method` on the route `template` (HEAD is GET's); the default facts for
    /// anything not registered.
    pub fn facts(&self, method: &Method, template: &str) -> Facts {
        let method = if method == Method::HEAD { &Method::GET } else { method };
        self.0.get(template).and_then(|all| all.iter().find(|(m, _)| m == method)).map_or_else(Facts::default, |f| f.1)
    }

    /// Whether `method` is served on the route `template` (HEAD wherever GET is).
    pub fn serves(&self, method: &Method, template: &str) -> bool {
        let method = if method == Method::HEAD { &Method::GET } else { method };
        self.0.get(template).is_some_and(|all| all.iter().any(|(m, _)| m == method))
    }

    /// The methods the route `template` takes, as `Allow` lists them (HEAD wherever GET is).
    pub fn allowed_methods(&self, template: &str) -> String {
        let mut methods: Vec<&str> = Vec::new();
        for (method, _) in self.0.get(template).into_iter().flatten() {
            if method == Method::GET {
                methods.push(Method::HEAD.as_str());
            }
            methods.push(method.as_str());
        }
        methods.sort_unstable();
        methods.dedup();
        methods.join(", ")
    }
}

/// What the router's outermost layer puts into every request: its route's facts (default ones
/// when no route matched), so that the middleware inside reads them without a look-up of its
/// own.
pub async fn attach_facts(
    axum::extract::State(table): axum::extract::State<RouteTable>,
    mut request: Request,
) -> Request {
    let facts = match request.extensions().get::<MatchedPath>() {
        Some(matched) => table.facts(request.method(), matched.as_str()),
        None => Facts::default(),
    };
    request.extensions_mut().insert(facts);
    request
}

/// The facts of the route `request` is for.
pub fn facts_of(request: &Request) -> Facts {
    request.extensions().get::<Facts>().copied().unwrap_or_default()
}

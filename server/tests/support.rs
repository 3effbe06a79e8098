//! The test harness: the production app on a store of its own (see `testkit`), its router
//! called in process.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use serde_json::Value;
use server::App;
use tower::ServiceExt;

pub use testkit::{StoreKind, TestDb};

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The first field named in a validation error's details.
    pub fn fields(&self) -> Vec<String> {
        self.body["error"]["details"]
            .as_array()
            .map(|d| d.iter().map(|e| e["field"].as_str().unwrap_or_default().to_owned()).collect())
            .unwrap_or_default()
    }

    pub fn message(&self) -> String {
        self.body["error"]["message"].as_str().unwrap_or_default().to_owned()
    }

    /// This reply, once it is known to be a success (2xx): for a test's setup steps, whose
    /// failure would otherwise surface later as a puzzling assertion, or not at all.
    #[track_caller]
    pub fn succeeded(self) -> Reply {
        assert!(self.status.is_success(), "a setup step failed: {} {}", self.status, self.body);
        self
    }
}

/// Every test store starts with user `admin` holding [`testkit::ADMIN_TOKEN`].
pub fn bootstrap() -> app::service::Bootstrap {
    app::service::Bootstrap { token: Some(testkit::ADMIN_TOKEN.to_owned().into()), ..Default::default() }
}

/// The production app on a store of its own.
pub struct TestApp {
    pub app: App,
    pub db: TestDb,
}

impl TestApp {
    pub async fn start(kind: StoreKind) -> TestApp {
        Self::on(TestDb::new(kind).await).await
    }

    /// For a test that holds a PostgreSQL transaction open: it has the cluster to itself
    /// ([`TestDb::holding_the_cluster`]).
    pub async fn start_holding_the_cluster(kind: StoreKind) -> TestApp {
        Self::on(TestDb::holding_the_cluster(kind).await).await
    }

    async fn on(db: TestDb) -> TestApp {
        let app = App::open(&db.url, Duration::from_secs(10), &bootstrap()).await.expect("mcpd starts");
        TestApp { app, db }
    }

    /// A second mcpd on the same database, as another replica would be; the database stays
    /// owned by `self`.
    pub async fn replica(&self) -> TestApp {
        TestApp { app: self.reopen().await, db: self.db.share() }
    }

    /// Another mcpd on the same database, as after a restart.
    pub async fn reopen(&self) -> App {
        App::open(&self.db.url, Duration::from_secs(10), &bootstrap()).await.expect("mcpd restarts")
    }

    /// Sends `request` as the bootstrap admin, unless it carries its own Authorization.
    pub async fn send(&self, mut request: Request<Body>) -> Reply {
        if !request.headers().contains_key(header::AUTHORIZATION) {
            let value = format!("Bearer {}", testkit::ADMIN_TOKEN).parse().expect("a header value");
            request.headers_mut().insert(header::AUTHORIZATION, value);
        }
        self.send_raw(request).await
    }

    /// Sends `request` exactly as it is.
    pub async fn send_raw(&self, request: Request<Body>) -> Reply {
        let response = self.app.router().oneshot(request).await.expect("the router answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply { status, headers, body }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>, if_match: Option<&str>) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(v) = if_match {
            request = request.header(header::IF_MATCH, v);
        }
        let request = match body {
            Some(body) => request.header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        self.send(request.expect("request")).await
    }

    /// `method path` with `token` (or none) instead of the admin's.
    pub async fn call_as(&self, token: Option<&str>, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request.header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        self.send_raw(request.expect("request")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body), None).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(body), None).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None, None).await
    }

    /// Creates `anthropic` with an API key, and `claude-fast` using it.
    pub async fn seed_llm(&self) {
        let r = self.post("/api/v1/secrets", secret("anthropic", "API_KEY", "sk-ant-seed")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let r = self.post("/api/v1/llms", llm("claude-fast", "anthropic")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
}

pub fn secret(name: &str, key: &str, value: &str) -> Value {
    serde_json::json!({"name": name, "data": {key: value}})
}

pub fn llm(name: &str, secret: &str) -> Value {
    serde_json::json!({
        "name": name,
        "type": "anthropic",
        "model": "claude-haiku-4-5",
        "tier": "fast",
        "apiKeyRef": {"name": secret, "key": "API_KEY"},
    })
}

/// A provider stand-in that keeps the Authorization of every call it gets.
pub async fn key_recording_provider() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = seen.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let key = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            kept.lock().unwrap().push(key);
            async {
                axum::Json(serde_json::json!({"id": "c", "object": "chat.completion", "created": 0, "model": "m",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

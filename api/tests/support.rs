//! The test harness: a real store per test (a SQLite file in a temp dir, or a PostgreSQL
//! database of its own, dropped afterwards), the production router called in process.

use std::time::Duration;

use api::App;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use tower::ServiceExt;

#[derive(Debug, Clone, Copy)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database that exists for one test.
pub struct TestDb {
    pub url: String,
    postgres_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(kind: StoreKind) -> TestDb {
        match kind {
            StoreKind::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("mcpd.db").display());
                TestDb {
                    url,
                    postgres_name: None,
                    _dir: Some(dir),
                }
            }
            StoreKind::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("mcpd_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("connecting to PostgreSQL at {admin}: {e}"));
                sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut conn)
                    .await
                    .expect("creating the test database");
                let base = admin.split('?').next().unwrap_or(&admin);
                let base = &base[..base.rfind('/').expect("a database URL has a path")];
                TestDb {
                    url: format!("{base}/{name}"),
                    postgres_name: Some(name),
                    _dir: None,
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        // Drop runs outside async; a short-lived runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&postgres_admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

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
            .map(|d| {
                d.iter()
                    .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn message(&self) -> String {
        self.body["error"]["message"].as_str().unwrap_or_default().to_owned()
    }
}

/// The production app on a store of its own.
pub struct TestApp {
    pub app: App,
    pub db: TestDb,
}

impl TestApp {
    pub async fn start(kind: StoreKind) -> TestApp {
        let db = TestDb::new(kind).await;
        let app = App::open(&db.url, Duration::from_secs(10)).await.expect("mcpd starts");
        TestApp { app, db }
    }

    /// A second mcpd on the same database, as another replica would be; the database stays
    /// owned by `self`.
    pub async fn replica(&self) -> TestApp {
        let db = TestDb {
            url: self.db.url.clone(),
            postgres_name: None,
            _dir: None,
        };
        TestApp {
            app: self.reopen().await,
            db,
        }
    }

    /// Another mcpd on the same database, as after a restart.
    pub async fn reopen(&self) -> App {
        App::open(&self.db.url, Duration::from_secs(10))
            .await
            .expect("mcpd restarts")
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.app.router().oneshot(request).await.expect("the router answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON body")
        };
        Reply { status, headers, body }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>, if_match: Option<&str>) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(v) = if_match {
            request = request.header(header::IF_MATCH, v);
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        self.send(request.expect("request")).await
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
        let r = self
            .post("/api/v1/secrets", secret("anthropic", "API_KEY", "sk-ant-seed"))
            .await;
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

/// Runs each listed `async fn(StoreKind)` as one test on SQLite and one on PostgreSQL.
#[macro_export]
macro_rules! on_both_stores {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::support::StoreKind::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::support::StoreKind::Postgres).await
                }
            )*
        }
    };
}

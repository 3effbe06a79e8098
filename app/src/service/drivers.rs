//! The secret backends' drivers, one per backend, kept while the backend's resourceVersion
//! stays (so an openbao driver keeps its cached token) and rebuilt when the backend changes;
//! every call counted and timed in the metrics, and a write marks its request as changing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use projections::Database;
use projections::read_models;

use crate::error::ApiError;
use backends::{BackendResult, Health, HealthStatus, SecretBackendDriver, Written};
use domain::secret::SecretData;
use futures::FutureExt;
use futures::future::BoxFuture;

/// A driver and the backend resourceVersion it was built for.
type CachedDriver = (i64, Arc<dyn SecretBackendDriver>);

#[derive(Clone)]
pub struct Drivers {
    db: Database,
    /// Shared by every driver without TLS settings of its own; each call sets its own timeout.
    /// A backend's token goes to its configured server only, never where a redirect says.
    pub(crate) http: reqwest::Client,
    cache: Arc<Mutex<HashMap<String, CachedDriver>>>,
}

impl Drivers {
    pub fn new(db: Database) -> Drivers {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client with the built-in roots");
        Drivers { db, http, cache: Arc::default() }
    }

    /// The driver of backend `name`.
    pub async fn get(&self, name: &str) -> Result<Arc<dyn SecretBackendDriver>, ApiError> {
        let backend = read_models::secret_backends::get(&self.db, name)
            .await?
            .ok_or_else(|| ApiError::not_found(domain::document::Kind::SecretBackend, name))?;
        let mut cache = self.cache.lock().expect("driver cache lock");
        if let Some((version, driver)) = cache.get(name)
            && *version == backend.resource_version
        {
            return Ok(driver.clone());
        }
        let http = match &backend.spec.spec.config {
            Some(config) => backends::openbao::client_for(config, &self.http)
                .map_err(|e| ApiError::BadGateway(format!("secretbackend {name:?} cannot be used: {e}")))?,
            None => self.http.clone(),
        };
        let driver: Arc<dyn SecretBackendDriver> =
            Arc::new(Measured { backend: backend.name.clone(), inner: backends::driver(&self.db, &http, &backend) });
        cache.insert(name.to_owned(), (backend.resource_version, driver.clone()));
        Ok(driver)
    }
}

/// A driver whose calls are counted by backend, operation and outcome
/// (`mcpd_backend_calls_total`) and timed (`mcpd_backend_call_duration_seconds`).
struct Measured {
    backend: String,
    inner: Box<dyn SecretBackendDriver>,
}

/// An outcome as the metrics name it.
fn outcome<T>(result: &BackendResult<T>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(error) => HealthStatus::of(error).label(),
    }
}

impl Measured {
    fn count(&self, operation: &'static str, outcome: &'static str, n: u64) {
        metrics::counter!("mcpd_backend_calls_total", "backend" => self.backend.clone(), "operation" => operation, "outcome" => outcome)
            .increment(n);
    }

    fn time(&self, operation: &'static str, started: std::time::Instant) {
        metrics::histogram!("mcpd_backend_call_duration_seconds", "backend" => self.backend.clone(), "operation" => operation)
            .record(started.elapsed().as_secs_f64());
    }

    async fn one<T>(&self, operation: &'static str, call: BoxFuture<'_, BackendResult<T>>) -> BackendResult<T> {
        if operation != "get" {
            crate::request_scope::mark_changing();
        }
        let started = std::time::Instant::now();
        let result = call.await;
        self.time(operation, started);
        self.count(operation, outcome(&result), 1);
        result
    }

    async fn many<T>(
        &self,
        operation: &'static str,
        call: BoxFuture<'_, Vec<BackendResult<T>>>,
    ) -> Vec<BackendResult<T>> {
        if operation != "get" {
            crate::request_scope::mark_changing();
        }
        let started = std::time::Instant::now();
        let results = call.await;
        self.time(operation, started);
        for result in &results {
            self.count(operation, outcome(result), 1);
        }
        results
    }
}

impl SecretBackendDriver for Measured {
    fn put<'a>(
        &'a self,
        secret: &'a str,
        data: &'a SecretData,
        current: Option<&'a str>,
    ) -> BoxFuture<'a, BackendResult<Written>> {
        self.one("put", self.inner.put(secret, data, current)).boxed()
    }
    fn prepare<'a>(&'a self, secrets: &'a [String]) -> BoxFuture<'a, BackendResult<()>> {
        self.one("prepare", self.inner.prepare(secrets)).boxed()
    }
    fn release<'a>(&'a self, secrets: &'a [String]) -> BoxFuture<'a, BackendResult<()>> {
        self.one("release", self.inner.release(secrets)).boxed()
    }
    fn get<'a>(&'a self, secret: &'a str, value_ref: &'a str) -> BoxFuture<'a, BackendResult<Option<SecretData>>> {
        self.one("get", self.inner.get(secret, value_ref)).boxed()
    }
    fn get_many<'a>(&'a self, items: &'a [(String, String)]) -> BoxFuture<'a, Vec<BackendResult<Option<SecretData>>>> {
        self.many("get", self.inner.get_many(items)).boxed()
    }
    fn discard<'a>(&'a self, secret: &'a str, value_ref: &'a str) -> BoxFuture<'a, BackendResult<()>> {
        self.one("discard", self.inner.discard(secret, value_ref)).boxed()
    }
    fn delete<'a>(&'a self, secret: &'a str, value_ref: &'a str) -> BoxFuture<'a, BackendResult<()>> {
        self.one("delete", self.inner.delete(secret, value_ref)).boxed()
    }
    fn delete_many<'a>(&'a self, items: &'a [(String, String)]) -> BoxFuture<'a, Vec<BackendResult<()>>> {
        self.many("delete", self.inner.delete_many(items)).boxed()
    }
    fn health(&self) -> BoxFuture<'_, Health> {
        async move {
            let started = std::time::Instant::now();
            let health = self.inner.health().await;
            self.time("health", started);
            self.count("health", health.status.label(), 1);
            health
        }
        .boxed()
    }
}

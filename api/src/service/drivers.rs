//! The secret backends' drivers, one per backend, kept while the backend's resourceVersion
//! stays (so an openbao driver keeps its cached token) and rebuilt when the backend changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use projections::Database;
use projections::read_models;

use crate::backends::{self, SecretBackendDriver};
use crate::error::ApiError;

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
            Some(config) => crate::backends::openbao::client_for(config, &self.http)
                .map_err(|e| ApiError::BadGateway(format!("secretbackend {name:?} cannot be used: {e}")))?,
            None => self.http.clone(),
        };
        let driver = backends::driver(&self.db, &http, &backend);
        cache.insert(name.to_owned(), (backend.resource_version, driver.clone()));
        Ok(driver)
    }
}

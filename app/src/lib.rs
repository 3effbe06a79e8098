//! mcpd's application: everything between the HTTP surface and the database. The store adapter
//! (pools, outage classification, the event repository, snapshots), the write path, the
//! services each API call turns into, the access cache and the guard, secret migrations, and
//! what this replica observes of the Llms (health, usage). No routes, no middleware, no path
//! strings: the `server` crate binds these to HTTP, and tests can call them directly.
//!
//! Top-level modules, each importing only those above it in this list:
//! `request_scope`, `files`, `time`, `bearer`, `denials`, `outage`, `observed` (leaves);
//! `error`; `limits`; `context`; `store`; `service`; `migration`.
#![forbid(unsafe_code)]

pub mod bearer;
pub mod context;
pub mod denials;
pub mod error;
pub mod files;
pub mod limits;
pub mod migration;
pub mod observed;
pub mod outage;
pub mod request_scope;
pub mod service;
pub mod store;
pub mod time;

use projections::projector::ProjectorConfig;

use crate::service::Services;
use crate::store::Store;

/// Opens the store `database_url` names, applies migrations and starts the projector, then
/// readies the services: the access cache following the log, the default backend seeded, the
/// first user created, housekeeping running, unfinished migrations resumed.
pub async fn open(
    database_url: &str,
    projection_wait: std::time::Duration,
    bootstrap: &service::Bootstrap,
    upstreams: service::guard::Upstreams,
    tuning: limits::Tuning,
) -> anyhow::Result<Services> {
    let store = Store::open(database_url, ProjectorConfig::default()).await?;
    let services = Services::new_tuned(store, projection_wait, upstreams, tuning);
    services.follow_access_changes().await.map_err(|e| anyhow::anyhow!("reading the access checkpoints: {e}"))?;
    services.seed_default_backend().await.map_err(|e| anyhow::anyhow!("seeding the default secret backend: {e}"))?;
    services.bootstrap(bootstrap).await.map_err(|e| anyhow::anyhow!("creating the first user: {e}"))?;
    services.spawn_housekeeping();
    migration::Runner::new(services.clone())
        .resume_unfinished_migrations()
        .await
        .map_err(|e| anyhow::anyhow!("resuming unfinished migrations: {e}"))?;
    Ok(services)
}

/// The database URL for `database_url` and `data_dir`: the URL when one is given, else a SQLite
/// file in the (private) data directory.
pub fn database_url(database_url: Option<&str>, data_dir: &std::path::Path) -> anyhow::Result<String> {
    if let Some(url) = database_url {
        return Ok(url.to_owned());
    }
    files::private_directory(data_dir)?;
    Ok(format!("sqlite://{}", data_dir.join("mcpd.db").display()))
}

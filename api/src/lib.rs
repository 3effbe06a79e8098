//! mcpd: the HTTP API over the event-sourced store. `main.rs` only parses the command line and
//! calls [`serve`]; tests build the same [`App`] and router.
#![forbid(unsafe_code)]

pub mod auth;
pub mod backends;
pub mod bearer;
pub mod config;
pub mod context;
pub mod denials;
pub mod error;
pub mod event_repository;
pub mod files;
pub mod http;
pub mod inference;
pub mod limits;
pub mod metrics;
pub mod migration;
pub mod offline;
pub mod openapi;
pub mod request_scope;
pub mod serve;
pub mod service;
pub mod snapshots;
pub mod store;
pub mod time;
pub mod tls;

use anyhow::Context;
use projections::projector::ProjectorConfig;
use tokio::net::TcpListener;

use crate::config::ServeArgs;
use crate::service::Services;
use crate::store::Store;

/// A ready application: store open, migrations applied, projector running, default backend
/// seeded.
#[derive(Clone)]
pub struct App {
    pub services: Services,
}

impl App {
    pub async fn open(
        database_url: &str,
        projection_wait: std::time::Duration,
        bootstrap: &service::Bootstrap,
    ) -> anyhow::Result<App> {
        Self::open_with(database_url, projection_wait, bootstrap, Default::default()).await
    }

    /// [`App::open`], with the upstreams an Llm may send its key to beside the official ones.
    pub async fn open_with(
        database_url: &str,
        projection_wait: std::time::Duration,
        bootstrap: &service::Bootstrap,
        upstreams: service::guard::Upstreams,
    ) -> anyhow::Result<App> {
        Self::open_tuned(database_url, projection_wait, bootstrap, upstreams, Default::default()).await
    }

    /// [`App::open_with`], with the limits `tuning` sets.
    pub async fn open_tuned(
        database_url: &str,
        projection_wait: std::time::Duration,
        bootstrap: &service::Bootstrap,
        upstreams: service::guard::Upstreams,
        tuning: limits::Tuning,
    ) -> anyhow::Result<App> {
        let store = Store::open(database_url, ProjectorConfig::default()).await?;
        let services = Services::new_tuned(store, projection_wait, upstreams, tuning);
        services.follow_access_changes().await.map_err(|e| anyhow::anyhow!("reading the access checkpoints: {e}"))?;
        services
            .seed_default_backend()
            .await
            .map_err(|e| anyhow::anyhow!("seeding the default secret backend: {e}"))?;
        services.bootstrap(bootstrap).await.map_err(|e| anyhow::anyhow!("creating the first user: {e}"))?;
        services.spawn_housekeeping();
        migration::Runner::new(services.clone())
            .resume_unfinished_migrations()
            .await
            .map_err(|e| anyhow::anyhow!("resuming unfinished migrations: {e}"))?;
        Ok(App { services })
    }

    pub fn router(&self) -> axum::Router {
        http::router(self.services.clone())
    }
}

/// The database URL `args` name, defaulting to a SQLite file in the data directory.
pub fn database_url(args: &ServeArgs) -> anyhow::Result<String> {
    if let Some(url) = &args.database_url {
        return Ok(url.clone());
    }
    files::private_directory(&args.data_dir)?;
    Ok(format!("sqlite://{}", args.data_dir.join("mcpd.db").display()))
}

/// Runs mcpd until SIGINT or SIGTERM; requests in flight finish first.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let url = database_url(&args)?;
    // The same care whichever the store: the directory holds the admin's token either way.
    files::private_directory(&args.data_dir)?;
    files::private_file(&args.data_dir.join("admin-token"))?;
    let tls = args.tls_files().map(tls::Tls::load).transpose()?;
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    if tls.is_none() && !local.ip().is_loopback() {
        tracing::warn!(
            listen = %local,
            "serving plain HTTP on a non-loopback address: tokens and secret values cross the network \
             unencrypted; use --tls-cert and --tls-key, or a TLS-terminating proxy on the same host"
        );
    }
    let bootstrap = service::Bootstrap {
        token: args.bootstrap_token.clone().map(secrecy::SecretString::from),
        token_file: Some(args.data_dir.join("admin-token")),
        // The embedded default on this machine: point mcpctl at it, unless it is configured.
        client_config: if args.database_url.is_none() {
            client_config_path().map(|path| (path, format!("{scheme}://{local}")))
        } else {
            None
        },
    };
    let upstreams = service::guard::Upstreams::new(&args.allowed_upstreams)?;
    let app = App::open_tuned(&url, args.projection_wait(), &bootstrap, upstreams, args.tuning()).await?;
    match args.warmup.as_str() {
        "all" => app.services.warm_in_background(None),
        "none" => {}
        tier => app.services.warm_in_background(domain::llm::Tier::parse(tier)),
    }
    reload_on_hangup(tls.clone())?;
    metrics::handle();
    if let Some(address) = args.metrics_listen {
        let listener =
            TcpListener::bind(address).await.with_context(|| format!("listening on {address} for metrics"))?;
        tracing::info!(listen = %listener.local_addr()?, "serving /metrics without authentication");
        let router = http::metrics_router(app.services.clone());
        // Ends with the process; scrapes need no draining.
        tokio::spawn(serve::run(listener, router, args.limits(), None, std::future::pending()));
    }
    tracing::info!(listen = %local, scheme, database = %store::redact_url(&url), "mcpd is serving");
    let services = app.services.clone();
    let stop = async move {
        shutdown_signal().await;
        // Streams end now with a final line, so that draining need not wait for them.
        services.shutdown.send_replace(true);
    };
    serve::run(listener, app.router(), args.limits(), tls, stop).await;
    // A migration running here stops at its next batch boundary and is handed over.
    let grace = args.limits().shutdown_grace;
    if tokio::time::timeout(grace, app.services.migration_slot.lock()).await.is_err() {
        tracing::warn!(
            "a migration did not reach a batch boundary within the grace period; it resumes where its last batch committed"
        );
    }
    app.services.store.projector.shutdown();
    tracing::info!("mcpd stopped");
    Ok(())
}

/// Where mcpctl reads its config: `$MCPCTL_CONFIG`, else `~/.mcpctl/config.json`.
fn client_config_path() -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("MCPCTL_CONFIG") {
        return Some(path.into());
    }
    std::env::home_dir().map(|home| home.join(".mcpctl").join("config.json"))
}

/// SIGHUP reloads the TLS files; a failed reload keeps the configuration in use. Without TLS
/// there is nothing to reload, and SIGHUP (a `systemctl reload`) must not stop mcpd either.
fn reload_on_hangup(tls: Option<std::sync::Arc<tls::Tls>>) -> anyhow::Result<()> {
    let mut hangup =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).context("listening for SIGHUP")?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            let Some(tls) = &tls else {
                tracing::info!("SIGHUP: nothing to reload (mcpd serves without --tls-cert)");
                continue;
            };
            match tls.reload() {
                Ok(()) => tracing::info!("SIGHUP: reloaded the TLS certificate, key and client CA"),
                Err(e) => {
                    tracing::error!("SIGHUP: the TLS files could not be reloaded, keeping the previous ones: {e:#}")
                }
            }
        }
    });
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}

/// The configuration of the fuzzed unit tests: seeded (the seed is printed;
/// `MCPD_PROPTEST_SEED=<seed>` replays a run) and short unless `MCPD_PROPTEST_CASES` asks for
/// more (docs/reliability.md).
#[cfg(test)]
pub(crate) fn fuzz_config(name: &str) -> proptest::test_runner::Config {
    let seed = std::env::var("MCPD_PROPTEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(7, |d| d.as_nanos() as u64)
    });
    let cases = std::env::var("MCPD_PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256);
    eprintln!("{name}: proptest seed {seed}, {cases} cases (replay with MCPD_PROPTEST_SEED={seed})");
    proptest::test_runner::Config {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

//! mcpd, the server: configuration and start-up, TLS, the router (every route's facts declared
//! where it is registered), the middleware, authentication, the HTTP handlers, watch, OpenAPI,
//! metrics and the inference proxy, over the `app` crate's services. `main.rs` only parses the
//! command line and calls [`serve`]; tests build the same [`App`] and router.
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod http;
pub mod inference;
pub mod metrics;
pub mod middleware;
pub mod offline;
pub mod openapi;
pub mod router;
pub mod routes;
pub mod serve;
pub mod tls;

use anyhow::Context;
use app::service::{self, Services};
use app::{files, store};
use tokio::net::TcpListener;

use crate::config::ServeArgs;

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
        tuning: app::limits::Tuning,
    ) -> anyhow::Result<App> {
        Ok(App { services: app::open(database_url, projection_wait, bootstrap, upstreams, tuning).await? })
    }

    pub fn router(&self) -> axum::Router {
        router::router(self.services.clone())
    }
}

/// The database URL `args` name, defaulting to a SQLite file in the data directory.
pub fn database_url(args: &ServeArgs) -> anyhow::Result<String> {
    app::database_url(args.database_url.as_deref(), &args.data_dir)
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
        "all" => inference::warm_in_background(&app.services, None),
        "none" => {}
        tier => inference::warm_in_background(&app.services, domain::llm::Tier::parse(tier)),
    }
    reload_on_hangup(tls.clone())?;
    metrics::handle();
    if let Some(address) = args.metrics_listen {
        let listener =
            TcpListener::bind(address).await.with_context(|| format!("listening on {address} for metrics"))?;
        tracing::info!(listen = %listener.local_addr()?, "serving /metrics without authentication");
        let router = router::metrics_router(app.services.clone());
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

//! mcpd's command line. Every flag also reads an `MCPD_…` environment variable; `mcpd --help`
//! is the configuration reference.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "mcpd", version, about = "The control plane for LLM credentials")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the REST API.
    Serve(Box<ServeArgs>),
    /// Check, rebuild or verify the read models directly on the database, without a running
    /// server: for recovery when mcpd cannot start. Safe beside running replicas.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
}

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Each read model's checkpoint, lag, last error and latest rebuild.
    Status(StoreArgs),
    /// Replay the event log into fresh tables and swap them in.
    Rebuild {
        /// Read models to rebuild (llms, secrets, secret_backends, migrations, users, tokens, rbac).
        names: Vec<String>,
        /// Rebuild every read model.
        #[arg(long, conflicts_with = "names")]
        all: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Replay the event log in memory and compare it with the tables; exits 1 on any difference.
    Verify {
        /// Read models to verify; all when none are named.
        names: Vec<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Where the database is, as `mcpd serve` takes it.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Database holding the event log and read models: `sqlite://PATH` or `postgres://…`.
    /// Defaults to the SQLite file in the data directory.
    #[arg(long, env = "MCPD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Directory of the embedded SQLite database.
    #[arg(long, env = "MCPD_DATA_DIR", default_value = "./mcpd-data")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "MCPD_LISTEN", default_value = "127.0.0.1:3100")]
    pub listen: SocketAddr,

    /// PEM certificate chain to serve TLS with (with --tls-key). Without it mcpd speaks plain
    /// HTTP, which only suits a loopback address. SIGHUP reloads the certificate, key and client
    /// CA; connections already open keep theirs.
    #[arg(long, env = "MCPD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "MCPD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA whose client certificates authenticate their holders: the certificate's common
    /// name is the user, as a bearer token of that user would be. Needs --tls-cert.
    #[arg(long, env = "MCPD_CLIENT_CA", requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,

    /// Database holding the event log and read models: `sqlite://PATH` or `postgres://…`.
    /// Defaults to a SQLite file in the data directory.
    #[arg(long, env = "MCPD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Directory for the embedded SQLite database and the admin's token file (on any store);
    /// created 0700 on first start, and made private again at every start.
    #[arg(long, env = "MCPD_DATA_DIR", default_value = "./mcpd-data")]
    pub data_dir: PathBuf,

    /// How long a write waits for the read models to show it; past that it answers 202 Accepted.
    #[arg(long, env = "MCPD_PROJECTION_WAIT_MS", default_value_t = 5000)]
    pub projection_wait_ms: u64,

    /// The first admin's token, for an empty store (at least 32 characters); a random one is
    /// made otherwise. Either way it is written to `admin-token` in the data directory.
    #[arg(long, env = "MCPD_BOOTSTRAP_TOKEN", hide_env_values = true)]
    pub bootstrap_token: Option<String>,

    /// Seconds a client has to send a request's headers; also how long an idle keep-alive
    /// connection waits for its next request. A slow client is cut off, not waited for.
    #[arg(long, env = "MCPD_HEADER_READ_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub header_read_timeout_secs: u64,

    /// Connections open at once. When all are taken, a new one closes the oldest connection that
    /// has not sent a request yet; with none such, it waits in the kernel's accept queue.
    #[arg(long, env = "MCPD_MAX_CONNECTIONS", default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,

    /// Seconds requests in flight get to finish after SIGTERM or SIGINT; connections still
    /// open then are closed.
    #[arg(long, env = "MCPD_SHUTDOWN_GRACE_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub shutdown_grace_secs: u64,

    /// An Llm endpoint (its origin and path: that path and everything below it) that anyone who
    /// may edit an Llm may send its key and its callers' requests to, besides each provider's
    /// official endpoint. Repeat, or separate with commas.
    #[arg(long = "allowed-upstream", env = "MCPD_ALLOWED_UPSTREAMS", value_delimiter = ',')]
    pub allowed_upstreams: Vec<String>,

    /// Warm Llms up at start, in the background (readiness does not wait): `fast` (the fast
    /// tier), `heavy`, `all`, or `none`.
    #[arg(long, env = "MCPD_WARMUP", default_value = "none", value_parser = ["none", "fast", "heavy", "all"])]
    pub warmup: String,

    /// A second address serving only `/metrics`, without authentication: for Prometheus on a
    /// trusted network. On the main listener `/metrics` needs a token holding `view:metrics`.
    #[arg(long, env = "MCPD_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Requests per second each token may make (0: no limit); past it and its burst, 429 with
    /// Retry-After.
    #[arg(long, env = "MCPD_RATE_LIMIT", default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub rate_limit: u32,

    /// Requests a token may make at once above --rate-limit before it is held to the rate.
    #[arg(long, env = "MCPD_RATE_BURST", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate_burst: u32,

    /// Seconds a request that is not a stream may take (0: no limit). Past it a request that
    /// has changed nothing yet is answered 503; one that has begun a change is finished.
    #[arg(long, env = "MCPD_REQUEST_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub request_timeout_secs: u64,

    /// Streams (watches, streamed inference) open at once; past it, 503 with Retry-After.
    #[arg(long, env = "MCPD_MAX_STREAMS", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_streams: u64,

    /// Streams one user may hold open at once (watches and streamed answers); past it, 429.
    #[arg(long, env = "MCPD_MAX_STREAMS_PER_USER", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_streams_per_user: u64,

    /// Seconds a streamed answer may last; it is then ended with an error event (watches are
    /// not ended: they resume from their last line).
    #[arg(long, env = "MCPD_MAX_STREAM_SECS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub max_stream_secs: u64,

    /// Look-ups finding no token that one peer address may cause per second (0: no limit),
    /// with a burst of five times as many; past it, tokens from there that mcpd does not hold
    /// in memory are refused 429 before the database is asked, until the allowance is back.
    #[arg(long, env = "MCPD_TOKEN_LOOKUP_RATE", default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub token_lookup_rate: u32,

    /// Hours an Idempotency-Key is remembered: a retry within them gets the first answer.
    #[arg(long, env = "MCPD_IDEMPOTENCY_KEY_HOURS", default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=720))]
    pub idempotency_key_hours: u64,

    /// Log format on stderr: `text` or `json`.
    #[arg(long, env = "MCPD_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

impl ServeArgs {
    pub fn tls_files(&self) -> Option<crate::tls::TlsFiles> {
        Some(crate::tls::TlsFiles {
            certificate: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.client_ca.clone(),
        })
    }

    pub fn projection_wait(&self) -> Duration {
        Duration::from_millis(self.projection_wait_ms)
    }

    pub fn tuning(&self) -> app::limits::Tuning {
        app::limits::Tuning {
            rate: std::num::NonZeroU32::new(self.rate_limit)
                .map(|rate| (rate, std::num::NonZeroU32::new(self.rate_burst).unwrap_or(rate))),
            request_timeout: (self.request_timeout_secs > 0).then(|| Duration::from_secs(self.request_timeout_secs)),
            max_streams: self.max_streams as usize,
            max_streams_per_user: self.max_streams_per_user as usize,
            max_stream_duration: Duration::from_secs(self.max_stream_secs),
            token_lookups: std::num::NonZeroU32::new(self.token_lookup_rate)
                .zip(std::num::NonZeroU32::new(self.token_lookup_rate.saturating_mul(5))),
            idempotency_lifetime: Duration::from_secs(self.idempotency_key_hours * 3600),
            stream_grace: Duration::from_secs(self.shutdown_grace_secs).saturating_sub(Duration::from_secs(1)),
        }
    }

    pub fn limits(&self) -> crate::serve::Limits {
        crate::serve::Limits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            max_connections: self.max_connections as usize,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
        }
    }
}

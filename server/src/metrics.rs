//! Prometheus metrics, through the `metrics` facade and `metrics-exporter-prometheus`. Counters
//! and histograms are recorded where things happen (the request middleware, the event
//! repository, the backend drivers, the inference proxy); gauges that describe state (read-model
//! lag, migrations, the database pool) are read when scraped. `GET /metrics` needs the
//! `view:metrics` operation; `--metrics-listen` serves it without authentication on an address
//! of its own, for scrapers on a trusted network.
//!
//! Label sets stay bounded: a series nobody updated for [`IDLE`] leaves the exposition (an
//! Llm's, once it is deleted), and the `llm` label takes a bounded set of names
//! ([`crate::inference::labels`]).

use std::sync::OnceLock;
use std::time::Duration;

pub use crate::inference::labels::IDLE;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use app::context::RequestContext;
use app::error::ApiError;
use app::service::Services;
use domain::rbac::Operation;

/// Histogram buckets in seconds: from a cached read (sub-millisecond) to a slow provider.
const BUCKETS: [f64; 16] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use. Histograms are drained every few seconds so
/// that an unscraped mcpd does not keep every sample.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .expect("buckets are given")
            .idle_timeout(metrics_util::MetricKindMask::COUNTER | metrics_util::MetricKindMask::HISTOGRAM, Some(IDLE))
            .build_recorder();
        let handle = recorder.handle();
        // Fails only when another recorder was installed first; this one then records nothing.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was installed before mcpd's; /metrics will be empty");
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let upkeep = handle.clone();
            runtime.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    upkeep.run_upkeep();
                }
            });
        }
        handle
    })
}

/// `GET /metrics` on the main listener: for holders of `view:metrics`.
pub async fn scrape(
    State(s): State<Services>,
    axum::Extension(ctx): axum::Extension<RequestContext>,
) -> Result<Response, ApiError> {
    ctx.require_operation(Operation::ViewMetrics)?;
    Ok(render(&s).await)
}

/// `GET /metrics` on `--metrics-listen`: no authentication, for a trusted network.
pub async fn scrape_open(State(s): State<Services>) -> Response {
    render(&s).await
}

/// The exposition, after reading the gauges that describe state now.
async fn render(s: &Services) -> Response {
    observe(s).await;
    let text = handle().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// Sets the state gauges; what cannot be read now (the database is down) keeps its last value
/// and is logged, and the scrape still answers.
async fn observe(s: &Services) {
    let (size, idle, max) = s.pool_gauges();
    let (size, idle) = (f64::from(size), idle as f64);
    metrics::gauge!("mcpd_db_pool_connections", "state" => "in_use").set(size - idle);
    metrics::gauge!("mcpd_db_pool_connections", "state" => "idle").set(idle);
    metrics::gauge!("mcpd_db_pool_max_connections").set(f64::from(max));
    let models = projections::read_models::ReadModel::ALL;
    match s.projection_status(&models).await {
        Ok(statuses) => {
            for status in statuses {
                let name = status.name;
                metrics::gauge!("mcpd_projection_lag_events", "read_model" => name).set(status.lag_events as f64);
                metrics::gauge!("mcpd_projection_lag_seconds", "read_model" => name).set(status.lag_seconds);
                let stopped = if status.last_error.is_some() { 1.0 } else { 0.0 };
                metrics::gauge!("mcpd_projection_stopped", "read_model" => name).set(stopped);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: reading the read models' status failed"),
    }
    match s.migration_runs().await {
        Ok(migrations) => {
            use wire::migration::MigrationStatus;
            let shown = [MigrationStatus::Running, MigrationStatus::Completed, MigrationStatus::Failed];
            let mut by_status: std::collections::BTreeMap<&'static str, f64> =
                shown.iter().map(|s| (s.as_str(), 0.0)).collect();
            for migration in migrations {
                let state = &migration.spec;
                if let Some(count) = by_status.get_mut(state.status.as_str()) {
                    *count += 1.0;
                }
                // Progress of the runs under way; a finished run's series keep their last values.
                if state.status == MigrationStatus::Running {
                    for (outcome, count) in
                        [("moved", state.moved), ("skipped", state.skipped), ("failed", state.failed)]
                    {
                        metrics::gauge!("mcpd_migration_secrets", "migration" => migration.name.clone(), "outcome" => outcome)
                            .set(count as f64);
                    }
                }
            }
            for (status, count) in by_status {
                metrics::gauge!("mcpd_migrations", "status" => status).set(count);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: reading the migrations failed"),
    }
}

/// One request served: by method, route template and status, with its duration.
pub fn request(method: &axum::http::Method, route: &str, status: u16, elapsed: Duration) {
    use axum::http::Method;
    // A bounded set: any client may send any method token, and each would be a new series.
    let method = match *method {
        Method::GET | Method::POST | Method::PUT | Method::DELETE | Method::PATCH | Method::HEAD | Method::OPTIONS => {
            method.as_str().to_owned()
        }
        _ => "other".to_owned(),
    };
    let route = route.to_owned();
    metrics::histogram!("mcpd_http_request_duration_seconds", "method" => method.clone(), "route" => route.clone())
        .record(elapsed.as_secs_f64());
    metrics::counter!("mcpd_http_requests_total", "method" => method, "route" => route, "status" => status.to_string())
        .increment(1);
}

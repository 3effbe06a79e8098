//! Benchmark: audit queries on an event log of 1,000,000 events, on SQLite and PostgreSQL: a
//! page of 100 rows newest first filtered by kind and name, by actor, by event type and by kind,
//! beside an unindexed full scan of the same table measured in the same run.
//!
//! Run: `cargo bench -p server --bench audit` (PostgreSQL too when one answers at DATABASE_URL or
//! 127.0.0.1:5432). Record the figures in docs/performance.md.

use std::time::{Duration, Instant};

use projections::audit::{AuditFilter, Direction};
use server::App;
use testkit::{StoreKind, TestDb};

const EVENTS: i64 = 1_000_000;
const RUNS: usize = 21;

async fn fill(app: &App, kind: StoreKind) {
    // 10,000 Llms with 100 events each, by 50 actors; a third of them updates.
    let sql = match kind {
        StoreKind::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {EVENTS}) \
             INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             SELECT 'llm', 'llm-' || (i % 10000), i / 10000 + 1, \
                    CASE WHEN i % 3 = 0 THEN 'LlmUpdated' ELSE 'LlmCreated' END, '1', '{{\"LlmUpdated\":{{}}}}', \
                    json_object('actor', 'user-' || (i % 50), 'request_id', 'r-' || i) FROM n"
        ),
        StoreKind::Postgres => format!(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             SELECT 'llm', 'llm-' || (i % 10000), i / 10000 + 1, \
                    CASE WHEN i % 3 = 0 THEN 'LlmUpdated' ELSE 'LlmCreated' END, '1', '{{\"LlmUpdated\":{{}}}}'::json, \
                    json_build_object('actor', 'user-' || (i % 50), 'request_id', 'r-' || i) \
             FROM generate_series(1, {EVENTS}) AS i"
        ),
    };
    sqlx::query(&sql).execute(&app.services.store.db.pool).await.expect("the log fills");
    let analyze = if kind == StoreKind::Postgres { "ANALYZE events" } else { "ANALYZE" };
    sqlx::query(analyze).execute(&app.services.store.db.pool).await.expect("statistics");
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

async fn time(app: &App, filter: &AuditFilter) -> (Duration, usize) {
    let mut times = Vec::new();
    let mut rows = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        rows =
            projections::audit::query(&app.services.store.db, filter, Direction::Older(None), 100).await.unwrap().len();
        times.push(started.elapsed());
    }
    (median(times), rows)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut kinds = vec![StoreKind::Sqlite];
        if sqlx::postgres::PgPoolOptions::new().connect(&testkit::postgres_admin_url()).await.is_ok() {
            kinds.push(StoreKind::Postgres);
        }
        for kind in kinds {
            let db = TestDb::new(kind).await;
            let app = App::open(&db.url, Duration::from_secs(30), &Default::default()).await.expect("mcpd starts");
            let started = Instant::now();
            fill(&app, kind).await;
            println!("{kind:?}: {EVENTS} events written in {:.1}s", started.elapsed().as_secs_f64());
            let mut scans = Vec::new();
            for _ in 0..3 {
                let started = Instant::now();
                sqlx::query("SELECT COUNT(*) AS n FROM events WHERE event_version = 'none'")
                    .fetch_one(&app.services.store.db.pool)
                    .await
                    .unwrap();
                scans.push(started.elapsed());
            }
            println!(
                "{kind:?}: baseline, full scan of the events table (no index): {:>8.1} ms",
                median(scans).as_secs_f64() * 1e3
            );
            let filters = [
                (
                    "kind + name",
                    AuditFilter {
                        aggregate_type: Some("llm".into()),
                        aggregate_id: Some("llm-4242".into()),
                        ..Default::default()
                    },
                ),
                ("actor", AuditFilter { actor: Some("user-7".into()), ..Default::default() }),
                ("event type", AuditFilter { event_type: Some("LlmUpdated".into()), ..Default::default() }),
                ("kind", AuditFilter { aggregate_type: Some("llm".into()), ..Default::default() }),
                (
                    "actor + kind + name",
                    AuditFilter {
                        actor: Some("user-42".into()),
                        aggregate_type: Some("llm".into()),
                        aggregate_id: Some("llm-4242".into()),
                        ..Default::default()
                    },
                ),
            ];
            for (label, filter) in filters {
                let (took, rows) = time(&app, &filter).await;
                println!(
                    "{kind:?}: audit page of {rows:>3} rows by {label:<20} median {:>8.2} ms",
                    took.as_secs_f64() * 1e3
                );
            }
        }
    });
}

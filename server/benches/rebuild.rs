//! Benchmark: rebuilding every read model from an event log of 1,000,000 events, on SQLite and
//! PostgreSQL, beside the rate at which the same harness (the same sqlx pool) reads every row
//! of that events table with a plain SELECT, measured in the same run. Target: the rebuild
//! reaches at least a quarter of the raw scan rate.
//!
//! The log: 10,000 Llms with 100 events each (one LlmCreated, 99 LlmUpdated with changing
//! specs), interleaved as a busy catalogue would write them.
//!
//! Run: `cargo bench -p server --bench rebuild` (PostgreSQL too when one answers at DATABASE_URL
//! or 127.0.0.1:5432). Record the figures in docs/performance.md.

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use projections::Database;
use projections::read_models::ReadModel;
use testkit::{StoreKind, TestDb};

const EVENTS: i64 = 1_000_000;
const LLMS: i64 = 10_000;
const ROUNDS: usize = 3;

async fn fill(db: &Database, kind: StoreKind) {
    let sql = match kind {
        StoreKind::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {EVENTS} - 1) \
             INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             SELECT 'llm', 'llm-' || (i % {LLMS}), i / {LLMS} + 1, \
                    CASE WHEN i < {LLMS} THEN 'LlmCreated' ELSE 'LlmUpdated' END, '2', \
                    json_object(CASE WHEN i < {LLMS} THEN 'LlmCreated' ELSE 'LlmUpdated' END, json_object('spec', \
                      json_object('type', 'anthropic', 'model', 'claude-haiku-4-5', \
                                  'tier', CASE WHEN i % 2 = 0 THEN 'fast' ELSE 'heavy' END, \
                                  'description', 'revision ' || (i / {LLMS}), \
                                  'apiKeyRef', json_object('name', 'key-' || (i % 100), 'key', 'API_KEY'), \
                                  'extra', json_object('team', 'team-' || (i % 7))))), \
                    json_object('actor', 'user-' || (i % 50), 'request_id', 'r-' || i) FROM n"
        ),
        StoreKind::Postgres => format!(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             SELECT 'llm', 'llm-' || (i % {LLMS}), i / {LLMS} + 1, \
                    CASE WHEN i < {LLMS} THEN 'LlmCreated' ELSE 'LlmUpdated' END, '2', \
                    json_build_object(CASE WHEN i < {LLMS} THEN 'LlmCreated' ELSE 'LlmUpdated' END, json_build_object('spec', \
                      json_build_object('type', 'anthropic', 'model', 'claude-haiku-4-5', \
                                  'tier', CASE WHEN i % 2 = 0 THEN 'fast' ELSE 'heavy' END, \
                                  'description', 'revision ' || (i / {LLMS}), \
                                  'apiKeyRef', json_build_object('name', 'key-' || (i % 100), 'key', 'API_KEY'), \
                                  'extra', json_build_object('team', 'team-' || (i % 7))))), \
                    json_build_object('actor', 'user-' || (i % 50), 'request_id', 'r-' || i) \
             FROM generate_series(0, {EVENTS} - 1) AS i"
        ),
    };
    sqlx::query(&sql).execute(&db.pool).await.expect("the log fills");
    let analyze = if kind == StoreKind::Postgres { "ANALYZE events" } else { "ANALYZE" };
    sqlx::query(analyze).execute(&db.pool).await.expect("statistics");
}

/// The baseline: every row of the events table, every column the rebuild reads, through the
/// same pool. No ordering, no filter, no decoding beyond sqlx's own.
async fn raw_scan(db: &Database, kind: StoreKind) -> (Duration, u64) {
    let sql = match kind {
        StoreKind::Sqlite => {
            "SELECT position, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, \
             recorded_at FROM events"
        }
        StoreKind::Postgres => {
            "SELECT position, aggregate_type, aggregate_id, sequence, event_type, event_version, payload::text, \
             metadata::text, recorded_at::text FROM events"
        }
    };
    let started = Instant::now();
    let mut rows = sqlx::query(sql).fetch(&db.pool);
    let mut n = 0u64;
    while rows.try_next().await.expect("a row").is_some() {
        n += 1;
    }
    (started.elapsed(), n)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut kinds = vec![StoreKind::Sqlite];
        if sqlx::postgres::PgPoolOptions::new().connect(&testkit::postgres_admin_url()).await.is_ok() {
            kinds.push(StoreKind::Postgres);
        }
        for kind in kinds {
            let store = TestDb::new(kind).await;
            // The database alone, no projector: nothing else reads the log while this measures.
            let db = app::store::open_database(&store.url).await.expect("the store opens");
            let started = Instant::now();
            fill(&db, kind).await;
            println!("{kind:?}: {EVENTS} events written in {:.1}s", started.elapsed().as_secs_f64());
            let (mut raw, mut rebuilt) = (Vec::new(), Vec::new());
            for round in 1..=ROUNDS {
                let (took, rows) = raw_scan(&db, kind).await;
                assert_eq!(rows, EVENTS as u64);
                let raw_rate = rows as f64 / took.as_secs_f64();
                let done = projections::rebuild::rebuild(&db, &ReadModel::ALL, "bench", |_| {}).await.expect("rebuild");
                assert_eq!(done.events, EVENTS as u64);
                assert_eq!(done.rows["llms"], LLMS as u64);
                let rate = done.events as f64 / done.elapsed.as_secs_f64();
                println!(
                    "{kind:?}: round {round}: raw scan {raw_rate:>9.0} events/s ({:.2}s), rebuild {rate:>9.0} events/s ({:.2}s), ratio {:.2}",
                    took.as_secs_f64(),
                    done.elapsed.as_secs_f64(),
                    rate / raw_rate
                );
                raw.push(raw_rate);
                rebuilt.push(rate);
            }
            let (raw, rebuilt) = (median(raw), median(rebuilt));
            println!(
                "{kind:?}: median raw scan {raw:.0} events/s, median rebuild {rebuilt:.0} events/s, ratio {:.2} (target 0.25)",
                rebuilt / raw
            );
            // The rebuilt tables are what a replay says they should be.
            let differences = projections::rebuild::verify(&db, &ReadModel::ALL, |_| {}).await.expect("verify");
            assert!(differences.is_empty(), "{differences:?}");
        }
    });
}

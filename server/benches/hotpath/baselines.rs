//! The baselines the hot path is measured against, in the same run: pgbench on a table shaped
//! like `events`, raw SQLite with mcpd's settings, and a typed `PgPool` beside `sqlx::Any`.

use std::time::{Duration, Instant};

use super::seconds;

/// An event as mcpd stores one for an Llm's creation, for the baselines.
const PAYLOAD: &str = r#"{"LlmCreated":{"spec":{"type":"ollama","model":"llama3","url":"http://127.0.0.1:11434","tier":"fast","description":"a benchmark llm","extra":{"numCtx":"8192"}}}}"#;

const METADATA: &str = r#"{"actor":"admin","tokenId":"tok-0123456789abcdef","requestId":"0123456789abcdef0123456789abcdef","source":"api","sourceAddress":"127.0.0.1"}"#;

/// pgbench's transactions/s running `script` with `clients` connections.
pub(crate) fn pgbench(url: &str, clients: usize, script: &str) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("script.sql");
    std::fs::write(&file, script).unwrap();
    let out = std::process::Command::new("pgbench")
        .args(["-n", "--random-seed=rand", "-c", &clients.to_string(), "-j", &clients.to_string()])
        .args(["-T", &seconds().to_string(), "-f"])
        .arg(&file)
        .arg(url)
        .output()
        .expect("pgbench runs (Debian: apt-get install postgresql-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pgbench failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    text.lines()
        .find_map(|l| l.strip_prefix("tps = ").and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()))
        .unwrap_or_else(|| panic!("no tps in pgbench's output: {text}"))
}

/// pgbench's p99 latency running `script` at `rate` transactions/s with `clients` connections,
/// measured from each transaction's scheduled start (pgbench's own rule under `--rate`).
pub(crate) fn pgbench_p99(url: &str, clients: usize, rate: f64, script: &str) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("script.sql");
    std::fs::write(&file, script).unwrap();
    let prefix = dir.path().join("log");
    let out = std::process::Command::new("pgbench")
        .args(["-n", "-c", &clients.to_string(), "-j", "1", "-T", &seconds().to_string()])
        .arg(format!("--rate={rate:.0}"))
        .arg("-l")
        .arg(format!("--log-prefix={}", prefix.display()))
        .arg("-f")
        .arg(&file)
        .arg(url)
        .output()
        .expect("pgbench runs");
    assert!(out.status.success(), "pgbench failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut latencies: Vec<u64> = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("log") {
            let text = std::fs::read_to_string(&path).unwrap();
            latencies.extend(text.lines().filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok()));
        }
    }
    latencies.sort_unstable();
    Duration::from_micros(latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)])
}

/// A table shaped like `events`, for the INSERT baseline.
pub(crate) async fn events_like_table(url: &str) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::query(
        "CREATE TABLE bench_events (aggregate_type text NOT NULL, aggregate_id text NOT NULL, sequence bigint NOT NULL, \
         event_type text NOT NULL, event_version text NOT NULL, payload json NOT NULL, metadata json NOT NULL, \
         position bigserial, transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(), \
         PRIMARY KEY (aggregate_type, aggregate_id, sequence))",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("CREATE SEQUENCE bench_ids").execute(&pool).await.unwrap();
    pool.close().await;
}

/// `tag` keeps each run's names apart.
pub(crate) fn insert_script(tag: &str) -> String {
    format!(
        "INSERT INTO bench_events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, \
         metadata) VALUES ('llm', '{tag}-' || nextval('bench_ids'), 1, 'LlmCreated', '2', '{PAYLOAD}', '{METADATA}');\n"
    )
}

/// Raw SQLite: the same INSERT + COMMIT, one at a time, on a file opened as mcpd opens its own.
pub(crate) async fn raw_sqlite_inserts(path: &std::path::Path) -> f64 {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::query(
        "CREATE TABLE events (aggregate_type TEXT NOT NULL, aggregate_id TEXT NOT NULL, sequence INTEGER NOT NULL, \
         event_type TEXT NOT NULL, event_version TEXT NOT NULL, payload TEXT NOT NULL, metadata TEXT NOT NULL, \
         position INTEGER PRIMARY KEY AUTOINCREMENT, UNIQUE (aggregate_type, aggregate_id, sequence))",
    )
    .execute(&pool)
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(seconds());
    let started = Instant::now();
    let mut n = 0u64;
    while Instant::now() < deadline {
        sqlx::query("INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) VALUES ('llm', ?, 1, 'LlmCreated', '2', ?, ?)")
            .bind(format!("b-{n}"))
            .bind(PAYLOAD)
            .bind(METADATA)
            .execute(&pool)
            .await
            .unwrap();
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// One primary-key read of an Llm's row, `n` times one after another: through `sqlx::Any` (as
/// the read models query) and through a typed `PgPool`, decoding every column either way.
pub(crate) async fn any_against_typed(url: &str, name: &str, n: usize) -> (Duration, Duration) {
    use sqlx::Row;
    const SQL: &str = "SELECT name, type, model, url, tier, description, api_key_secret, api_key_key, extra, \
                       resource_version, created_at, updated_at FROM llms WHERE name = $1";
    sqlx::any::install_default_drivers();
    let any = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(url).await.unwrap();
    let typed = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(url).await.unwrap();
    let started = Instant::now();
    for _ in 0..n {
        let row = sqlx::query(SQL).bind(name).fetch_one(&any).await.unwrap();
        let _: (String, String, i64) = (row.get(0), row.get(8), row.get(9));
    }
    let through_any = started.elapsed() / n as u32;
    let started = Instant::now();
    for _ in 0..n {
        let row = sqlx::query(SQL).bind(name).fetch_one(&typed).await.unwrap();
        let _: (String, String, i64) = (row.get(0), row.get(8), row.get(9));
    }
    (through_any, started.elapsed() / n as u32)
}

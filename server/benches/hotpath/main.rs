//! Benchmark: mcpd's hot path over HTTP (creates and reads of one Llm), each beside what the
//! database itself does for the same work, measured in the same run at the same concurrency:
//! - creates/s on PostgreSQL against pgbench running a single-row INSERT + COMMIT of an
//!   event-sized row into a table shaped like `events`;
//! - creates/s on SQLite (the embedded default) against the same INSERT + COMMIT through sqlx
//!   on a file opened with mcpd's settings (WAL, synchronous=FULL);
//! - GETs of one Llm/s on PostgreSQL against pgbench's primary-key SELECT of its read-model row.
//!
//! mcpd runs in this process behind its real listener. The throughput clients are `wrk` (a C
//! load generator, one thread, HTTP keep-alive), as pgbench is a C client of PostgreSQL: both
//! share the machine with what they measure, and neither spends much of it. (Until issue 26 the
//! clients were reqwest loops in this process, which took a third of a core of their own.)
//!
//! Run: `cargo bench -p server --bench hotpath` (or `scripts/bench`, which runs every
//! benchmark); `BENCH_SECONDS` sets each measurement's length (default 5).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use server::App;
use testkit::{StoreKind, TestDb};

mod baselines;
// Each benchmark reads what it reports of a run.
#[allow(dead_code)]
#[path = "../common/wrk.rs"]
mod common;
use baselines::{any_against_typed, events_like_table, insert_script, pgbench, pgbench_p99, raw_sqlite_inserts};

/// Whether scenario `name` runs: all of them unless `BENCH_ONLY` names some (comma-separated:
/// creates, p99, gets, history, list, memory, sqlite).
fn wanted(name: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| only.split(',').any(|s| s.trim() == name))
}

fn seconds() -> u64 {
    std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5)
}

/// mcpd on `db`, served on a loopback port; returns its base URL.
async fn serve(db: &TestDb) -> (App, String) {
    let bootstrap =
        app::service::Bootstrap { token: Some(testkit::ADMIN_TOKEN.to_owned().into()), ..Default::default() };
    let app = App::open(&db.url, Duration::from_secs(10), &bootstrap).await.expect("mcpd starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let limits = server::serve::Limits {
        header_read_timeout: Duration::from_secs(10),
        max_connections: 512,
        shutdown_grace: Duration::from_secs(1),
    };
    tokio::spawn(server::serve::run(listener, app.router(), limits, None, std::future::pending()));
    (app, base)
}

/// Requests per second and the 99th percentile latency of a measurement.
struct Load {
    rate: f64,
    p99: Duration,
}

/// `wrk` on `url` with `clients` keep-alive connections for the measurement's length, each
/// request made by the Lua `request` function given (a GET of `url` without one).
async fn wrk(url: &str, clients: usize, request: Option<String>) -> Load {
    let token = testkit::ADMIN_TOKEN;
    let lua = match request {
        Some(body) => format!("counter = 0\nrequest = function()\n  counter = counter + 1\n{body}\nend\n"),
        None => format!("wrk.headers[\"Authorization\"] = \"Bearer {token}\"\n"),
    };
    let measured = common::run(url, 1, clients, seconds(), lua).await;
    Load { rate: measured.rate, p99: measured.p99 }
}

fn llm(name: &str) -> serde_json::Value {
    json!({"name": name, "type": "ollama", "model": "llama3", "tier": "fast", "url": "http://127.0.0.1:11434",
           "description": "a benchmark llm", "extra": {"numCtx": "8192"}})
}

async fn creates(base: &str, clients: usize, tag: &str) -> Load {
    let body = llm("NAME").to_string().replace('"', "\\\"").replace("NAME", &format!("{tag}-\" .. counter .. \""));
    let token = testkit::ADMIN_TOKEN;
    let request = format!(
        "  return wrk.format(\"POST\", \"/api/v1/llms\", {{[\"Content-Type\"] = \"application/json\", \
         [\"Authorization\"] = \"Bearer {token}\"}}, \"{body}\")"
    );
    wrk(base, clients, Some(request)).await
}

/// Llm `name`, created unless an earlier scenario did (`BENCH_ONLY=gets` runs alone).
async fn ensure_llm(base: &str, name: &str) {
    let created = reqwest::Client::new()
        .post(format!("{base}/api/v1/llms"))
        .bearer_auth(testkit::ADMIN_TOKEN)
        .json(&llm(name))
        .send()
        .await
        .unwrap()
        .status();
    assert!(created == 201 || created == 409, "creating {name}: {created}");
}

async fn gets(base: &str, clients: usize, name: &str) -> Load {
    wrk(&format!("{base}/api/v1/llms/{name}"), clients, None).await
}

/// mcpd's p99 create latency at `rate` creates/s over `clients` connections, each request
/// timed from its scheduled start (so a late start counts, as pgbench counts it).
async fn creates_at(base: &str, clients: usize, rate: f64, tag: &str) -> Duration {
    let http = reqwest::Client::new();
    let interval = Duration::from_secs_f64(clients as f64 / rate);
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_secs(seconds());
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (http, base, tag) = (http.clone(), base.to_owned(), tag.to_owned());
        // Clients start spread over one interval, so the rate is even.
        let first = started + interval.mul_f64(client as f64 / clients as f64);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut scheduled = first;
            let mut n = 0;
            while scheduled < deadline {
                tokio::time::sleep_until(scheduled).await;
                let name = format!("{tag}-{client}-{n}");
                let r = http
                    .post(format!("{base}/api/v1/llms"))
                    .bearer_auth(testkit::ADMIN_TOKEN)
                    .json(&llm(&name))
                    .send()
                    .await;
                assert_eq!(r.unwrap().status(), 201);
                latencies.push(scheduled.elapsed());
                scheduled += interval;
                n += 1;
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    latencies.sort();
    latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)]
}

fn row(scenario: &str, ours: f64, baseline: &str, base: f64, extra: &str) {
    println!("| {scenario} | {ours:.0} | {baseline} | {base:.0} | **{:.2}** | {extra} |", ours / base);
}

fn row_latency(scenario: &str, ours: Duration, baseline: &str, base: Duration) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| {scenario} | {:.2} ms | {baseline} | {:.2} ms | **{:.2}×** | latency, lower is better |",
        ms(ours),
        ms(base),
        ms(ours) / ms(base)
    );
}

/// `n` users, each with a token and a role binding, created over HTTP by 16 clients.
async fn crowd(base: &str, n: usize) -> Duration {
    let started = Instant::now();
    let base = base.to_owned();
    let http = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (base, http, next) = (base.clone(), http.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let user = format!("u-{i:05}");
                let post = |path: &str, body: serde_json::Value| {
                    http.post(format!("{base}{path}")).bearer_auth(testkit::ADMIN_TOKEN).json(&body).send()
                };
                assert_eq!(post("/api/v1/users", json!({"name": user})).await.unwrap().status(), 201);
                let binding = json!({"name": format!("b-{i:05}"), "role": "viewer", "users": [user]});
                assert_eq!(post("/api/v1/rolebindings", binding).await.unwrap().status(), 201);
                assert_eq!(post("/api/v1/tokens", json!({"user": user})).await.unwrap().status(), 201);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

/// The median latency of 200 updates of an llm with 10,000 events, and of one with 10.
async fn history(base: &str) -> (Duration, Duration) {
    let http = reqwest::Client::new();
    let put = async |name: &str, i: usize| {
        let mut body = llm(name);
        body["description"] = json!(format!("edit {i}"));
        let started = Instant::now();
        let r =
            http.put(format!("{base}/api/v1/llms/{name}")).bearer_auth(testkit::ADMIN_TOKEN).json(&body).send().await;
        assert_eq!(r.unwrap().status(), 200);
        started.elapsed()
    };
    for name in ["long-history", "short-history"] {
        let r =
            http.post(format!("{base}/api/v1/llms")).bearer_auth(testkit::ADMIN_TOKEN).json(&llm(name)).send().await;
        assert_eq!(r.unwrap().status(), 201);
    }
    for i in 0..9_999 {
        put("long-history", i).await;
    }
    for i in 0..9 {
        put("short-history", i).await;
    }
    let median = async |name: &str| {
        let mut times = Vec::new();
        for i in 0..200 {
            times.push(put(name, 20_000 + i).await);
        }
        times.sort();
        times[times.len() / 2]
    };
    let long = median("long-history").await;
    let short = median("short-history").await;
    (long, short)
}

/// All of 100,000 llms through the API in pages of 500, and the same rows by one SELECT,
/// serialised as JSON, in the same process.
async fn list_all(db: &TestDb, base: &str) -> (Duration, Duration) {
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::query(
        "INSERT INTO llms (name, type, model, url, tier, description, api_key_secret, api_key_key, extra, \
         resource_version, created_at, updated_at) SELECT 'list-' || lpad(i::text, 6, '0'), 'ollama', 'llama3', \
         'http://127.0.0.1:11434', 'fast', 'a listed llm', NULL, NULL, '{}', 1, '2026-12-01T00:00:00Z', \
         '2026-12-01T00:00:00Z' FROM generate_series(1, 100000) i",
    )
    .execute(&pool)
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let started = Instant::now();
    let (mut count, mut next) = (0, None::<String>);
    loop {
        let mut url = format!("{base}/api/v1/llms?limit=500");
        if let Some(token) = &next {
            url.push_str(&format!("&continue={token}"));
        }
        // Read as a client that only walks the list would: every item parsed, none kept.
        let page: wire::List<serde::de::IgnoredAny> =
            http.get(url).bearer_auth(testkit::ADMIN_TOKEN).send().await.unwrap().json().await.unwrap();
        count += page.items.len();
        match page.metadata.and_then(|m| m.continue_token) {
            Some(token) => next = Some(token),
            None => break,
        }
    }
    let ours = started.elapsed();
    assert!(count >= 100_000, "{count}");
    let started = Instant::now();
    let rows = sqlx::query(
        "SELECT name, type, model, url, tier, description, api_key_secret, api_key_key, extra, resource_version, \
         created_at, updated_at FROM llms ORDER BY name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let docs: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            use sqlx::Row;
            json!({"name": r.get::<String, _>(0), "type": r.get::<String, _>(1), "model": r.get::<String, _>(2),
                   "url": r.get::<Option<String>, _>(3), "tier": r.get::<String, _>(4),
                   "description": r.get::<String, _>(5), "extra": r.get::<String, _>(8),
                   "resourceVersion": r.get::<i64, _>(9), "createdAt": r.get::<String, _>(10),
                   "updatedAt": r.get::<String, _>(11)})
        })
        .collect();
    let text = serde_json::to_string(&docs).unwrap();
    let raw = started.elapsed();
    assert!(text.len() > 1_000_000);
    (ours, raw)
}

/// The resident memory of process `pid`, from /proc.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc");
    kb * 1024
}

/// mcpd's resident memory as a process of its own (the release binary): idle after start, and
/// after a client walked a list of 100,000 llms through it.
async fn memory() -> (u64, u64) {
    let db = TestDb::new(StoreKind::Postgres).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let data = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mcpd"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database-url", &db.url])
        .arg("--data-dir")
        .arg(data.path())
        .env("MCPD_BOOTSTRAP_TOKEN", testkit::ADMIN_TOKEN)
        .env("MCPCTL_CONFIG", data.path().join("client.json"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("mcpd starts");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let started = Instant::now();
    while http.get(format!("{base}/readyz")).send().await.map_or(true, |r| !r.status().is_success()) {
        assert!(started.elapsed() < Duration::from_secs(60), "mcpd did not get ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A few requests first, so idle means "serving", not "never touched".
    for _ in 0..10 {
        http.get(format!("{base}/api/v1/llms")).bearer_auth(testkit::ADMIN_TOKEN).send().await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss(child.id());
    let _ = list_all(&db, &base).await;
    let after = rss(child.id());
    let _ = child.kill();
    let _ = child.wait();
    (idle, after)
}

#[tokio::main]
async fn main() {
    println!("hot path, {} s per measurement, release build", seconds());
    println!("| scenario | mcpd | baseline (same run) | baseline | ratio | notes |");
    println!("|---|---|---|---|---|---|");
    let db = TestDb::new(StoreKind::Postgres).await;
    events_like_table(&db.url).await;
    let (app, base) = serve(&db).await;
    let peak = postgres_creates(&db, &base).await;
    if wanted("p99") {
        write_p99(&db, &base, peak).await;
    }
    if wanted("gets") {
        postgres_gets(&db, &base).await;
    }
    // Updates of an aggregate with a long history against one with a short one.
    if wanted("history") {
        let (long, short) = history(&base).await;
        row_latency("update of an llm with 10,000 events, PostgreSQL", long, "the same with 10 events", short);
    }
    // A list of 100,000 through the paginated API against one SELECT of the same rows.
    if wanted("list") {
        let (ours, raw) = list_all(&db, &base).await;
        row_latency("list 100,000 llms, pages of 500, PostgreSQL", ours, "one SELECT of the rows, serialised", raw);
    }
    drop(app);
    // mcpd's memory, as a process of its own.
    if wanted("memory") {
        let (idle, after) = memory().await;
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        println!(
            "| mcpd RSS idle / after listing 100,000 llms (its own process, PostgreSQL) | {:.1} MiB / {:.1} MiB | — | — | — | target < 30 MiB / < 200 MiB |",
            mib(idle),
            mib(after)
        );
    }
    if wanted("sqlite") {
        sqlite_creates().await;
    }
}

/// PostgreSQL creates at 1 and 16 clients against pgbench's INSERT + COMMIT; the peak rate.
async fn postgres_creates(db: &TestDb, base: &str) -> f64 {
    let mut peak = 0.0;
    for clients in [1, 16].into_iter().filter(|_| wanted("creates") || wanted("p99")) {
        let raw = pgbench(&db.url, clients, &insert_script(&format!("c{clients}")));
        let ours = creates(base, clients, &format!("c{clients}")).await;
        peak = ours.rate;
        row(
            &format!("creates/s, {clients} client(s), PostgreSQL"),
            ours.rate,
            "pgbench INSERT+COMMIT of an event-sized row",
            raw,
            &format!("p99 {:.1} ms", ours.p99.as_secs_f64() * 1000.0),
        );
    }
    peak
}

/// Write latency at half mcpd's peak rate, against pgbench's at the same rate.
async fn write_p99(db: &TestDb, base: &str, peak: f64) {
    let rate = peak / 2.0;
    let raw = pgbench_p99(&db.url, 16, rate, &insert_script("r16"));
    let ours = creates_at(base, 16, rate, "r16").await;
    println!(
        "| write p99 at {rate:.0}/s (half the peak), 16 clients, PostgreSQL | {:.2} ms | pgbench p99 at the same rate | {:.2} ms | **{:.2}×** | latency, lower is better; target ≤ 3× |",
        ours.as_secs_f64() * 1000.0,
        raw.as_secs_f64() * 1000.0,
        ours.as_secs_f64() / raw.as_secs_f64()
    );
}

/// GET one Llm at 16 clients against pgbench's primary-key SELECT; what sqlx::Any costs on
/// that read; and the same GET in a crowded store.
async fn postgres_gets(db: &TestDb, base: &str) {
    ensure_llm(base, "c1-0").await;
    let raw = pgbench(
        &db.url,
        16,
        "SELECT name, type, model, url, tier, description, api_key_secret, api_key_key, extra, resource_version, created_at, updated_at FROM llms WHERE name = 'c1-0';\n",
    );
    let ours = gets(base, 16, "c1-0").await;
    row(
        "GET one llm/s, 16 clients, PostgreSQL",
        ours.rate,
        "pgbench primary-key SELECT of the row",
        raw,
        &format!("p99 {:.1} ms", ours.p99.as_secs_f64() * 1000.0),
    );
    let (through_any, typed) = any_against_typed(&db.url, "c1-0", 20_000).await;
    println!(
        "| one primary-key read through sqlx::Any, PostgreSQL | {:.1} µs | the same through a typed PgPool | {:.1} µs | **{:.2}×** | latency, one connection, sequential |",
        through_any.as_secs_f64() * 1e6,
        typed.as_secs_f64() * 1e6,
        through_any.as_secs_f64() / typed.as_secs_f64()
    );
    // The same GET with 10,000 users, tokens and role bindings in the store.
    let crowded = crowd(base, 10_000).await;
    let ours_crowded = gets(base, 16, "c1-0").await;
    row(
        "GET one llm/s with 10,000 users, tokens and bindings, PostgreSQL",
        ours_crowded.rate,
        "the same GET with 1 of each (above)",
        ours.rate,
        &format!("seeded in {crowded:.0?}"),
    );
}

/// SQLite creates at 1 client against raw SQLite's INSERT + COMMIT.
async fn sqlite_creates() {
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_sqlite_inserts(&dir.path().join("raw.db")).await;
    let db = TestDb::new(StoreKind::Sqlite).await;
    let (_app, base) = serve(&db).await;
    let ours = creates(&base, 1, "s1").await;
    row(
        "creates/s, 1 client, SQLite (embedded default)",
        ours.rate,
        "raw SQLite INSERT+COMMIT, WAL, synchronous=FULL",
        raw,
        &format!("p99 {:.1} ms", ours.p99.as_secs_f64() * 1000.0),
    );
}

//! Benchmark: secret migration throughput, plaintext -> OpenBao, for 1,000 secrets, beside the
//! raw OpenBao KV v2 write rate measured by the same harness in the same run, at the same
//! concurrency (one request at a time: a migration moves one secret at a time).
//!
//! Run: `cargo bench -p api --bench migration` (needs `bao`; PostgreSQL is measured too when
//! one answers at DATABASE_URL or 127.0.0.1:5432). Record the figures in docs/performance.md.

use std::time::{Duration, Instant};

use api::App;
use api::context::RequestContext;
use api::migration::{MigrationRequest, Progress};
use serde_json::json;
use testkit::openbao::OpenBao;
use testkit::{StoreKind, TestDb};

const SECRETS: usize = 1000;

fn value(i: usize) -> String {
    format!("sk-bench-{i:05}-{}", "x".repeat(40))
}

/// Raw KV v2 writes, one after another, as mcpd would make them (check-and-set, new paths).
async fn raw_writes(bao: &OpenBao, token: &str, prefix: &str) -> Duration {
    let http = reqwest::Client::new();
    let started = Instant::now();
    for i in 0..SECRETS {
        let body = json!({"data": {"API_KEY": value(i)}, "options": {"cas": 0}});
        let response = http
            .post(format!("{}/v1/secret/data/{prefix}/s-{i:05}", bao.addr))
            .header("X-Vault-Token", token)
            .json(&body)
            .send()
            .await
            .expect("OpenBao answers");
        assert!(response.status().is_success(), "raw write {i}: {}", response.status());
    }
    started.elapsed()
}

async fn migration(bao: &OpenBao, kind: StoreKind) -> Duration {
    let db = TestDb::new(kind).await;
    let app = App::open(&db.url, Duration::from_secs(30)).await.expect("mcpd starts");
    let s = &app.services;
    let ctx = RequestContext::system("bench");
    let prefix = format!("bench-{}/", kind as u8);
    s.create_secret(&ctx, json!({"name": "bao-token", "data": {"token": bao.root_token}}), false).await.unwrap();
    let backend = json!({"name": "bao", "type": "openbao", "config": {"url": bao.addr, "pathPrefix": prefix,
                         "tokenSecretRef": {"name": "bao-token", "key": "token"}}});
    s.create_secret_backend(&ctx, backend, false).await.unwrap();
    for i in 0..SECRETS {
        s.create_secret(&ctx, json!({"name": format!("s-{i:05}"), "data": {"API_KEY": value(i)}}), false)
            .await
            .unwrap();
    }
    let request =
        MigrationRequest { from: "default".into(), to: "bao".into(), names: None, keep_source: false, dry_run: false };
    let started = Instant::now();
    let mut progress = s.start_migration(&ctx, request).await.unwrap();
    let mut moved = 0;
    while let Some(line) = progress.recv().await {
        if let Progress::Finished { status, moved: m, .. } = line {
            assert_eq!(status, "completed");
            moved = m;
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(moved as usize, SECRETS);
    elapsed
}

fn rate(d: Duration) -> f64 {
    SECRETS as f64 / d.as_secs_f64()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let bao = OpenBao::start();
    runtime.block_on(async {
        // Warm-up: OpenBao's first thousand writes are slower than the next.
        raw_writes(&bao, &bao.root_token, "warm-up").await;
        let mut kinds = vec![StoreKind::Sqlite];
        let admin = testkit::postgres_admin_url();
        if sqlx::postgres::PgPoolOptions::new().connect(&admin).await.is_ok() {
            kinds.push(StoreKind::Postgres);
        }
        for kind in kinds {
            // The baseline right before each migration: the machine's load drifts.
            let raw = raw_writes(&bao, &bao.root_token, &format!("raw-{kind:?}")).await;
            println!("raw OpenBao KV v2 writes:          {SECRETS} in {:>7.2}s = {:>7.1}/s", raw.as_secs_f64(), rate(raw));
            let took = migration(&bao, kind).await;
            println!(
                "migration plaintext -> OpenBao ({kind:?}): {SECRETS} in {:>7.2}s = {:>7.1}/s   ratio to raw writes: {:.2}",
                took.as_secs_f64(),
                rate(took),
                rate(took) / rate(raw)
            );
        }
    });
}

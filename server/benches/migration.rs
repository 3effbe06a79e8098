//! Benchmark: secret migration throughput, plaintext -> OpenBao, for 1,000 secrets, beside the
//! raw OpenBao KV v2 write rate measured by the same harness in the same run, at the same
//! concurrency (one request at a time: a migration moves one secret at a time).
//!
//! Run: `cargo bench -p server --bench migration` (needs `bao`; PostgreSQL is measured too when
//! one answers at DATABASE_URL or 127.0.0.1:5432). Record the figures in docs/performance.md.

use std::time::{Duration, Instant};

use app::context::RequestContext;
use app::migration::{MigrationRequest, Progress};
use app::service::{ResourceKind, SecretBackends, Secrets};
use serde_json::json;
use server::App;
use testkit::openbao::OpenBao;
use testkit::{StoreKind, TestDb};

const SECRETS: usize = 1000;
const ROUNDS: usize = 5;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

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

async fn migration(bao: &OpenBao, kind: StoreKind, round: usize) -> Duration {
    let db = TestDb::new(kind).await;
    let app = App::open(&db.url, Duration::from_secs(30), &Default::default()).await.expect("mcpd starts");
    let s = &app.services;
    let ctx = RequestContext::system("bench");
    let prefix = format!("bench-{}-{round}/", kind as u8);
    Secrets::create(s, &ctx, json!({"name": "bao-token", "data": {"token": bao.root_token}}), false).await.unwrap();
    let backend = json!({"name": "bao", "type": "openbao", "config": {"url": bao.addr, "pathPrefix": prefix,
                         "tokenSecretRef": {"name": "bao-token", "key": "token"}}});
    SecretBackends::create(s, &ctx, backend, false).await.unwrap();
    for i in 0..SECRETS {
        Secrets::create(s, &ctx, json!({"name": format!("s-{i:05}"), "data": {"API_KEY": value(i)}}), false)
            .await
            .unwrap();
    }
    let request =
        MigrationRequest { from: "default".into(), to: "bao".into(), names: None, keep_source: false, dry_run: false };
    let started = Instant::now();
    let mut progress = app::migration::Runner::new(s.clone()).start_migration(&ctx, request).await.unwrap();
    let mut moved = 0;
    while let Some(line) = progress.recv().await {
        if let Progress::Finished { status, moved: m, .. } = line {
            assert_eq!(status, app::migration::Finish::Completed);
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
            // Rounds of (baseline, migration) back to back, the median of each reported: the
            // machine is shared and one round can be off by a factor of two.
            let mut raws = Vec::new();
            let mut migrations = Vec::new();
            let mut ratios = Vec::new();
            for round in 0..ROUNDS {
                let raw = raw_writes(&bao, &bao.root_token, &format!("raw-{kind:?}-{round}")).await;
                let took = migration(&bao, kind, round).await;
                println!(
                    "round {round} ({kind:?}): raw writes {:>7.1}/s, migration {:>7.1}/s, ratio {:.2}",
                    rate(raw),
                    rate(took),
                    rate(took) / rate(raw)
                );
                raws.push(rate(raw));
                migrations.push(rate(took));
                ratios.push(rate(took) / rate(raw));
            }
            println!("raw OpenBao KV v2 writes ({kind:?} rounds):   median {:>7.1}/s", median(&mut raws));
            println!(
                "migration plaintext -> OpenBao ({kind:?}): median {:>7.1}/s   median ratio to raw writes: {:.2}",
                median(&mut migrations),
                median(&mut ratios)
            );
        }
    });
}

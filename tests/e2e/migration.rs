//! Migrations against the real mcpd binary and a real OpenBao: SIGKILL at random points while
//! 300 secrets move, restarts that resume the run, and the end state checked value by value.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::{AnyConnection, Connection, Row};

use crate::ctl::Ctl;
use crate::support::{StoreKind, TestServer};

testkit::on_both_stores!(killed_mid_migration_resumes_and_loses_nothing);

/// A pseudo-random number in `range`, printed so a failing run can be told apart.
fn random_point(range: std::ops::Range<u64>) -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    let point = range.start + nanos % (range.end - range.start);
    eprintln!("random point in {range:?}: {point}");
    point
}

async fn setup_bao(server: &TestServer) -> String {
    let bao = tokio::task::block_in_place(testkit::openbao::shared);
    setup_bao_at(server, &bao.addr).await
}

/// [`setup_bao`], the backend reaching the shared OpenBao at `url` (through a proxy, say).
async fn setup_bao_at(server: &TestServer, url: &str) -> String {
    let bao = tokio::task::block_in_place(testkit::openbao::shared);
    let prefix = format!("kill{}/", random_point(0..u64::MAX / 2));
    let token = bao.token_for_prefix(&prefix).await;
    let (status, body) = server.post("/api/v1/secrets", json!({"name": "bao-token", "data": {"token": token}})).await;
    assert_eq!(status, 201, "{body}");
    let backend = json!({"name": "bao", "type": "openbao", "config": {"url": url, "pathPrefix": prefix,
                         "tokenSecretRef": {"name": "bao-token", "key": "token"}}});
    let (status, body) = server.post("/api/v1/secretbackends", backend).await;
    assert_eq!(status, 201, "{body}");
    prefix
}

/// Every one of `secrets` reads back its value from OpenBao, and was flipped exactly once.
async fn all_moved_once(server: &TestServer, secrets: &[(String, String)]) {
    let (_, all) = server.get("/api/v1/secrets?reveal=true").await;
    let all: std::collections::HashMap<String, Value> =
        all["items"].as_array().unwrap().iter().map(|s| (s["name"].as_str().unwrap().to_owned(), s.clone())).collect();
    for (name, value) in secrets {
        assert_eq!(all[name]["backend"], "bao", "{name}");
        assert_eq!(all[name]["data"]["API_KEY"], *value, "{name} lost its value");
    }
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(&server.store_url()).await.unwrap();
    let flips = sqlx::query(
        "SELECT aggregate_id, COUNT(*) AS n FROM events WHERE event_type = 'SecretMigrated' GROUP BY aggregate_id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(flips.len(), secrets.len());
    assert!(flips.iter().all(|r| r.get::<i64, _>("n") == 1), "a secret was flipped twice");
}

/// 300 secrets `{prefix}-000…` on the default backend, each with a value of its own:
/// (name, value).
async fn seed_secrets(server: &TestServer, prefix: &str, label: &str) -> Vec<(String, String)> {
    let mut secrets = Vec::new();
    for i in 0..300 {
        let (name, value) = (format!("{prefix}-{i:03}"), format!("{label}-{i}-{}", random_point(0..1_000_000)));
        let (status, _) = server.post("/api/v1/secrets", json!({"name": name, "data": {"API_KEY": value}})).await;
        assert_eq!(status, 201);
        secrets.push((name, value));
    }
    secrets
}

/// Starts migrating every secret from the default backend to `bao`: the progress stream.
async fn migrate_to_bao(server: &TestServer) -> reqwest::Response {
    server
        .http
        .post(server.url("/api/v1/secrets/migrate"))
        .bearer_auth(server.admin_token())
        .json(&json!({"from": "default", "to": "bao"}))
        .send()
        .await
        .unwrap()
}

async fn run_status(server: &TestServer, run: &str) -> Value {
    server.get(&format!("/api/v1/migrations/{run}")).await.1
}

async fn killed_mid_migration_resumes_and_loses_nothing(kind: StoreKind) {
    let mut server = TestServer::start(kind).await;
    setup_bao(&server).await;
    let secrets = seed_secrets(&server, "k", "original").await;

    // Kill 1: while the client is still reading the progress stream.
    let first_kill = random_point(20..150);
    let mut response = migrate_to_bao(&server).await;
    let (mut buffer, mut run, mut migrated) = (String::new(), String::new(), 0u64);
    'reading: while let Some(chunk) = response.chunk().await.unwrap() {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find('\n') {
            let line: Value = serde_json::from_str(&buffer[..end]).unwrap();
            buffer.drain(..=end);
            if line["type"] == "started" {
                run = line["run"].as_str().unwrap().to_owned();
            }
            if line["outcome"] == "migrated" {
                migrated += 1;
                if migrated == first_kill {
                    server.kill9();
                    break 'reading;
                }
            }
        }
    }
    eprintln!("killed after {migrated} secrets (run {run})");
    assert_eq!(migrated, first_kill, "the run was still going when it was killed");

    // Kill 2: during the resumption mcpd starts by itself.
    server.spawn().await;
    let second_kill = first_kill + random_point(25..100);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = run_status(&server, &run).await;
        if status["status"] != "running" || status["moved"].as_u64().unwrap_or(0) >= second_kill {
            eprintln!("second kill at {} moved, status {}", status["moved"], status["status"]);
            break;
        }
        assert!(Instant::now() < deadline, "the resumed run made no progress: {status}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill9();

    // Then let it finish.
    server.spawn().await;
    let deadline = Instant::now() + Duration::from_secs(180);
    let finished = loop {
        let status = run_status(&server, &run).await;
        if status["status"] != "running" {
            break status;
        }
        assert!(Instant::now() < deadline, "the run did not finish: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(finished["status"], "completed", "{finished}");
    assert!(finished["resumed"].as_u64().unwrap() >= 1, "{finished}");
    let history: Vec<&str> =
        finished["history"].as_array().unwrap().iter().map(|e| e["eventType"].as_str().unwrap()).collect();
    assert_eq!(history.first(), Some(&"MigrationStarted"));
    assert!(history.contains(&"MigrationResumed"), "the interruption and resumption are on record: {history:?}");
    assert_eq!(history.last(), Some(&"MigrationCompleted"));

    // Every secret reads back its original value, from OpenBao; exactly one effective flip each.
    all_moved_once(&server, &secrets).await;

    // No value left on the source.
    let mut conn = AnyConnection::connect(&server.store_url()).await.unwrap();
    let left = sqlx::query("SELECT COUNT(*) AS n FROM plaintext_secret_values WHERE secret <> 'bao-token'")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get::<i64, _>("n");
    assert_eq!(left, 0, "values left on the source backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcpctl_migrates_and_shows_the_runs() {
    let server = TestServer::start(StoreKind::Sqlite).await;
    setup_bao(&server).await;
    let ctl = Ctl::new(&server);
    for i in 0..3 {
        ctl.run(&["create", "secret", &format!("s{i}"), "--data", &format!("K=v{i}")]).ok();
    }
    let dry = ctl.run(&["migrate", "secrets", "--from", "default", "--to", "bao", "--dry-run"]).ok();
    assert!(dry.stdout.contains("secret/s0 would migrate default -> bao"), "{}", dry.stdout);
    assert!(dry.stdout.contains("secret/bao-token skipped: holds the token of secretbackend bao"), "{}", dry.stdout);
    assert!(dry.stdout.ends_with("would migrate 3, skipped 1, failed 0 (dry run)\n"), "{}", dry.stdout);

    let run = ctl.run(&["migrate", "secrets", "--from", "default", "--to", "bao", "--names", "s0,s2"]).ok();
    let lines = run.lines();
    assert_eq!(&lines[..2], ["secret/s0 migrated default -> bao", "secret/s2 migrated default -> bao"]);
    assert!(lines[2].starts_with("migrated 2, skipped 0, failed 0 (run run-"), "{}", run.stdout);
    let id = lines[2].trim_end_matches(')').rsplit(' ').next().unwrap().to_owned();

    let table = ctl.run(&["get", "migrations"]).ok().stdout;
    assert!(
        table.lines().next().unwrap().starts_with("NAME") && table.contains(&id) && table.contains("completed"),
        "{table}"
    );
    let described = ctl.run(&["describe", "migration", &id]).ok().stdout;
    for expected in ["Status:", "completed", "MigrationStarted", "MigrationProgressed", "\"s0\"", "MigrationCompleted"]
    {
        assert!(described.contains(expected), "{expected} missing:\n{described}");
    }
    let refused = ctl.run(&["migrate", "secrets", "--from", "default", "--to", "nowhere"]);
    assert_eq!(refused.code, 1);
    assert_eq!(refused.stderr, "Error: secretbackend \"nowhere\" not found\n");
}

/// Two replicas on one PostgreSQL: one migration at a time across them, and when the replica
/// running a migration is killed, the other finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surviving_replica_finishes_the_migration_of_a_killed_one() {
    let mut first = TestServer::start(StoreKind::Postgres).await;
    let second = first.replica().await;
    setup_bao(&first).await;
    let secrets = seed_secrets(&first, "k", "replicated").await;

    let mut response = migrate_to_bao(&first).await;
    let (mut buffer, mut run, mut migrated, mut refused) = (String::new(), String::new(), 0u64, None);
    'reading: while let Some(chunk) = response.chunk().await.unwrap() {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find('\n') {
            let line: Value = serde_json::from_str(&buffer[..end]).unwrap();
            buffer.drain(..=end);
            if line["type"] == "started" {
                run = line["run"].as_str().unwrap().to_owned();
            }
            if line["outcome"] == "migrated" {
                migrated += 1;
                if migrated == 20 {
                    // The other replica will not start a second migration meanwhile.
                    refused =
                        Some(second.post("/api/v1/secrets/migrate", json!({"from": "default", "to": "bao"})).await);
                }
                if migrated == 40 {
                    first.kill9();
                    break 'reading;
                }
            }
        }
    }
    let (status, body) = refused.expect("the run got to 20 secrets");
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("another mcpd replica"), "{body}");
    assert_eq!(migrated, 40, "the run was still going when its replica was killed");

    let killed = Instant::now();
    let finished = loop {
        let status = run_status(&second, &run).await;
        if status["status"] != "running" {
            break status;
        }
        assert!(killed.elapsed() < Duration::from_secs(120), "nobody finished the run: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("the surviving replica finished the run {:?} after the kill", killed.elapsed());
    assert_eq!(finished["status"], "completed", "{finished}");
    assert_eq!(finished["resumed"], 1, "{finished}");
    let resumed =
        finished["history"].as_array().unwrap().iter().find(|e| e["eventType"] == "MigrationResumed").unwrap();
    assert_eq!(resumed["actor"], "mcpd", "{resumed}");
    assert_eq!(resumed["detail"]["reason"], "the mcpd running it stopped", "{resumed}");

    all_moved_once(&second, &secrets).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_a_running_migration_over_at_a_batch_boundary() {
    let server = TestServer::start(StoreKind::Sqlite).await;
    // OpenBao behind a proxy the test stalls, so that the run is still running when SIGTERM
    // arrives, whatever the machine's speed (it could otherwise finish first).
    let bao = tokio::task::block_in_place(testkit::openbao::shared);
    let (proxy, proxied) = testkit::proxy::Proxy::in_front_of(&bao.addr).await;
    setup_bao_at(&server, &proxied).await;
    let log = server.current_log();
    let secrets = seed_secrets(&server, "t", "term").await;
    let mut response = migrate_to_bao(&server).await;
    let (mut buffer, mut run, mut migrated, mut finished) = (String::new(), String::new(), 0u64, None);
    let mut stopping = None;
    let mut server = Some(server);
    while let Some(chunk) = response.chunk().await.expect("the progress stream is not cut off") {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find('\n') {
            let line: Value = serde_json::from_str(&buffer[..end]).unwrap();
            buffer.drain(..=end);
            match line["type"].as_str() {
                Some("started") => run = line["run"].as_str().unwrap().to_owned(),
                Some("finished") => finished = Some(line),
                _ if line["outcome"] == "migrated" => migrated += 1,
                _ => {}
            }
            if migrated == 60 && stopping.is_none() {
                // The run waits on OpenBao mid-batch; SIGTERM; OpenBao answers again once mcpd
                // says it is shutting down, and the run stops at the end of its batch.
                proxy.set(testkit::proxy::Mode::Stall);
                let mut server = server.take().unwrap();
                stopping = Some(tokio::task::spawn_blocking(move || (server.terminate(), server)));
                let deadline = Instant::now() + Duration::from_secs(60);
                while !std::fs::read_to_string(&log).unwrap_or_default().contains("shutting down") {
                    assert!(Instant::now() < deadline, "mcpd did not start shutting down");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                proxy.set(testkit::proxy::Mode::Up);
            }
        }
    }
    let end = finished.expect("the stream ends with its final line");
    assert_eq!(end["status"], "interrupted", "{end}");
    assert!(end["error"].as_str().unwrap().contains("resumes"), "{end}");
    let (status, mut server) = stopping.expect("SIGTERM was sent").await.unwrap();
    assert!(status.success(), "{status}");
    let moved_before = end["moved"].as_u64().unwrap();
    assert!((60..300).contains(&moved_before), "stopped part-way: {end}");
    let settled = moved_before + end["skipped"].as_u64().unwrap();
    assert_eq!(settled % 50, 0, "at a batch boundary: {end}");

    // The next start resumes it; it completes with every value where it belongs.
    server.spawn().await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        let status = run_status(&server, &run).await;
        if status["status"] != "running" {
            break status;
        }
        assert!(Instant::now() < deadline, "the run did not finish: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["status"], "completed", "{done}");
    let history: Vec<&str> =
        done["history"].as_array().unwrap().iter().map(|e| e["eventType"].as_str().unwrap()).collect();
    assert!(history.contains(&"MigrationResumed"), "{history:?}");
    all_moved_once(&server, &secrets).await;
}

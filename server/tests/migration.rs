//! migrate secrets between plaintext and a real OpenBao: values survive both directions, the
//! source copies go (or stay with keepSource), a dry run changes nothing, a concurrent update is
//! not lost, and an OpenBao outage stops a run cleanly so that a re-run finishes it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use projections::Position;
use serde_json::{Value, json};
use sqlx::Row;
use testkit::openbao::OpenBao;
use tower::ServiceExt;

use crate::support::{StoreKind, TestApp};

testkit::on_both_stores!(
    two_hundred_secrets_go_to_openbao_and_back,
    names_keep_source_and_dry_run,
    a_concurrent_update_during_a_migration_is_not_lost,
    an_openbao_outage_stops_the_run_and_a_rerun_finishes_it,
    a_failed_source_delete_is_recorded_and_retried_by_the_next_run,
    without_list_permission_a_migration_still_moves_and_never_overwrites_foreign_data,
);

fn shared_bao() -> &'static OpenBao {
    tokio::task::block_in_place(testkit::openbao::shared)
}

/// An app with backend `bao` at `url` (a prefix of its own on `server`).
async fn app_with_bao(kind: StoreKind, server: &OpenBao, url: &str) -> (TestApp, String) {
    let t = TestApp::start(kind).await;
    let prefix = format!("m{}/", uuid::Uuid::new_v4().simple());
    let token = server.token_for_prefix(&prefix).await;
    t.post("/api/v1/secrets", json!({"name": "bao-token", "data": {"token": token}})).await.succeeded();
    let backend = json!({"name": "bao", "type": "openbao", "config": {"url": url, "pathPrefix": prefix,
                         "timeoutSeconds": 2, "tokenSecretRef": {"name": "bao-token", "key": "token"}}});
    let r = t.post("/api/v1/secretbackends", backend).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    (t, prefix)
}

async fn create_secrets(t: &TestApp, count: usize) -> Vec<(String, String)> {
    let mut secrets = Vec::new();
    for i in 0..count {
        let (name, value) = (format!("s-{i:03}"), format!("value-{i}-{}", uuid::Uuid::new_v4().simple()));
        let r = t.post("/api/v1/secrets", json!({"name": name, "data": {"K": value}})).await;
        assert_eq!(r.status, StatusCode::CREATED);
        secrets.push((name, value));
    }
    secrets
}

/// Runs a migration through the API; the progress lines it streamed.
async fn migrate(t: &TestApp, body: Value) -> Vec<Value> {
    migrate_watching(t, body, |_| {}).await
}

async fn migrate_watching(t: &TestApp, body: Value, mut on_line: impl FnMut(&Value)) -> Vec<Value> {
    let request = Request::post("/api/v1/secrets/migrate")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {}", testkit::ADMIN_TOKEN))
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = t.app.router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = response.into_body().into_data_stream();
    let (mut lines, mut buffer) = (Vec::new(), String::new());
    use futures::StreamExt;
    while let Some(chunk) = stream.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buffer.find('\n') {
            let line: Value = serde_json::from_str(&buffer[..end]).unwrap();
            buffer.drain(..=end);
            on_line(&line);
            lines.push(line);
        }
    }
    lines
}

fn summary(lines: &[Value]) -> &Value {
    lines.last().filter(|l| l["type"] == "finished").expect("the stream ends with a summary")
}

async fn revealed(t: &TestApp) -> std::collections::HashMap<String, (String, String)> {
    t.get("/api/v1/secrets?reveal=true").await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let name = s["name"].as_str().unwrap().to_owned();
            (name, (s["backend"].as_str().unwrap().to_owned(), s["data"]["K"].as_str().unwrap_or_default().to_owned()))
        })
        .collect()
}

async fn plaintext_rows(t: &TestApp) -> usize {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM plaintext_secret_values WHERE secret <> 'bao-token'")
        .fetch_one(&t.app.services.store.db.pool)
        .await
        .unwrap();
    row.get::<i64, _>("n") as usize
}

async fn two_hundred_secrets_go_to_openbao_and_back(kind: StoreKind) {
    let server = shared_bao();
    let (t, prefix) = app_with_bao(kind, server, &server.addr).await;
    let secrets = create_secrets(&t, 200).await;

    let lines = migrate(&t, json!({"from": "default", "to": "bao"})).await;
    assert_eq!(summary(&lines)["status"], "completed");
    assert_eq!(summary(&lines)["moved"], 200);
    let now = revealed(&t).await;
    for (name, value) in &secrets {
        assert_eq!(now[name], ("bao".to_owned(), value.clone()), "{name} after plaintext -> openbao");
    }
    assert_eq!(plaintext_rows(&t).await, 0, "no value is left in the database");
    assert_eq!(server.read(&format!("{prefix}s-007")).await, Some(json!({"K": secrets[7].1})));

    let lines = migrate(&t, json!({"from": "bao", "to": "default"})).await;
    assert_eq!((summary(&lines)["status"].clone(), summary(&lines)["moved"].clone()), (json!("completed"), json!(200)));
    let now = revealed(&t).await;
    for (name, value) in &secrets {
        assert_eq!(now[name], ("default".to_owned(), value.clone()), "{name} after openbao -> plaintext");
    }
    for (name, _) in secrets.iter().step_by(20) {
        assert!(!server.exists(&format!("{prefix}{name}")).await, "{name} is gone from OpenBao");
    }
    // Each secret moved once each way.
    let history = t.app.services.store.log.aggregate_history("secret", "s-042").await.unwrap();
    let moves: Vec<_> = history.iter().filter(|e| e.event_type == "SecretMigrated").collect();
    assert_eq!(moves.len(), 2);
    assert_eq!(history.iter().filter(|e| e.event_type == "SecretSourceDeleted").count(), 2);

    let runs = t.get("/api/v1/migrations").await.body["items"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r["status"] == "completed" && r["moved"] == 200), "{runs:?}");
}

async fn names_keep_source_and_dry_run(kind: StoreKind) {
    let server = shared_bao();
    let (t, _) = app_with_bao(kind, server, &server.addr).await;
    let secrets = create_secrets(&t, 6).await;
    let events = t.app.services.store.log.read_after(Position::default(), 10_000).await.unwrap().len();

    let lines = migrate(&t, json!({"from": "default", "to": "bao", "dryRun": true})).await;
    let would: Vec<_> = lines.iter().filter(|l| l["outcome"] == "wouldMigrate").collect();
    assert_eq!(would.len(), 6, "{lines:?}");
    let pinned = lines.iter().find(|l| l["name"] == "bao-token").unwrap();
    assert_eq!(pinned["outcome"], "skipped", "the token's secret stays on plaintext");
    assert_eq!(
        t.app.services.store.log.read_after(Position::default(), 10_000).await.unwrap().len(),
        events,
        "no event"
    );
    assert!(revealed(&t).await.values().all(|(backend, _)| backend == "default"), "nothing moved");

    let lines =
        migrate(&t, json!({"from": "default", "to": "bao", "names": ["s-001", "s-003"], "keepSource": true})).await;
    assert_eq!(summary(&lines)["moved"], 2);
    let now = revealed(&t).await;
    assert_eq!(now["s-001"], ("bao".to_owned(), secrets[1].1.clone()));
    assert_eq!(now["s-003"].0, "bao");
    assert_eq!(now["s-002"].0, "default", "--names limits the set");
    assert_eq!(plaintext_rows(&t).await, 6, "keepSource leaves the source copies");

    // A secret named but not on the source is reported, not moved.
    let lines = migrate(&t, json!({"from": "default", "to": "bao", "names": ["s-001", "nope"]})).await;
    let skipped: Vec<_> = lines.iter().filter(|l| l["outcome"] == "skipped").map(|l| l["name"].clone()).collect();
    assert_eq!(skipped, [json!("nope"), json!("s-001")]);
    let bad = t.post("/api/v1/secrets/migrate", json!({"from": "default", "to": "default"})).await;
    assert_eq!(bad.status, StatusCode::CONFLICT);
    let bad = t.post("/api/v1/secrets/migrate", json!({"from": "default", "to": "nowhere"})).await;
    assert_eq!(bad.status, StatusCode::NOT_FOUND);
    let bad = t.post("/api/v1/secrets/migrate", json!({"from": "default", "to": "bao", "force": true})).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn a_concurrent_update_during_a_migration_is_not_lost(kind: StoreKind) {
    let server = shared_bao();
    let (t, _) = app_with_bao(kind, server, &server.addr).await;
    let t = Arc::new(t);
    let secrets = create_secrets(&t, 60).await;
    let updater = {
        let t = t.clone();
        let names: Vec<String> = secrets.iter().map(|(n, _)| n.clone()).collect();
        tokio::spawn(async move {
            for name in names.iter().rev() {
                // A client retries a write refused because the secret moved under it.
                loop {
                    let r = t
                        .put(&format!("/api/v1/secrets/{name}"), json!({"data": {"K": format!("updated-{name}")}}))
                        .await;
                    if r.status == StatusCode::OK {
                        break;
                    }
                    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
                }
            }
        })
    };
    let lines = migrate(&t, json!({"from": "default", "to": "bao"})).await;
    updater.await.unwrap();
    assert_eq!(summary(&lines)["status"], "completed", "{lines:?}");
    let now = revealed(&t).await;
    for (name, _) in &secrets {
        assert_eq!(now[name], ("bao".to_owned(), format!("updated-{name}")), "{name}: the update was lost");
    }
}

async fn an_openbao_outage_stops_the_run_and_a_rerun_finishes_it(kind: StoreKind) {
    let server = shared_bao();
    // The outage the real server cannot be asked for without losing its (in-memory) data.
    let (proxy, proxied) = testkit::proxy::Proxy::in_front_of(&server.addr).await;
    let (t, _) = app_with_bao(kind, server, &proxied).await;
    let secrets = create_secrets(&t, 100).await;

    let cut = Arc::new(AtomicBool::new(false));
    let (flag, proxy_ref) = (cut.clone(), &proxy);
    let mut migrated_before = 0;
    let lines = migrate_watching(&t, json!({"from": "default", "to": "bao"}), |line| {
        if line["outcome"] == "migrated" {
            migrated_before += 1;
        }
        if migrated_before == 10 && !flag.swap(true, Ordering::SeqCst) {
            // Cut OpenBao off after ten secrets.
            proxy_ref.set_down(true);
        }
    })
    .await;
    let end = summary(&lines);
    assert_eq!(end["status"], "failed", "{lines:?}");
    let error = end["error"].as_str().unwrap();
    assert!(error.contains("secretbackend \"bao\" is unreachable") || error.contains("did not answer"), "{error}");
    let moved = end["moved"].as_u64().unwrap();
    assert!((10..100).contains(&moved), "moved {moved}");
    let run = end["run"].as_str().unwrap();
    let record = t.get(&format!("/api/v1/migrations/{run}")).await.body;
    assert_eq!(record["status"], "failed");
    assert!(
        record["lastError"].as_str().unwrap().contains("unreachable")
            || record["lastError"].as_str().unwrap().contains("did not answer")
    );
    assert_eq!(record["moved"], moved, "the progress before the outage is recorded");

    // Secrets not reached are untouched and readable where they were.
    let on_default = t.get("/api/v1/secrets/s-099?reveal=true").await.body;
    assert_eq!(
        (on_default["backend"].clone(), on_default["data"]["K"].clone()),
        (json!("default"), json!(secrets[99].1))
    );

    proxy.set_down(false);
    let lines = migrate(&t, json!({"from": "default", "to": "bao"})).await;
    assert_eq!(summary(&lines)["status"], "completed", "{lines:?}");
    let now = revealed(&t).await;
    for (name, value) in &secrets {
        assert_eq!(now[name], ("bao".to_owned(), value.clone()), "{name}");
    }
    assert_eq!(plaintext_rows(&t).await, 0);
}

async fn a_failed_source_delete_is_recorded_and_retried_by_the_next_run(kind: StoreKind) {
    let server = shared_bao();
    let (t, prefix) = app_with_bao(kind, server, &server.addr).await;
    for i in 0..3 {
        let r = t
            .post(
                "/api/v1/secrets",
                json!({"name": format!("s-{i}"), "backend": "bao", "data": {"K": format!("v{i}")}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    // Rotate to a token that may read but not delete.
    let full = t.get("/api/v1/secrets/bao-token?reveal=true").await.body["data"]["token"].clone();
    let read_only = server
        .token_with_policy(&format!(
            "path \"secret/data/{prefix}*\" {{ capabilities = [\"read\"] }}\n\
             path \"secret/metadata/{prefix}*\" {{ capabilities = [\"read\"] }}\n"
        ))
        .await;
    t.put("/api/v1/secrets/bao-token", json!({"data": {"token": read_only}})).await.succeeded();

    let lines = migrate(&t, json!({"from": "bao", "to": "default"})).await;
    assert_eq!(summary(&lines)["status"], "completed", "{lines:?}");
    assert_eq!(summary(&lines)["moved"], 3);
    let now = revealed(&t).await;
    for i in 0..3 {
        assert_eq!(now[&format!("s-{i}")], ("default".to_owned(), format!("v{i}")), "usable on the destination");
        assert!(server.exists(&format!("{prefix}s-{i}")).await, "the source copy could not go");
    }
    let history = t.app.services.store.log.aggregate_history("secret", "s-1").await.unwrap();
    let failed = history.iter().find(|e| e.event_type == "SecretSourceDeleteFailed").expect("the failure is on record");
    let reason = failed.payload["SecretSourceDeleteFailed"]["reason"].as_str().unwrap();
    assert!(reason.contains("permission denied"), "{reason}");

    // With a token that may delete again, the next run of the same command cleans up.
    t.put("/api/v1/secrets/bao-token", json!({"data": {"token": full}})).await.succeeded();
    let lines = migrate(&t, json!({"from": "bao", "to": "default"})).await;
    assert_eq!(summary(&lines)["status"], "completed", "{lines:?}");
    for i in 0..3 {
        assert!(!server.exists(&format!("{prefix}s-{i}")).await, "s-{i} is cleaned up by the re-run");
    }
    let history = t.app.services.store.log.aggregate_history("secret", "s-1").await.unwrap();
    assert_eq!(history.last().unwrap().event_type, "SecretSourceDeleted");
}

/// A token whose policy lacks `list`: the batch claim falls back to one metadata read per path.
/// The secrets still move; a path someone else already wrote stops the run there, untouched.
async fn without_list_permission_a_migration_still_moves_and_never_overwrites_foreign_data(kind: StoreKind) {
    let server = shared_bao();
    let (t, prefix) = app_with_bao(kind, server, &server.addr).await;
    let no_list = server
        .token_with_policy(&format!(
            "path \"secret/data/{prefix}*\" {{ capabilities = [\"create\", \"read\", \"update\", \"delete\"] }}\n\
             path \"secret/metadata/{prefix}*\" {{ capabilities = [\"read\", \"delete\"] }}\n"
        ))
        .await;
    assert_eq!(t.put("/api/v1/secrets/bao-token", json!({"data": {"token": no_list}})).await.status, StatusCode::OK);
    let secrets = create_secrets(&t, 30).await;
    server
        .root(reqwest::Method::POST, &format!("secret/data/{prefix}s-020"), Some(json!({"data": {"x": "theirs"}})))
        .await;

    let lines = migrate(&t, json!({"from": "default", "to": "bao"})).await;
    let end = summary(&lines);
    assert_eq!(end["status"], "failed", "{lines:?}");
    assert_eq!(end["moved"], 20, "{lines:?}");
    assert!(end["error"].as_str().unwrap().contains("holds data mcpd did not write"), "{end}");
    assert_eq!(server.read(&format!("{prefix}s-020")).await, Some(json!({"x": "theirs"})), "foreign data untouched");
    let now = revealed(&t).await;
    for (i, (name, value)) in secrets.iter().enumerate() {
        let backend = if i < 20 { "bao" } else { "default" };
        assert_eq!(now[name], (backend.to_owned(), value.clone()), "{name}");
    }
    for (name, _) in &secrets[21..] {
        assert!(!server.exists(&format!("{prefix}{name}")).await, "{name}: nothing after the failure is touched");
    }
}

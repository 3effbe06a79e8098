//! Secrets on an `openbao` backend, against a real OpenBao dev server: values live in OpenBao
//! and nowhere in our store; failures are clear and record nothing; the token rotates without
//! a restart; the default flag survives a crowd.

use std::sync::Arc;

use axum::http::StatusCode;
use backends::openbao::OpenBaoDriver;
use backends::{BackendError, SecretBackendDriver};
use domain::llm::SecretKeyRef;
use domain::secret_backend::OpenBaoConfig;
use projections::Position;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sqlx::Row;
use testkit::openbao::OpenBao;

use crate::support::{StoreKind, TestApp, llm};

testkit::on_both_stores!(
    values_live_in_openbao_and_nowhere_in_our_store,
    paths_are_claimed_before_a_write_and_foreign_ones_never,
    a_failed_write_to_openbao_records_nothing,
    permission_denied_names_the_backend_never_the_token,
    the_token_rotates_without_a_restart,
    a_stopped_server_answers_503_and_changes_nothing,
    a_sealed_server_answers_503,
    a_hung_server_is_cut_off_by_the_timeout,
    the_driver_pins_versions_and_refuses_lost_updates,
    an_inference_key_on_a_failing_openbao_is_a_clear_error_naming_it,
);

fn shared_bao() -> &'static OpenBao {
    tokio::task::block_in_place(testkit::openbao::shared)
}

fn prefix() -> String {
    format!("t{}/", uuid::Uuid::new_v4().simple())
}

fn backend(name: &str, addr: &str, prefix: &str, extra: Value) -> Value {
    let mut config =
        json!({"url": addr, "pathPrefix": prefix, "tokenSecretRef": {"name": "bao-token", "key": "token"}});
    for (k, v) in extra.as_object().into_iter().flatten() {
        config[k] = v.clone();
    }
    json!({"name": name, "type": "openbao", "config": config})
}

/// An app with a `bao` backend on `server` under a fresh prefix, its token in `bao-token`.
async fn app_with_bao(kind: StoreKind, server: &OpenBao) -> (TestApp, String) {
    let t = TestApp::start(kind).await;
    let prefix = prefix();
    let token = server.token_for_prefix(&prefix).await;
    let r = t.post("/api/v1/secrets", json!({"name": "bao-token", "data": {"token": token}})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = t.post("/api/v1/secretbackends", backend("bao", &server.addr, &prefix, json!({}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    (t, prefix)
}

async fn event_types(t: &TestApp) -> Vec<String> {
    let events = t.app.services.store.log.read_after(Position::default(), 10_000).await.unwrap();
    events.into_iter().map(|e| e.event_type).collect()
}

async fn database_text(t: &TestApp) -> String {
    let pool = &t.app.services.store.db.pool;
    let mut text = String::new();
    for query in ["SELECT data AS t FROM plaintext_secret_values", "SELECT keys || value_ref AS t FROM secrets"] {
        for row in sqlx::query(query).fetch_all(pool).await.unwrap() {
            text.push_str(&row.get::<String, _>("t"));
        }
    }
    for event in t.app.services.store.log.read_after(Position::default(), 10_000).await.unwrap() {
        text.push_str(&event.payload.to_string());
        text.push_str(&format!("{:?}", event.metadata));
    }
    text
}

async fn values_live_in_openbao_and_nowhere_in_our_store(kind: StoreKind) {
    let server = shared_bao();
    let (t, prefix) = app_with_bao(kind, server).await;
    let health = t.get("/api/v1/secretbackends/bao/health").await;
    assert_eq!(health.body["status"], "ok", "{:?}", health.body);

    let values = json!({"API_KEY": "sk-bao-Ünïcode \"quoted\"\nline2", "org.id-x_2": "org-7"});
    let r = t.post("/api/v1/secrets", json!({"name": "anthropic", "backend": "bao", "data": values})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["externalRef"], format!("secret/data/{prefix}anthropic"));
    assert_eq!(t.get("/api/v1/secrets/anthropic?reveal=true").await.body["data"], values);
    assert_eq!(server.read(&format!("{prefix}anthropic")).await, Some(values.clone()), "the values are in OpenBao");
    let ours = database_text(&t).await;
    assert!(!ours.contains("sk-bao-") && !ours.contains("org-7"), "the values are not in our store");

    // An Llm's key resolves through OpenBao.
    t.post("/api/v1/llms", llm("claude-fast", "anthropic")).await.succeeded();
    let key = t.app.services.resolve_api_key("claude-fast").await.unwrap().unwrap();
    assert_eq!(key.expose_secret(), values["API_KEY"].as_str().unwrap());

    // Overwrite: a new version, read back; the old one does not linger.
    let rotated = json!({"API_KEY": "sk-bao-rotated", "org.id-x_2": "org-7"});
    let r = t.put("/api/v1/secrets/anthropic", json!({"backend": "bao", "data": rotated})).await;
    assert_eq!((r.status, r.body["dataVersion"].clone()), (StatusCode::OK, json!(2)));
    assert_eq!(t.get("/api/v1/secrets/anthropic?reveal=true").await.body["data"], rotated);
    let (_, old) = server.root(reqwest::Method::GET, &format!("secret/data/{prefix}anthropic?version=1"), None).await;
    assert!(old["data"]["data"].is_null(), "version 1 was destroyed: {old}");

    // Delete removes every version from OpenBao.
    t.delete("/api/v1/llms/claude-fast").await.succeeded();
    assert_eq!(t.delete("/api/v1/secrets/anthropic").await.status, StatusCode::NO_CONTENT);
    assert!(!server.exists(&format!("{prefix}anthropic")).await, "no version lingers");
    // And the name can be used again.
    let r = t.post("/api/v1/secrets", json!({"name": "anthropic", "backend": "bao", "data": {"K": "v"}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}

async fn a_failed_write_to_openbao_records_nothing(kind: StoreKind) {
    let server = shared_bao();
    let (t, prefix) = app_with_bao(kind, server).await;
    // Data mcpd did not write sits at the path: it is not overwritten.
    server
        .root(reqwest::Method::POST, &format!("secret/data/{prefix}foreign"), Some(json!({"data": {"x": "theirs"}})))
        .await;
    let before = event_types(&t).await;
    let r = t.post("/api/v1/secrets", json!({"name": "foreign", "backend": "bao", "data": {"K": "mine"}})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(r.message().contains("holds data mcpd did not write"), "{}", r.message());
    assert_eq!(server.read(&format!("{prefix}foreign")).await, Some(json!({"x": "theirs"})));
    assert_eq!(event_types(&t).await, before, "no event for a write that did not happen");
    assert_eq!(t.get("/api/v1/secrets/foreign").await.status, StatusCode::NOT_FOUND);
}

async fn permission_denied_names_the_backend_never_the_token(kind: StoreKind) {
    let server = shared_bao();
    let t = TestApp::start(kind).await;
    // A token whose policy covers another prefix only.
    let token = server.token_for_prefix("somewhere-else/").await;
    t.post("/api/v1/secrets", json!({"name": "bao-token", "data": {"token": token}})).await.succeeded();
    t.post("/api/v1/secretbackends", backend("locked", &server.addr, &prefix(), json!({}))).await.succeeded();
    let before = event_types(&t).await;
    let r = t.post("/api/v1/secrets", json!({"name": "s", "backend": "locked", "data": {"K": "v"}})).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{:?}", r.body);
    assert!(
        r.message().contains("secretbackend \"locked\"") && r.message().contains("permission denied"),
        "{}",
        r.message()
    );
    assert!(!r.body.to_string().contains(&token), "the token is never in an answer");
    assert_eq!(event_types(&t).await, before);
    let health = t.get("/api/v1/secretbackends/locked/health").await;
    assert_eq!(health.body["status"], "ok", "the token itself is valid: {:?}", health.body);

    // A token OpenBao does not know at all.
    t.put("/api/v1/secrets/bao-token", json!({"data": {"token": "s.not-a-token"}})).await.succeeded();
    let health = t.get("/api/v1/secretbackends/locked/health").await;
    assert_eq!(health.body["status"], "permission denied", "{:?}", health.body);
    assert!(!health.body.to_string().contains("s.not-a-token"));
}

async fn the_token_rotates_without_a_restart(kind: StoreKind) {
    let server = shared_bao();
    let (t, prefix) = app_with_bao(kind, server).await;
    t.post("/api/v1/secrets", json!({"name": "s", "backend": "bao", "data": {"K": "v1"}})).await.succeeded();
    let old = t.get("/api/v1/secrets/bao-token?reveal=true").await.body["data"]["token"].as_str().unwrap().to_owned();

    // Rotate: a new token in the token secret, then the old one revoked.
    let new = server.token_for_prefix(&prefix).await;
    let r = t.put("/api/v1/secrets/bao-token", json!({"data": {"token": new}})).await;
    assert_eq!(r.status, StatusCode::OK);
    server.root(reqwest::Method::POST, "auth/token/revoke", Some(json!({"token": old}))).await;
    assert_eq!(t.get("/api/v1/secrets/s?reveal=true").await.body["data"]["K"], "v1", "read with the new token");
    let r = t.put("/api/v1/secrets/s", json!({"data": {"K": "v2"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    // Revoked behind mcpd's back: a 403, a fresh read of the token secret, still 403: a clear 502.
    server.root(reqwest::Method::POST, "auth/token/revoke", Some(json!({"token": new}))).await;
    let r = t.get("/api/v1/secrets/s?reveal=true").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{:?}", r.body);
    assert!(r.message().contains("permission denied"), "{}", r.message());
}

async fn a_stopped_server_answers_503_and_changes_nothing(kind: StoreKind) {
    let mut server = tokio::task::block_in_place(OpenBao::start);
    let (t, _) = app_with_bao(kind, &server).await;
    t.post("/api/v1/secrets", json!({"name": "s", "backend": "bao", "data": {"K": "v"}})).await.succeeded();
    tokio::task::block_in_place(|| server.stop());

    let before = event_types(&t).await;
    let r = t.get("/api/v1/secrets/s?reveal=true").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert!(r.message().starts_with("secretbackend \"bao\" is unreachable"), "{}", r.message());
    let r = t.put("/api/v1/secrets/s", json!({"data": {"K": "v2"}})).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let r = t.post("/api/v1/secrets", json!({"name": "t", "backend": "bao", "data": {"K": "v"}})).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(event_types(&t).await, before, "nothing was recorded");
    assert_eq!(t.get("/api/v1/secrets/s").await.body["dataVersion"], 1);
    assert_eq!(t.get("/api/v1/secretbackends/bao/health").await.body["status"], "unreachable");
}

async fn a_sealed_server_answers_503(kind: StoreKind) {
    let server = tokio::task::block_in_place(OpenBao::start);
    let (t, _) = app_with_bao(kind, &server).await;
    let (status, _) = server.root(reqwest::Method::PUT, "sys/seal", None).await;
    assert!(status < 300);
    let r = t.post("/api/v1/secrets", json!({"name": "s", "backend": "bao", "data": {"K": "v"}})).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert_eq!(r.message(), "secretbackend \"bao\" is sealed");
    assert_eq!(t.get("/api/v1/secretbackends/bao/health").await.body["status"], "sealed");
}

async fn a_hung_server_is_cut_off_by_the_timeout(kind: StoreKind) {
    // A stub for a fault the real server does not produce on demand: it accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let held = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            keep.lock().await.push(socket);
        }
    });
    let t = TestApp::start(kind).await;
    t.post("/api/v1/secrets", json!({"name": "bao-token", "data": {"token": "s.x"}})).await.succeeded();
    let r = t.post("/api/v1/secretbackends", backend("hung", &addr, "p/", json!({"timeoutSeconds": 1}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let before = event_types(&t).await;
    let r = t.post("/api/v1/secrets", json!({"name": "s", "backend": "hung", "data": {"K": "v"}})).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert_eq!(r.message(), "secretbackend \"hung\" did not answer within 1s");
    assert_eq!(event_types(&t).await, before);
    assert_eq!(t.get("/api/v1/secretbackends/hung/health").await.body["status"], "unreachable");
}

async fn the_driver_pins_versions_and_refuses_lost_updates(kind: StoreKind) {
    let server = shared_bao();
    let (t, prefix) = app_with_bao(kind, server).await;
    let config = OpenBaoConfig {
        url: server.addr.clone(),
        mount: "secret".into(),
        path_prefix: format!("{prefix}teams/ml/"),
        namespace: None,
        token_secret_ref: SecretKeyRef { name: domain::ResourceName::parse("bao-token").unwrap(), key: "token".into() },
        timeout_seconds: 5,
        soft_delete: false,
        ca_cert: None,
        tls_server_name: None,
    };
    let driver = OpenBaoDriver::new("bao", config, reqwest::Client::new(), t.app.services.store.db.clone());
    let data = |v: &str| [("KEY".to_owned(), SecretString::from(v.to_owned()))].into_iter().collect();

    let first = driver.put("svc", &data("one"), None).await.unwrap();
    assert_eq!(first.external_ref.as_deref(), Some(format!("secret/data/{prefix}teams/ml/svc").as_str()));
    let second = driver.put("svc", &data("two"), Some(&first.value_ref)).await.unwrap();
    assert_ne!(first.value_ref, second.value_ref);
    let read = |r: &str| {
        let driver = &driver;
        let r = r.to_owned();
        async move { driver.get("svc", &r).await.unwrap().map(|d| d["KEY"].expose_secret().to_owned()) }
    };
    assert_eq!(read(&first.value_ref).await.as_deref(), Some("one"), "reads are pinned to a version");
    assert_eq!(read(&second.value_ref).await.as_deref(), Some("two"));

    // Check-and-set: a write based on a stale version is refused, the newer data stays.
    let stale: u64 = first.value_ref.parse().unwrap();
    let err = driver.write("svc", &data("lost"), stale).await.unwrap_err();
    assert!(matches!(err, BackendError::Conflict { .. }), "{err}");
    assert_eq!(server.read(&format!("{prefix}teams/ml/svc")).await, Some(json!({"KEY": "two"})));

    // A path marked by an earlier mcpd (the `managed-by` marker) is taken back.
    let crashed = format!("secret/metadata/{prefix}teams/ml/crashed");
    server.root(reqwest::Method::POST, &crashed, Some(json!({"custom_metadata": {"managed-by": "mcpd"}}))).await;
    let reclaimed = driver.put("crashed", &data("after a crash"), None).await.unwrap();
    assert_eq!(
        driver.get("crashed", &reclaimed.value_ref).await.unwrap().map(|d| d["KEY"].expose_secret().to_owned()),
        Some("after a crash".to_owned())
    );

    driver.discard("svc", &first.value_ref).await.unwrap();
    assert_eq!(read(&first.value_ref).await, None);
    driver.delete("svc", &second.value_ref).await.unwrap();
    assert!(!server.exists(&format!("{prefix}teams/ml/svc")).await);
    assert_eq!(read(&second.value_ref).await, None);
}

/// Which paths are mcpd's is kept in its database: a batch is claimed in one go after one LIST,
/// a claimed path holding a version nobody recorded (a crash after the write) is written over,
/// a path with someone else's data is never claimed nor written, and a deleted path's claim goes.
async fn paths_are_claimed_before_a_write_and_foreign_ones_never(kind: StoreKind) {
    let server = shared_bao();
    let (t, prefix) = app_with_bao(kind, server).await;
    let driver = t.app.services.drivers.get("bao").await.unwrap();
    let data = |v: &str| [("KEY".to_owned(), SecretString::from(v.to_owned()))].into_iter().collect();
    let claims = || async {
        let rows = sqlx::query("SELECT secret FROM openbao_claims WHERE backend = 'bao' ORDER BY secret")
            .fetch_all(&t.app.services.store.db.pool)
            .await
            .unwrap();
        rows.iter().map(|r| r.get::<String, _>("secret")).collect::<Vec<_>>()
    };
    server
        .root(reqwest::Method::POST, &format!("secret/data/{prefix}theirs"), Some(json!({"data": {"x": "theirs"}})))
        .await;

    let batch: Vec<String> = ["fresh", "crashed", "theirs", "late"].map(str::to_owned).to_vec();
    driver.prepare(&batch).await.unwrap();
    assert_eq!(claims().await, ["crashed", "fresh", "late"], "only empty paths are claimed");

    // Written by someone else after the listing: refused at the check-and-set, claim given up.
    server
        .root(reqwest::Method::POST, &format!("secret/data/{prefix}late"), Some(json!({"data": {"x": "late"}})))
        .await;
    let err = driver.put("late", &data("mine"), None).await.unwrap_err();
    assert!(matches!(err, BackendError::Foreign { .. }), "{err}");
    assert_eq!(server.read(&format!("{prefix}late")).await, Some(json!({"x": "late"})));
    assert_eq!(claims().await, ["crashed", "fresh"]);

    // A write whose event was never recorded (mcpd died), then the next attempt: written over.
    let lost = driver.put("crashed", &data("first attempt"), None).await.unwrap();
    let again = driver.put("crashed", &data("second attempt"), None).await.unwrap();
    assert_ne!(lost.value_ref, again.value_ref);
    assert_eq!(server.read(&format!("{prefix}crashed")).await, Some(json!({"KEY": "second attempt"})));

    let err = driver.put("theirs", &data("mine"), None).await.unwrap_err();
    assert!(matches!(err, BackendError::Foreign { .. }), "{err}");
    assert_eq!(server.read(&format!("{prefix}theirs")).await, Some(json!({"x": "theirs"})));
    assert_eq!(claims().await, ["crashed", "fresh"]);

    // Deleted: the claim goes with the path, and data someone writes there later is theirs.
    let fresh = driver.put("fresh", &data("v"), None).await.unwrap();
    driver.delete("fresh", &fresh.value_ref).await.unwrap();
    assert_eq!(claims().await, ["crashed"]);
    server
        .root(reqwest::Method::POST, &format!("secret/data/{prefix}fresh"), Some(json!({"data": {"x": "later"}})))
        .await;
    let err = driver.put("fresh", &data("mine"), None).await.unwrap_err();
    assert!(matches!(err, BackendError::Foreign { .. }), "{err}");
    assert_eq!(server.read(&format!("{prefix}fresh")).await, Some(json!({"x": "later"})));

    // A batch that stops part-way gives up the paths it claimed and never wrote: data someone
    // writes there afterwards is theirs, also for the next batch.
    let batch: Vec<String> = ["used", "unused"].map(str::to_owned).to_vec();
    driver.prepare(&batch).await.unwrap();
    assert_eq!(claims().await, ["crashed", "unused", "used"]);
    driver.put("used", &data("v"), None).await.unwrap();
    driver.release(&batch).await.unwrap();
    assert_eq!(claims().await, ["crashed", "used"], "only the written path stays claimed");
    server
        .root(reqwest::Method::POST, &format!("secret/data/{prefix}unused"), Some(json!({"data": {"x": "after"}})))
        .await;
    driver.prepare(&["unused".to_owned()]).await.unwrap();
    let err = driver.put("unused", &data("mine"), None).await.unwrap_err();
    assert!(matches!(err, BackendError::Foreign { .. }), "{err}");
    assert_eq!(server.read(&format!("{prefix}unused")).await, Some(json!({"x": "after"})));
}

/// 50 requests from two mcpd processes on one PostgreSQL, each making some backend the
/// default: afterwards exactly one is, and the defaultbackend stream is one unbroken chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_is_unique_under_fifty_concurrent_moves() {
    let a = Arc::new(TestApp::start(StoreKind::Postgres).await);
    let b = Arc::new(a.replica().await);
    let names: Vec<String> = (0..5).map(|i| format!("backend-{i}")).collect();
    for name in &names {
        a.post("/api/v1/secretbackends", json!({"name": name, "type": "plaintext"})).await;
    }
    let mut tasks = Vec::new();
    for i in 0..50 {
        let app = if i % 2 == 0 { a.clone() } else { b.clone() };
        let name = names[i % names.len()].clone();
        tasks.push(tokio::spawn(async move {
            app.put(&format!("/api/v1/secretbackends/{name}"), json!({"type": "plaintext", "isDefault": true}))
                .await
                .status
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    let defaults: Vec<String> = a.get("/api/v1/secretbackends").await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["isDefault"] == true)
        .map(|x| x["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(defaults.len(), 1, "{defaults:?}");

    let history = a.app.services.store.log.aggregate_history("defaultbackend", "default").await.unwrap();
    let mut previous: Option<String> = None;
    for event in &history {
        let moved = &event.payload["DefaultBackendSet"];
        assert_eq!(moved["from"].as_str().map(String::from), previous, "each move starts where the last ended");
        previous = moved["to"].as_str().map(String::from);
    }
    assert_eq!(previous.as_deref(), Some(defaults[0].as_str()), "the events tell the same story");
}

/// An Llm whose key is on OpenBao, read when a call needs it (nothing held yet): OpenBao hung,
/// cut off, refusing the token and sealed each answer a clear error naming the backend (503, or
/// 502 for a refusal), never a 500, record nothing, reach no provider, and never show the
/// token; once OpenBao answers again, calls go through.
async fn an_inference_key_on_a_failing_openbao_is_a_clear_error_naming_it(kind: StoreKind) {
    let server = tokio::task::block_in_place(OpenBao::start);
    let (proxy, proxied) = testkit::proxy::Proxy::in_front_of(&server.addr).await;
    let t = TestApp::start(kind).await;
    let prefix = prefix();
    let token = server.token_for_prefix(&prefix).await;
    t.post("/api/v1/secrets", json!({"name": "bao-token", "data": {"token": token}})).await.succeeded();
    let config = json!({"timeoutSeconds": 1});
    t.post("/api/v1/secretbackends", backend("bao", &proxied, &prefix, config)).await.succeeded();
    t.post("/api/v1/secrets", json!({"name": "key", "backend": "bao", "data": {"API_KEY": "sk-on-bao-0451"}}))
        .await
        .succeeded();
    let (provider, calls) = crate::support::key_recording_provider().await;
    let model = json!({"name": "m", "type": "openai", "model": "gpt-5-mini", "tier": "fast", "url": provider,
                       "apiKeyRef": {"name": "key", "key": "API_KEY"}});
    t.post("/api/v1/llms", model).await.succeeded();
    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let before = event_types(&t).await;

    let refused = async |app: &TestApp, status: StatusCode, message: &str| {
        let r = app.call(axum::http::Method::POST, "/openai/v1/chat/completions", Some(chat.clone()), None).await;
        assert_eq!(r.status, status, "{message}: {:?}", r.body);
        assert!(r.message().contains(message), "{:?}", r.body);
        assert!(!r.body.to_string().contains(&token), "the token is never shown");
    };
    proxy.set(testkit::proxy::Mode::Stall);
    refused(&t, StatusCode::SERVICE_UNAVAILABLE, "secretbackend \"bao\" did not answer within 1s").await;
    proxy.set(testkit::proxy::Mode::Cut);
    refused(&t, StatusCode::SERVICE_UNAVAILABLE, "secretbackend \"bao\" is unreachable").await;
    proxy.set(testkit::proxy::Mode::Up);
    let r = t.call(axum::http::Method::POST, "/openai/v1/chat/completions", Some(chat.clone()), None).await;
    assert_eq!(r.status, StatusCode::OK, "served once OpenBao answers: {:?}", r.body);
    assert_eq!(calls.lock().unwrap().len(), 1, "no call reached the provider without its key");

    // The token revoked in OpenBao, and a fresh mcpd (nothing held): a refusal, named.
    let (status, _) = server.root(reqwest::Method::POST, "auth/token/revoke", Some(json!({"token": token}))).await;
    assert!(status < 300, "{status}");
    let restarted = TestApp { app: t.reopen().await, db: t.db.share() };
    refused(&restarted, StatusCode::BAD_GATEWAY, "secretbackend \"bao\" denied access").await;
    // Sealed.
    let (status, _) = server.root(reqwest::Method::PUT, "sys/seal", None).await;
    assert!(status < 300, "{status}");
    let restarted = TestApp { app: t.reopen().await, db: t.db.share() };
    refused(&restarted, StatusCode::SERVICE_UNAVAILABLE, "secretbackend \"bao\" is sealed").await;
    assert_eq!(calls.lock().unwrap().len(), 1);
    assert_eq!(event_types(&t).await, before, "a failed key read records nothing");
}

//! Rules across resources: references must resolve, and nothing still referred to can go.

use axum::http::StatusCode;
use secrecy::ExposeSecret;
use serde_json::json;

use crate::support::{StoreKind, TestApp, llm, secret};

testkit::on_both_stores!(
    an_llm_needs_its_secret_and_key,
    a_secret_in_use_cannot_be_deleted,
    a_key_in_use_cannot_be_dropped,
    a_backend_holding_secrets_cannot_be_deleted,
    the_default_flag_moves_and_one_default_always_remains,
    a_secret_needs_an_existing_backend,
    self_hosted_llms_may_be_keyless,
    resolve_api_key_reads_through_the_backend,
);

async fn an_llm_needs_its_secret_and_key(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let r = t.post("/api/v1/llms", llm("claude-fast", "anthropic")).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.fields(), ["spec.apiKeyRef.name"]);
    assert!(r.message().contains("secret \"anthropic\" named by spec.apiKeyRef does not exist"), "{}", r.message());

    t.post("/api/v1/secrets", secret("anthropic", "OTHER", "v")).await.succeeded();
    let r = t.post("/api/v1/llms", llm("claude-fast", "anthropic")).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.fields(), ["spec.apiKeyRef.key"]);
    assert_eq!(t.get("/api/v1/llms").await.body["items"], json!([]));
}

async fn a_secret_in_use_cannot_be_deleted(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.seed_llm().await;
    let r = t.delete("/api/v1/secrets/anthropic").await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.message(), "secret \"anthropic\" is used by llm \"claude-fast\"");
    assert_eq!(t.get("/api/v1/secrets/anthropic").await.status, StatusCode::OK);

    t.delete("/api/v1/llms/claude-fast").await.succeeded();
    assert_eq!(t.delete("/api/v1/secrets/anthropic").await.status, StatusCode::NO_CONTENT);
}

async fn a_key_in_use_cannot_be_dropped(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.seed_llm().await;
    let r = t.put("/api/v1/secrets/anthropic", json!({"data": {"NEW_KEY": "v"}})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.message().contains("key \"API_KEY\" of secret \"anthropic\" is used by llm \"claude-fast\""));
    let revealed = t.get("/api/v1/secrets/anthropic?reveal=true").await;
    assert_eq!(revealed.body["data"], json!({"API_KEY": "sk-ant-seed"}), "the refused update wrote nothing");
}

async fn a_backend_holding_secrets_cannot_be_deleted(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.post("/api/v1/secretbackends", json!({"name": "archive", "type": "plaintext"})).await.succeeded();
    t.post("/api/v1/secrets", json!({"name": "old-a", "backend": "archive", "data": {}})).await.succeeded();
    t.post("/api/v1/secrets", json!({"name": "old-b", "backend": "archive", "data": {}})).await.succeeded();
    let r = t.delete("/api/v1/secretbackends/archive").await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.message(), "secretbackend \"archive\" still holds secret \"old-a\", \"old-b\"");
}

async fn defaults(t: &TestApp) -> Vec<String> {
    t.get("/api/v1/secretbackends").await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["isDefault"] == true)
        .map(|b| b["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn the_default_flag_moves_and_one_default_always_remains(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let r = t.delete("/api/v1/secretbackends/default").await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.message().contains("is the default"), "{}", r.message());
    let r = t.put("/api/v1/secretbackends/default", json!({"type": "plaintext", "isDefault": false})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.message().contains("stays so until another backend becomes the default"), "{}", r.message());
    assert_eq!(
        t.get("/api/v1/secretbackends/default").await.body["resourceVersion"],
        1,
        "the refused update changed nothing"
    );

    // Creating a backend with isDefault moves the flag; secrets without a backend follow it.
    let r = t.post("/api/v1/secretbackends", json!({"name": "second", "type": "plaintext", "isDefault": true})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["isDefault"], true);
    assert_eq!(defaults(&t).await, ["second"]);
    let s = t.post("/api/v1/secrets", json!({"name": "follows", "data": {"K": "v"}})).await;
    assert_eq!(s.body["backend"], "second");

    // And an update moves it back; the old default may then go.
    let r = t
        .put("/api/v1/secretbackends/default", json!({"type": "plaintext", "description": "db", "isDefault": true}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(defaults(&t).await, ["default"]);
    t.delete("/api/v1/secrets/follows").await.succeeded();
    assert_eq!(t.delete("/api/v1/secretbackends/second").await.status, StatusCode::NO_CONTENT);
    let r = t
        .post("/api/v1/secretbackends?dryRun=true", json!({"name": "third", "type": "plaintext", "isDefault": true}))
        .await;
    assert_eq!(r.body["isDefault"], true, "a dry run shows the flag it would set");
    assert_eq!(defaults(&t).await, ["default"], "and sets nothing");
}

async fn a_secret_needs_an_existing_backend(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let r = t.post("/api/v1/secrets", json!({"name": "s", "backend": "nowhere", "data": {"K": "v"}})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.fields(), ["spec.backend"]);
    assert_eq!(t.get("/api/v1/secrets").await.body["items"], json!([]));
    t.post("/api/v1/secrets", json!({"name": "s", "data": {"K": "v"}})).await.succeeded();
    let r = t.put("/api/v1/secrets/s", json!({"backend": "nowhere"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.message().contains("is a migration"), "{}", r.message());
}

async fn self_hosted_llms_may_be_keyless(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let body =
        json!({"name": "local", "type": "ollama", "model": "llama3", "tier": "fast", "url": "http://127.0.0.1:11434"});
    let r = t.post("/api/v1/llms", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert!(r.body.get("apiKeyRef").is_none());
    let r = t
        .post("/api/v1/llms", json!({"name": "cli", "type": "gemini-cli", "model": "gemini-2.5-pro", "tier": "heavy"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}

async fn resolve_api_key_reads_through_the_backend(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.seed_llm().await;
    let services = &t.app.services;
    let key = services.resolve_api_key("claude-fast").await.unwrap().expect("a key");
    assert_eq!(key.expose_secret(), "sk-ant-seed");

    t.put("/api/v1/secrets/anthropic", json!({"data": {"API_KEY": "sk-ant-rotated"}})).await.succeeded();
    let key = services.resolve_api_key("claude-fast").await.unwrap().expect("a key");
    assert_eq!(key.expose_secret(), "sk-ant-rotated");

    let body =
        json!({"name": "local", "type": "vllm", "model": "qwen", "tier": "fast", "url": "http://127.0.0.1:8000"});
    t.post("/api/v1/llms", body).await.succeeded();
    assert!(services.resolve_api_key("local").await.unwrap().is_none());
    assert!(services.resolve_api_key("missing").await.is_err());
}

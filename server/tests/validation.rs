//! Bad input: every failing field listed, unknown fields named, malformed bodies refused with
//! the right status, and nothing stored.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;

use crate::support::{StoreKind, TestApp, llm};

testkit::on_both_stores!(
    every_bad_field_is_listed,
    malformed_bodies_get_clear_statuses,
    unknown_fields_are_named,
    type_errors_under_data_do_not_echo_the_value,
    what_get_returns_can_be_put_back,
    an_openbao_token_must_be_a_plaintext_secret_key,
    each_kind_publishes_its_document_schema,
);

async fn every_bad_field_is_listed(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let r = t
        .post(
            "/api/v1/llms",
            json!({"kind": "secret", "name": "Bad_Name", "type": "gpt", "tier": "medium", "url": "ftp://x",
                   "apiKeyRef": {"name": "anthropic"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "Invalid");
    assert_eq!(r.fields(), ["kind", "name", "spec.type", "spec.model", "spec.tier", "spec.url", "spec.apiKeyRef.key"]);
    let details = &r.body["error"]["details"];
    assert_eq!(details[4], json!({"field": "spec.tier", "message": "must be one of fast, heavy"}));

    let r = t.post("/api/v1/llms", json!({"name": "vllm-box", "type": "vllm", "model": "m", "tier": "fast"})).await;
    assert_eq!(r.fields(), ["spec.url"]);
    let r = t.post("/api/v1/llms", json!({"name": "c", "type": "anthropic", "model": "m", "tier": "fast"})).await;
    assert_eq!(r.fields(), ["spec.apiKeyRef"]);
    let r = t.post("/api/v1/secrets", json!({"name": "s", "data": {"not ok": "v"}})).await;
    assert_eq!(r.fields(), ["spec.data.not ok"]);
    let r = t.put("/api/v1/llms/one", llm("other", "anthropic")).await;
    assert_eq!(r.fields(), ["name"]);

    // Nothing was stored.
    assert_eq!(t.get("/api/v1/llms").await.body["items"], json!([]));
    assert_eq!(t.get("/api/v1/secrets").await.body["items"], json!([]));
}

async fn malformed_bodies_get_clear_statuses(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let raw = |content_type: Option<&str>, body: String| {
        let mut request = Request::post("/api/v1/llms");
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        request.body(Body::from(body)).unwrap()
    };
    let r = t.send(raw(Some("application/json"), "{\"name\": ".into())).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.message().contains("not valid JSON"), "{}", r.message());
    let r = t.send(raw(Some("application/json"), "[1, 2]".into())).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.message(), "the body must be a JSON object");
    let r = t.send(raw(Some("text/plain"), "{}".into())).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = t.send(raw(None, "{}".into())).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = format!("{{\"name\": \"x\", \"description\": \"{}\"}}", "a".repeat(2 * 1024 * 1024));
    let r = t.send(raw(Some("application/json"), huge)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = t.get("/api/v1/secrets?reveal=maybe").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["code"], "BadRequest");
}

async fn unknown_fields_are_named(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let mut body = llm("x", "anthropic");
    body["modle"] = json!("typo");
    let r = t.post("/api/v1/llms", body).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.message().contains("unknown field `modle`"), "{}", r.message());
    let r = t.post("/api/v1/llms", json!({"name": "x", "apiKeyRef": {"name": "a", "key": "k", "extra": 1}})).await;
    assert!(r.message().starts_with("spec.apiKeyRef.extra: unknown field `extra`"), "{}", r.message());
    let r = t.post("/api/v1/llms", json!({"name": "x", "model": ["a"]})).await;
    assert!(r.message().starts_with("spec.model: invalid type"), "{}", r.message());
}

async fn type_errors_under_data_do_not_echo_the_value(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let r = t.post("/api/v1/secrets", json!({"name": "s", "data": {"PIN": 48151623}})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.message(), "spec.data.PIN: values must be strings");
    assert!(!r.body.to_string().contains("48151623"));
}

async fn what_get_returns_can_be_put_back(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.seed_llm().await;
    for path in ["/api/v1/llms/claude-fast", "/api/v1/secrets/anthropic", "/api/v1/secretbackends/default"] {
        let document = t.get(path).await.body;
        let r = t.put(path, document.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {:?}", r.body);
        assert_eq!(r.body, document, "{path}: an unchanged document changes nothing");
    }
}

async fn an_openbao_token_must_be_a_plaintext_secret_key(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let bao = |key: &str| {
        json!({"name": "bao", "type": "openbao", "config": {"url": "http://127.0.0.1:8200",
               "tokenSecretRef": {"name": "bao-token", "key": key}}})
    };
    let r = t.post("/api/v1/secretbackends", bao("token")).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.fields(), ["spec.config.tokenSecretRef.name"]);
    assert!(r.message().contains("token secret \"bao-token\" does not exist"), "{}", r.message());
    t.post("/api/v1/secrets", json!({"name": "bao-token", "data": {"token": "s.x"}})).await.succeeded();
    let r = t.post("/api/v1/secretbackends", bao("other")).await;
    assert_eq!(r.fields(), ["spec.config.tokenSecretRef.key"]);
    let r = t.post("/api/v1/secretbackends", bao("token")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["config"]["mount"], "secret");
    assert_eq!(r.body["config"]["pathPrefix"], "mcpd/");
    assert_eq!(r.body["config"]["timeoutSeconds"], 10);

    // The token's secret cannot go, nor lose the key, while the backend depends on it.
    let r = t.delete("/api/v1/secrets/bao-token").await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.message(), "secret \"bao-token\" is used by secretbackend \"bao\"");
    let r = t.put("/api/v1/secrets/bao-token", json!({"data": {"renamed": "s.x"}})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
}

async fn each_kind_publishes_its_document_schema(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    for (kind, field) in [("llm", "apiKeyRef"), ("secrets", "data"), ("secretbackend", "isDefault")] {
        let r = t.get(&format!("/api/v1/schemas/{kind}")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.body["properties"].get(field).is_some(), "{kind}: {:?}", r.body);
        assert!(r.body["properties"].get("name").is_some());
    }
    assert_eq!(t.get("/api/v1/schemas/widget").await.status, StatusCode::NOT_FOUND);
}

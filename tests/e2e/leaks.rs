//! Secret values never reach the logs or the event log, even with debug logging on.

use serde_json::json;
use sqlx::{AnyConnection, Connection, Row};

use crate::support::{StoreKind, TestServer};

testkit::on_both_stores!(secret_values_never_reach_logs_or_events, openbao_tokens_and_values_never_reach_the_logs);

async fn openbao_tokens_and_values_never_reach_the_logs(kind: StoreKind) {
    let bao = tokio::task::block_in_place(testkit::openbao::shared);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let prefix = format!("leak{nanos}/");
    let token = bao.token_for_prefix(&prefix).await;
    let server = TestServer::start_with_env(kind, &[("MCPD_LOG", "trace")]).await;
    server.post("/api/v1/secrets", json!({"name": "bao-token", "data": {"token": token}})).await;
    let backend = json!({"name": "bao", "type": "openbao", "config": {"url": bao.addr, "pathPrefix": prefix,
                         "tokenSecretRef": {"name": "bao-token", "key": "token"}}});
    assert_eq!(server.post("/api/v1/secretbackends", backend).await.0, 201);
    let value = "sk-only-in-openbao-4242";
    assert_eq!(
        server.post("/api/v1/secrets", json!({"name": "k", "backend": "bao", "data": {"K": value}})).await.0,
        201
    );
    assert_eq!(server.get("/api/v1/secrets/k?reveal=true").await.1["data"]["K"], value);
    server.get("/api/v1/secretbackends/bao/health").await;
    let logs = server.logs();
    assert!(logs.contains("hyper_util::client"), "trace logs cover the HTTP client's work: {logs}");
    assert!(!logs.contains(&token), "the OpenBao token leaked into the logs");
    assert!(!logs.contains(value), "a value leaked into the logs");
}

async fn secret_values_never_reach_logs_or_events(kind: StoreKind) {
    let server = TestServer::start_with_env(kind, &[("MCPD_LOG", "debug")]).await;
    let values = ["sk-proj-Zq81LmX04", "org-9f8e7d6c5b", "sk-rotated-AA11BB22", "48151623"];

    let (status, _) = server
        .post("/api/v1/secrets", json!({"name": "openai", "data": {"API_KEY": values[0], "ORG": values[1]}}))
        .await;
    assert_eq!(status, 201);
    let llm = json!({"name": "gpt", "type": "openai", "model": "gpt-5", "tier": "heavy",
                     "apiKeyRef": {"name": "openai", "key": "API_KEY"}});
    assert_eq!(server.post("/api/v1/llms", llm).await.0, 201);
    assert_eq!(
        server.put("/api/v1/secrets/openai", json!({"data": {"API_KEY": values[2], "ORG": values[1]}})).await.0,
        200
    );
    // Refused writes carry values too: a duplicate, a dropped key in use, a non-string value.
    assert_eq!(server.post("/api/v1/secrets", json!({"name": "openai", "data": {"API_KEY": values[0]}})).await.0, 409);
    assert_eq!(server.put("/api/v1/secrets/openai", json!({"data": {"X": values[0]}})).await.0, 409);
    let (status, body) = server.post("/api/v1/secrets", json!({"name": "pin", "data": {"PIN": 48151623}})).await;
    assert_eq!(status, 422);
    assert!(!body.to_string().contains(values[3]));
    let (_, revealed) = server.get("/api/v1/secrets/openai?reveal=true").await;
    assert_eq!(revealed["data"]["API_KEY"], values[2]);

    let logs = server.logs();
    assert!(logs.contains("POST"), "debug logs were captured: {logs}");
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(&server.store_url()).await.unwrap();
    let query = match kind {
        StoreKind::Sqlite => "SELECT payload || metadata AS t FROM events",
        StoreKind::Postgres => "SELECT payload::text || metadata::text AS t FROM events",
    };
    let events: String =
        sqlx::query(query).fetch_all(&mut conn).await.unwrap().iter().map(|r| r.get::<String, _>("t")).collect();
    assert!(events.contains("SecretUpdated"), "the scan sees the events: {events}");
    for value in values {
        assert!(!logs.contains(value), "{value} leaked into the logs");
        assert!(!events.contains(value), "{value} leaked into the event log");
    }
}

//! The README's quick start: mcpd on its embedded default with nothing but a data directory.

use serde_json::json;

use crate::support::{StoreKind, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_default_serves_creates_and_survives_a_restart() {
    let mut server = TestServer::start(StoreKind::Sqlite).await;
    assert!(server.data_dir().join("mcpd.db").exists(), "the SQLite file is created in the data dir");

    let (status, _) = server.post("/api/v1/secretbackends", json!({"name": "archive", "type": "plaintext"})).await;
    assert_eq!(status, 201);
    let (status, _) = server.post("/api/v1/secrets", json!({"name": "anthropic", "data": {"API_KEY": "sk-1"}})).await;
    assert_eq!(status, 201);
    let llm = json!({"name": "claude-fast", "type": "anthropic", "model": "claude-haiku-4-5", "tier": "fast",
                     "apiKeyRef": {"name": "anthropic", "key": "API_KEY"}});
    let (status, created) = server.post("/api/v1/llms", llm).await;
    assert_eq!(status, 201, "{created}");

    let status = server.terminate();
    assert!(status.success(), "SIGTERM is a clean stop, not {status}");
    assert!(server.logs().contains("mcpd stopped"), "{}", server.logs());

    server.spawn().await;
    let (status, read) = server.get("/api/v1/llms/claude-fast").await;
    assert_eq!(status, 200);
    assert_eq!(read, created);
    let (_, backends) = server.get("/api/v1/secretbackends").await;
    assert_eq!(backends["items"].as_array().unwrap().len(), 2, "the default is seeded once, not again");
    let (_, secret) = server.get("/api/v1/secrets/anthropic?reveal=true").await;
    assert_eq!(secret["data"]["API_KEY"], "sk-1");
}

//! SIGKILL while clients write: nothing acknowledged is lost, and the read models afterwards
//! equal a replay of the log from scratch.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::{AnyConnection, Connection};

use crate::support::{StoreKind, TestServer};

testkit::on_both_stores!(killed_mid_write_loses_no_acknowledged_write);

async fn snapshot(server: &TestServer) -> Value {
    let mut out = serde_json::Map::new();
    for kind in ["llms", "secrets", "secretbackends"] {
        let (status, body) = server.get(&format!("/api/v1/{kind}")).await;
        assert_eq!(status, 200);
        out.insert(kind.into(), body["items"].clone());
    }
    Value::Object(out)
}

/// One client: creates a secret and an Llm using it, over and over, until mcpd goes away.
async fn writer(base: String, token: String, id: usize, acked: Arc<Mutex<Vec<(String, String)>>>) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    for i in 0.. {
        let secret = format!("s{id}-{i}");
        let value = format!("value-{id}-{i}");
        let body = json!({"name": secret, "data": {"API_KEY": value}});
        match http.post(format!("{base}/api/v1/secrets")).bearer_auth(&token).json(&body).send().await {
            Ok(r) if r.status() == 201 => acked.lock().unwrap().push((format!("secrets/{secret}"), value)),
            _ => return,
        }
        let body = json!({"name": format!("l{id}-{i}"), "type": "openai", "model": "gpt-5-mini", "tier": "fast",
                          "apiKeyRef": {"name": secret, "key": "API_KEY"}});
        match http.post(format!("{base}/api/v1/llms")).bearer_auth(&token).json(&body).send().await {
            Ok(r) if r.status() == 201 => acked.lock().unwrap().push((format!("llms/l{id}-{i}"), String::new())),
            _ => return,
        }
    }
}

async fn killed_mid_write_loses_no_acknowledged_write(kind: StoreKind) {
    let mut server = TestServer::start(kind).await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..3)
        .map(|id| tokio::spawn(writer(server.url(""), server.admin_token().to_owned(), id, acked.clone())))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 60 {
        assert!(Instant::now() < deadline, "the writers made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill9();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    server.spawn().await;
    for (path, value) in &acked {
        let (status, body) = server.get(&format!("/api/v1/{path}?reveal=true")).await;
        assert_eq!(status, 200, "{path} was acknowledged before the kill but is gone after it");
        if !value.is_empty() {
            assert_eq!(body["data"]["API_KEY"], *value, "{path} lost its value");
        }
    }

    // Replay the whole log into empty read models and compare.
    let before = snapshot(&server).await;
    assert!(server.terminate().success());
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(&server.store_url()).await.unwrap();
    for table in ["llms", "secrets", "secret_backends"] {
        sqlx::query(&format!("DELETE FROM {table}")).execute(&mut conn).await.unwrap();
    }
    sqlx::query("UPDATE projection_checkpoints SET transaction_id = 0, position = 0").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    server.spawn().await;
    // Reads do not wait for the projector; a write does, and the log is projected in order.
    let (status, _) = server.post("/api/v1/secrets", json!({"name": "after-replay", "data": {}})).await;
    assert_eq!(status, 201);
    assert_eq!(server.delete("/api/v1/secrets/after-replay").await.0, 204);
    assert_eq!(snapshot(&server).await, before);
}

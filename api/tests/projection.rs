//! The projector: read models catch up from their checkpoints, and a replay from scratch
//! yields the same tables.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::{StoreKind, TestApp, llm, secret};

testkit::on_both_stores!(
    a_projector_behind_the_log_catches_up_on_start,
    replaying_from_scratch_rebuilds_the_same_read_models,
    two_processes_on_one_database_read_their_own_and_each_others_writes,
);

/// Every list the API serves.
async fn everything(t: &TestApp) -> Value {
    let mut out = serde_json::Map::new();
    for kind in ["llms", "secrets", "secretbackends"] {
        out.insert(kind.into(), t.get(&format!("/api/v1/{kind}")).await.body["items"].clone());
    }
    Value::Object(out)
}

async fn populate(t: &TestApp) {
    t.post("/api/v1/secretbackends", json!({"name": "archive", "type": "plaintext"})).await;
    for i in 0..5 {
        t.post("/api/v1/secrets", secret(&format!("key-{i}"), "API_KEY", &format!("v{i}"))).await;
        t.post("/api/v1/llms", llm(&format!("llm-{i}"), &format!("key-{i}"))).await;
    }
    let mut heavy = llm("llm-0", "key-0");
    heavy["tier"] = json!("heavy");
    t.put("/api/v1/llms/llm-0", heavy).await;
    t.delete("/api/v1/llms/llm-4").await;
    assert_eq!(t.delete("/api/v1/secrets/key-4").await.status, StatusCode::NO_CONTENT);
}

async fn a_projector_behind_the_log_catches_up_on_start(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    populate(&t).await;
    let before = everything(&t).await;
    t.app.services.store.projector.shutdown();

    // The llms projection lost its last rounds: its checkpoint is back at the start of the log
    // and its table is stale (one row gone, one row from long ago).
    let pool = &t.app.services.store.db.pool;
    sqlx::query("UPDATE projection_checkpoints SET transaction_id = 0, position = 0 WHERE name = 'llms'")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM llms WHERE name = 'llm-1'").execute(pool).await.unwrap();
    sqlx::query("UPDATE llms SET tier = 'fast', resource_version = 1 WHERE name = 'llm-0'")
        .execute(pool)
        .await
        .unwrap();

    let restarted = settle(TestApp { app: t.reopen().await, db: t.db }).await;
    assert_eq!(everything(&restarted).await, before);
}

async fn replaying_from_scratch_rebuilds_the_same_read_models(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    populate(&t).await;
    let before = everything(&t).await;
    let replayed = replay_from_scratch(t).await;
    assert_eq!(everything(&replayed).await, before);
}

async fn two_processes_on_one_database_read_their_own_and_each_others_writes(kind: StoreKind) {
    let a = TestApp::start(kind).await;
    let b = a.replica().await;
    a.post("/api/v1/secrets", secret("shared", "API_KEY", "v")).await;
    for i in 0..10 {
        let (writer, reader) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let name = format!("llm-{i}");
        let r = writer.post("/api/v1/llms", llm(&name, "shared")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        assert_eq!(writer.get(&format!("/api/v1/llms/{name}")).await.status, StatusCode::OK);
        assert_eq!(reader.get(&format!("/api/v1/llms/{name}")).await.status, StatusCode::OK);
        let mut heavy = llm(&name, "shared");
        heavy["tier"] = json!("heavy");
        assert_eq!(reader.put(&format!("/api/v1/llms/{name}"), heavy).await.status, StatusCode::OK);
        assert_eq!(writer.get(&format!("/api/v1/llms/{name}")).await.body["resourceVersion"], 2);
    }
    let seen_by_a = everything(&a).await;
    assert_eq!(everything(&b).await, seen_by_a);

    // Both projectors worked on the same tables; a replay from scratch agrees with them.
    b.app.services.store.projector.shutdown();
    let replayed = replay_from_scratch(a).await;
    assert_eq!(everything(&replayed).await, seen_by_a);
}

/// Stops `t`'s projector, empties every read model and its checkpoint, and starts mcpd again
/// on the same store: the read models are then a replay of the whole log.
async fn replay_from_scratch(t: TestApp) -> TestApp {
    t.app.services.store.projector.shutdown();
    let pool = &t.app.services.store.db.pool;
    for table in ["llms", "secrets", "secret_backends"] {
        sqlx::query(&format!("DELETE FROM {table}")).execute(pool).await.unwrap();
    }
    sqlx::query("UPDATE projection_checkpoints SET transaction_id = 0, position = 0").execute(pool).await.unwrap();
    settle(TestApp { app: t.reopen().await, db: t.db }).await
}

/// Reads do not wait for the projector; a write does, and the log is projected in order, so
/// after one write the read models hold everything before it.
async fn settle(t: TestApp) -> TestApp {
    t.post("/api/v1/secrets", secret("late", "K", "v")).await;
    t.delete("/api/v1/secrets/late").await;
    t
}

//! The projector: read models catch up from their checkpoints, and a replay from scratch
//! yields the same tables.

use std::time::{Duration, Instant};

use app::store::write::Decided;
use axum::http::StatusCode;
use cqrs_es::DomainEvent;
use domain::llm::{Llm, LlmEvent, LlmSpec};
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
    t.post("/api/v1/secretbackends", json!({"name": "archive", "type": "plaintext"})).await.succeeded();
    for i in 0..5 {
        t.post("/api/v1/secrets", secret(&format!("key-{i}"), "API_KEY", &format!("v{i}"))).await.succeeded();
        t.post("/api/v1/llms", llm(&format!("llm-{i}"), &format!("key-{i}"))).await.succeeded();
    }
    let mut heavy = llm("llm-0", "key-0");
    heavy["tier"] = json!("heavy");
    t.put("/api/v1/llms/llm-0", heavy).await.succeeded();
    t.delete("/api/v1/llms/llm-4").await.succeeded();
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

/// Waits until every read model has applied every event of its kinds, as `mcpctl projections`
/// shows it. (A write waits only for the read models it changes.)
async fn settle(t: TestApp) -> TestApp {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = t.get("/api/v1/projections").await;
        let items = r.body["items"].as_array().cloned().unwrap_or_default();
        if !items.is_empty() && items.iter().all(|i| i["lagEvents"] == 0) {
            return t;
        }
        assert!(Instant::now() < deadline, "the read models did not catch up: {:?}", r.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// PostgreSQL: a transaction that appended an event and stays open while later writes commit.
/// Its event sorts before theirs, so they are not applied ahead of it (inline or by the
/// projector); once it commits, every one of them shows and verify finds the read models in
/// step with the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_committing_late_is_projected_before_the_writes_after_it() {
    let t = TestApp::start_holding_the_cluster(StoreKind::Postgres).await;
    t.post("/api/v1/secrets", secret("shared", "API_KEY", "v")).await.succeeded();
    let pool = &t.app.services.store.db.pool;
    let spec = serde_json::from_value::<LlmSpec>(json!({"type": "openai", "model": "m", "tier": "fast", "extra": {}}))
        .unwrap();
    let early = LlmEvent::LlmCreated { spec: spec.clone() };
    let mut held = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('llm', 'early', 1, $1, $2, CAST($3 AS json), CAST('{}' AS json))",
    )
    .bind(early.event_type())
    .bind(early.event_version())
    .bind(serde_json::to_value(&early).unwrap().to_string())
    .execute(&mut *held)
    .await
    .unwrap();

    let (names, events): (Vec<String>, Vec<[LlmEvent; 1]>) =
        (0..3).map(|i| (format!("later-{i}"), [LlmEvent::LlmCreated { spec: spec.clone() }])).unzip();
    let later: Vec<Decided<Llm>> =
        names.iter().zip(&events).map(|(id, events)| Decided { id: id.as_str(), before: 0, events }).collect();
    t.app.services.store.append(&later, &Default::default()).await.unwrap();
    // Two whole passes of the projector over the log with the later events in it.
    t.app.services.store.projector.passes(2).await;
    assert_eq!(
        t.get("/api/v1/llms/later-0").await.status,
        StatusCode::NOT_FOUND,
        "applied ahead of an open transaction"
    );

    held.commit().await.unwrap();
    let t = settle(t).await;
    for name in ["early", "later-0", "later-1", "later-2"] {
        assert_eq!(t.get(&format!("/api/v1/llms/{name}")).await.status, StatusCode::OK, "{name}");
    }
    let r = t.post("/api/v1/projections/verify", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["differences"], json!([]), "{:?}", r.body);

    // With nothing older running, writes show at once again.
    let r = t.post("/api/v1/llms", llm("after", "shared")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}

/// PostgreSQL: a read model's table that refuses a write's row (a CHECK constraint here) fails
/// neither the write nor the ones after it: the event is recorded, the write is answered 202
/// while the read model cannot show it, and it shows once the table takes it. (The one-statement
/// append is rolled back and the event appended alone, as when an inline apply fails.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_model_refusing_a_row_fails_no_write() {
    let db = testkit::TestDb::new(StoreKind::Postgres).await;
    let app = server::App::open(&db.url, Duration::from_millis(300), &crate::support::bootstrap()).await.unwrap();
    let t = TestApp { app, db };
    t.post("/api/v1/secrets", secret("shared", "API_KEY", "v")).await.succeeded();
    let pool = t.app.services.store.db.pool.clone();
    sqlx::query("ALTER TABLE llms ADD CONSTRAINT refuses CHECK (model <> 'refused')").execute(&pool).await.unwrap();
    let mut refused = llm("refused", "shared");
    refused["model"] = json!("refused");
    let r = t.post("/api/v1/llms", refused).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let recorded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = 'llm' AND aggregate_id = 'refused'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(recorded, 1, "the event is in the log");
    assert_eq!(t.get("/api/v1/llms/refused").await.status, StatusCode::NOT_FOUND);

    sqlx::query("ALTER TABLE llms DROP CONSTRAINT refuses").execute(&pool).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while t.get("/api/v1/llms/refused").await.status != StatusCode::OK {
        assert!(Instant::now() < deadline, "the projector did not apply the event once the table took it");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(t.get("/api/v1/llms/refused").await.body["model"], "refused");
    let r = t.post("/api/v1/llms", llm("after", "shared")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}

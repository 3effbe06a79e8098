//! The event log: what each change records, and what it never records.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use projections::Position;
use serde_json::json;
use sqlx::Row;

use crate::support::{StoreKind, TestApp, llm};

testkit::on_both_stores!(
    a_dry_run_checks_every_rule_and_records_nothing,
    history_lists_every_change_with_its_actor,
    every_event_says_who_when_and_which_request,
    secret_values_never_reach_the_log_or_read_models,
    a_long_history_loads_from_a_snapshot_and_a_broken_snapshot_is_replayed_past,
    the_write_path_tells_a_clash_from_a_refusal_and_answers_with_the_new_state,
);

/// `Store::write`, the one write path: a create reads nothing but still meets an existing
/// stream (it clashes, then is decided on the loaded aggregate: refused when the Llm is live,
/// recorded after its history when it was deleted); an append after a stale sequence is a
/// retryable clash, distinct from a refusal; every write answers with where its event landed
/// and the aggregate's new sequence.
async fn the_write_path_tells_a_clash_from_a_refusal_and_answers_with_the_new_state(kind: StoreKind) {
    use app::store::write::{Decided, WriteError};
    use domain::llm::{Llm, LlmCommand, LlmError, LlmEvent, LlmSpec, LlmType, Tier};

    let t = TestApp::start(kind).await;
    let store = &t.app.services.store;
    let name = domain::ResourceName::parse("w").unwrap();
    let spec = |model: &str| LlmSpec {
        provider: LlmType::parse("anthropic").unwrap(),
        model: model.into(),
        url: None,
        tier: Tier::parse("fast").unwrap(),
        description: String::new(),
        api_key_ref: None,
        extra: Default::default(),
    };
    let create =
        |model: &str| LlmCommand::CreateLlm { name: name.clone(), spec: spec(model), referenced_secret_keys: None };
    let metadata = [("actor".to_owned(), "tester".to_owned())].into();
    let head = store.log.head().await.unwrap();

    let written = store.write::<Llm>("w", create("m1"), &metadata).await.unwrap();
    assert_eq!(written.sequence, 1);
    let appended = written.appended.expect("a create records an event");
    assert!(appended.last > head, "the answer says where the event landed");
    assert_eq!(appended.event_types, ["LlmCreated"]);

    // Created again while live: the optimistic append clashes, the reload refuses it.
    match store.write::<Llm>("w", create("m2"), &metadata).await {
        Err(WriteError::Refused(LlmError::AlreadyExists(n))) => assert_eq!(n, name),
        other => panic!("a create of a live Llm is refused, not {:?}", other.map(|w| w.sequence)),
    }

    // An append after a sequence that is no longer the last: a clash, and nothing recorded.
    let events = [LlmEvent::LlmUpdated { spec: spec("stale") }];
    match store.append(&[Decided::<Llm> { id: "w", before: 0, events: &events }], &metadata).await {
        Err(WriteError::Clash { aggregate_type, id }) => assert_eq!((aggregate_type, id.as_str()), ("llm", "w")),
        other => panic!("a stale append is a clash, not {:?}", other.map(|a| a.map(|a| a.last))),
    }

    // A command that changes nothing records nothing.
    let same = LlmCommand::UpdateLlm {
        name: name.clone(),
        spec: spec("m1"),
        referenced_secret_keys: None,
        expected_version: None,
    };
    let unchanged = store.write::<Llm>("w", same, &metadata).await.unwrap();
    assert!(unchanged.appended.is_none());
    assert_eq!(unchanged.sequence, 1);

    // Deleted, then created again: the create meets the old stream and continues it.
    let delete = LlmCommand::DeleteLlm { name: name.clone(), expected_version: Some(1) };
    assert_eq!(store.write::<Llm>("w", delete, &metadata).await.unwrap().sequence, 2);
    let again = store.write::<Llm>("w", create("m3"), &metadata).await.unwrap();
    assert_eq!(again.sequence, 3);
    let history = store.log.aggregate_history("llm", "w").await.unwrap();
    let types: Vec<&str> = history.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["LlmCreated", "LlmDeleted", "LlmCreated"]);
    assert!(history.iter().all(|e| e.metadata.get("actor").map(String::as_str) == Some("tester")));
}

/// An aggregate with a long history is loaded from its latest snapshot (every 50 events)
/// plus what follows it, and gives the same answers as a replay of everything: a snapshot that
/// no longer reads (an aggregate's shape changed) is passed over and the events replayed.
async fn a_long_history_loads_from_a_snapshot_and_a_broken_snapshot_is_replayed_past(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.seed_llm().await;
    let values = ["sk-snap-00", "sk-snap-01"];
    for value in values {
        let r = t.put("/api/v1/secrets/anthropic", json!({"data": {"API_KEY": value}})).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    for i in 0..120 {
        let mut body = llm("claude-fast", "anthropic");
        body["description"] = json!(format!("edit {i}"));
        let r = t.put("/api/v1/llms/claude-fast", body).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    let pool = &t.app.services.store.db.pool;
    let snapshot =
        "SELECT last_sequence FROM aggregate_snapshots WHERE aggregate_type = 'llm' AND aggregate_id = 'claude-fast'";
    let rows = sqlx::query(snapshot).fetch_all(pool).await.unwrap();
    assert_eq!(rows.len(), 1, "one snapshot row per aggregate, updated in place");
    assert_eq!(rows[0].get::<i64, _>("last_sequence"), 100, "taken at every 50th event");

    // The state it gives is the replay's: a stale version is refused, the current one taken,
    // an unchanged spec records nothing.
    let version = t.get("/api/v1/llms/claude-fast").await.body["resourceVersion"].as_i64().unwrap();
    assert!(version > 100, "{version}");
    let put = async |body: serde_json::Value, if_match: i64| {
        t.call(axum::http::Method::PUT, "/api/v1/llms/claude-fast", Some(body), Some(&format!("\"{if_match}\""))).await
    };
    let mut body = llm("claude-fast", "anthropic");
    body["description"] = json!("edit 119");
    let r = put(body.clone(), version - 1).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    let r = put(body, version).await;
    assert_eq!((r.status, &r.body["resourceVersion"]), (StatusCode::OK, &json!(version)), "unchanged: {:?}", r.body);

    // A snapshot that no longer reads is passed over.
    sqlx::query("UPDATE aggregate_snapshots SET payload = '{\"not\": \"an llm\"}' WHERE aggregate_type = 'llm'")
        .execute(pool)
        .await
        .unwrap();
    let mut body = llm("claude-fast", "anthropic");
    body["tier"] = json!("heavy");
    let r = put(body, version).await;
    assert_eq!((r.status, &r.body["resourceVersion"]), (StatusCode::OK, &json!(version + 1)), "{:?}", r.body);
    assert_eq!(r.body["tier"], "heavy");
    // ... and replaced by the commit after that long replay.
    let rows = sqlx::query(snapshot).fetch_all(pool).await.unwrap();
    assert_eq!(rows[0].get::<i64, _>("last_sequence"), version + 1, "re-taken after a replay of everything");
    let r = t.delete("/api/v1/llms/claude-fast").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    // Snapshots hold no secret values.
    let all: Vec<String> = sqlx::query("SELECT payload AS p FROM aggregate_snapshots")
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("p"))
        .collect();
    for value in values {
        assert!(!all.iter().any(|p| p.contains(value)), "{value} in a snapshot");
    }
}

async fn every_event_says_who_when_and_which_request(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let request = Request::post("/api/v1/secrets")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-request-id", "req-4711")
        .header("user-agent", "events-test/1.0")
        .body(Body::from(json!({"name": "anthropic", "data": {"API_KEY": "k"}}).to_string()))
        .unwrap();
    let r = t.send(request).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.headers["x-request-id"], "req-4711");
    t.post("/api/v1/llms", llm("claude-fast", "anthropic")).await.succeeded();
    t.delete("/api/v1/llms/claude-fast").await.succeeded();

    let events = t.app.services.store.log.read_after(Position::default(), 1000).await.unwrap();
    let types: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "SecretBackendCreated",
            "DefaultBackendSet",
            "UserCreated",
            "TokenIssued",
            "RoleBindingCreated",
            "SecretCreated",
            "LlmCreated",
            "LlmDeleted"
        ]
    );
    assert!(events.windows(2).all(|w| w[0].position < w[1].position), "positions follow commit order");
    assert_eq!((events[2].aggregate_id.as_str(), events[2].metadata["actor"].as_str()), ("admin", "mcpd"));
    let admin_token = events[3].aggregate_id.clone();
    let secret_created = &events[5];
    assert_eq!(secret_created.metadata["request_id"], "req-4711");
    assert_eq!(secret_created.metadata["actor"], "admin", "the authenticated user");
    assert_eq!(secret_created.metadata["token_id"], admin_token);
    assert_eq!(secret_created.metadata["user_agent"], "events-test/1.0");
    assert_eq!(secret_created.metadata["source"], "api");
    assert!(secret_created.metadata["recorded_at"].parse::<jiff::Timestamp>().is_ok());
    assert_eq!(events[0].metadata["actor"], "mcpd", "the seeded backend is recorded as mcpd's own act");
    for event in &events {
        assert!(event.metadata.contains_key("request_id") && event.metadata.contains_key("recorded_at"));
    }
}

async fn secret_values_never_reach_the_log_or_read_models(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let values = ["sk-live-7f3a9c2e1d", "org-secret-55aa", "rotated-0b1c2d3e4f"];
    t.post("/api/v1/secrets", json!({"name": "anthropic", "data": {"API_KEY": values[0], "ORG": values[1]}}))
        .await
        .succeeded();
    t.post("/api/v1/llms", llm("claude-fast", "anthropic")).await.succeeded();
    t.put("/api/v1/secrets/anthropic", json!({"data": {"API_KEY": values[2], "ORG": values[1]}})).await.succeeded();
    // A refused update and a duplicate create carry values too.
    let refused = t.put("/api/v1/secrets/anthropic", json!({"data": {"OTHER": values[0]}})).await;
    assert!(refused.status.is_client_error(), "{:?}", refused.body);
    let duplicate = t.post("/api/v1/secrets", json!({"name": "anthropic", "data": {"API_KEY": values[0]}})).await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT, "{:?}", duplicate.body);
    let revealed = t.get("/api/v1/secrets/anthropic?reveal=true").await;
    assert_eq!(revealed.body["data"]["API_KEY"], values[2], "the values are stored");

    let events = t.app.services.store.log.read_after(Position::default(), 1000).await.unwrap();
    assert!(events.iter().any(|e| e.event_type == "SecretUpdated"));
    let mut haystack = String::new();
    for event in &events {
        haystack.push_str(&event.payload.to_string());
        haystack.push_str(&format!("{:?}", event.metadata));
    }
    let pool = &t.app.services.store.db.pool;
    for query in [
        "SELECT name || backend || description || keys || value_ref AS t FROM secrets",
        "SELECT name || model || description || extra AS t FROM llms",
        "SELECT name || description AS t FROM secret_backends",
    ] {
        for row in sqlx::query(query).fetch_all(pool).await.unwrap() {
            haystack.push_str(&row.get::<String, _>("t"));
        }
    }
    for value in values {
        assert!(!haystack.contains(value), "{value} leaked into the event log or a read model");
    }
    // Superseded and refused versions of the values do not linger in the value table either.
    let stored: Vec<String> = sqlx::query("SELECT data FROM plaintext_secret_values")
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("data"))
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(!stored[0].contains(values[0]));
}

async fn counts(t: &TestApp) -> (usize, i64) {
    let events = t.app.services.store.log.read_after(Position::default(), 10_000).await.unwrap().len();
    let values: i64 = sqlx::query("SELECT COUNT(*) AS n FROM plaintext_secret_values")
        .fetch_one(&t.app.services.store.db.pool)
        .await
        .unwrap()
        .get("n");
    (events, values)
}

async fn a_dry_run_checks_every_rule_and_records_nothing(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.seed_llm().await;
    let before = counts(&t).await;

    let r = t.post("/api/v1/secrets?dryRun=true", json!({"name": "openai", "data": {"API_KEY": "sk-dry"}})).await;
    assert_eq!(r.status, StatusCode::OK, "what would be created: {:?}", r.body);
    assert!(r.headers.get("location").is_none(), "nothing was created");
    assert_eq!(r.body["keys"], json!(["API_KEY"]));
    assert_eq!(r.body["resourceVersion"], 1);
    assert_eq!(t.get("/api/v1/secrets/openai").await.status, StatusCode::NOT_FOUND);

    let r = t.post("/api/v1/llms?dryRun=true", llm("gpt", "openai")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "references are checked too");
    assert_eq!(r.fields(), ["spec.apiKeyRef.name"]);

    let mut heavy = llm("claude-fast", "anthropic");
    heavy["tier"] = json!("heavy");
    let r = t.put("/api/v1/llms/claude-fast?dryRun=true", heavy).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["tier"], "heavy");
    assert_eq!(r.body["resourceVersion"], 2, "the version it would have");
    let r = t.put("/api/v1/llms/claude-fast?dryRun=true", llm("claude-fast", "anthropic")).await;
    assert_eq!(r.body["resourceVersion"], 1, "an unchanged spec would record nothing");

    let r = t.put("/api/v1/secrets/anthropic?dryRun=true", json!({"data": {"API_KEY": "sk-new"}})).await;
    assert_eq!(r.body["dataVersion"], 2);
    let r = t.call(axum::http::Method::DELETE, "/api/v1/secrets/anthropic?dryRun=true", None, None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "still used by the llm");
    let r = t.call(axum::http::Method::DELETE, "/api/v1/llms/claude-fast?dryRun=true", None, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    assert_eq!(counts(&t).await, before, "no event and no value was written");
    let llm_now = t.get("/api/v1/llms/claude-fast").await;
    assert_eq!((llm_now.body["tier"].clone(), llm_now.body["resourceVersion"].clone()), (json!("fast"), json!(1)));
    let revealed = t.get("/api/v1/secrets/anthropic?reveal=true").await;
    assert_eq!(revealed.body["data"]["API_KEY"], "sk-ant-seed");
}

async fn history_lists_every_change_with_its_actor(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.seed_llm().await;
    let mut heavy = llm("claude-fast", "anthropic");
    heavy["tier"] = json!("heavy");
    t.put("/api/v1/llms/claude-fast", heavy).await.succeeded();

    let r = t.get("/api/v1/llms/claude-fast/history").await;
    assert_eq!(r.status, StatusCode::OK);
    let items = r.body["items"].as_array().unwrap();
    let types: Vec<_> = items.iter().map(|i| i["eventType"].as_str().unwrap()).collect();
    assert_eq!(types, ["LlmCreated", "LlmUpdated"]);
    assert_eq!(items[1]["resourceVersion"], 2);
    assert_eq!(items[1]["actor"], "admin");
    assert!(items[1]["recordedAt"].as_str().unwrap().starts_with("20"));
    assert!(items[1].get("spec").is_none() && items[1].get("payload").is_none());
    assert_eq!(t.get("/api/v1/secrets/never-was/history").await.status, StatusCode::NOT_FOUND);
    // Deleted, the resource has no history of its own; the audit log keeps every event.
    t.delete("/api/v1/llms/claude-fast").await.succeeded();
    let r = t.get("/api/v1/llms/claude-fast/history").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.message().contains("/api/v1/audit?kind=llm&name=claude-fast"), "{}", r.message());
    let audit = t.get("/api/v1/audit?kind=llm&name=claude-fast").await.body;
    let types: Vec<_> = audit["items"].as_array().unwrap().iter().map(|i| i["eventType"].as_str().unwrap()).collect();
    assert_eq!(types, ["LlmDeleted", "LlmUpdated", "LlmCreated"]);
    let version = t.get("/version").await;
    assert_eq!(version.body["version"], env!("CARGO_PKG_VERSION"));
}

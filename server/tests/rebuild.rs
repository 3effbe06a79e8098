//! Projection operations: status, rebuild while serving, verify, poison events, and upcasting
//! events written in an old shape.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use app::store::write::Decided;
use axum::http::{Method, StatusCode};
use cqrs_es::DomainEvent;
use domain::llm::{Llm, LlmEvent, LlmSpec, LlmType, Tier};
use projections::Dialect;
use projections::read_models::ReadModel;
use serde_json::{Value, json};

use crate::support::{StoreKind, TestApp, llm, secret};

testkit::on_both_stores!(
    a_rebuild_under_writes_equals_a_replay_and_never_hides_a_resource,
    verify_reports_rows_changed_behind_its_back,
    status_shows_checkpoints_and_lag,
    a_poison_event_stops_only_its_projection_until_rebuilt,
    a_token_issued_while_its_read_model_is_stopped_is_still_handed_over,
    events_written_in_the_v1_shape_are_upcast_on_read,
);

/// Appends `llms` Llms with `updates` updates each straight to the log, in batches: a log long
/// enough that a rebuild takes a while. Returns once the read models hold it.
async fn bulk_llms(t: &TestApp, llms: usize, updates: usize) {
    let store = &t.app.services.store;
    let spec = |i: usize, u: usize| LlmSpec {
        provider: LlmType::parse("anthropic").unwrap(),
        model: format!("model-{i}-{u}"),
        url: None,
        tier: Tier::parse("fast").unwrap(),
        description: String::new(),
        api_key_ref: None,
        extra: BTreeMap::new(),
    };
    for chunk in (0..llms).collect::<Vec<_>>().chunks(50) {
        let items = chunk
            .iter()
            .map(|&i| {
                let mut events = vec![LlmEvent::LlmCreated { spec: spec(i, 0) }];
                events.extend((1..=updates).map(|u| LlmEvent::LlmUpdated { spec: spec(i, u) }));
                (format!("bulk-{i}"), events)
            })
            .collect::<Vec<_>>();
        let decided: Vec<Decided<Llm>> =
            items.iter().map(|(id, events)| Decided { id: id.as_str(), before: 0, events }).collect();
        store.append(&decided, &[("actor".to_owned(), "loader".to_owned())].into()).await.unwrap();
    }
    let head = store.log.head().await.unwrap();
    store.projector.wait_for(&ReadModel::ALL, head, Duration::from_secs(120)).await.unwrap();
}

async fn names(t: &TestApp, kind: &str) -> BTreeSet<String> {
    let r = t.get(&format!("/api/v1/{kind}")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_owned()).collect()
}

/// Polls the status until no rebuild of `models` runs; the final statuses by name.
async fn await_rebuild(t: &TestApp, models: &[&str]) -> BTreeMap<String, Value> {
    for _ in 0..1200 {
        let r = t.get("/api/v1/projections").await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let items: BTreeMap<String, Value> = r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| (i["name"].as_str().unwrap().to_owned(), i.clone()))
            .filter(|(n, _)| models.contains(&n.as_str()))
            .collect();
        if items.values().all(|i| i["rebuild"]["status"] != "running") {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the rebuild of {models:?} did not finish in 2 minutes");
}

async fn verify(t: &TestApp, body: Value) -> Vec<String> {
    let r = t.post("/api/v1/projections/verify", body).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["differences"].as_array().unwrap().iter().map(|d| d["message"].as_str().unwrap().to_owned()).collect()
}

async fn a_rebuild_under_writes_equals_a_replay_and_never_hides_a_resource(kind: StoreKind) {
    let t = Arc::new(TestApp::start(kind).await);
    assert_eq!(t.post("/api/v1/secrets", secret("shared", "API_KEY", "v")).await.status, StatusCode::CREATED);
    bulk_llms(&t, 300, 40).await;
    let before = names(&t, "llms").await;
    assert_eq!(before.len(), 300);

    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicUsize::new(0));
    // A writer creating Llms and updating the loaded ones, through the API.
    let writer = {
        let (t, stop, writes) = (t.clone(), stop.clone(), writes.clone());
        tokio::spawn(async move {
            let mut updated: BTreeMap<String, i64> = BTreeMap::new();
            let mut created = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let name = format!("w-{i}");
                let r = t.post("/api/v1/llms", llm(&name, "shared")).await;
                assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
                created.push(name);
                let target = format!("bulk-{}", i % 300);
                let mut heavy = llm(&target, "shared");
                heavy["tier"] = json!("heavy");
                heavy["description"] = json!(format!("write {i}"));
                let r = t.put(&format!("/api/v1/llms/{target}"), heavy).await;
                assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
                *updated.entry(target).or_insert(41) += 1;
                writes.fetch_add(2, Ordering::SeqCst);
                i += 1;
            }
            (created, updated)
        })
    };
    // A reader listing Llms all along: every Llm that existed before must be in every answer.
    let reader = {
        let (t, stop, before) = (t.clone(), stop.clone(), before.clone());
        tokio::spawn(async move {
            let (mut polls, mut missing) = (0, BTreeSet::new());
            while !stop.load(Ordering::SeqCst) {
                let seen = names(&t, "llms").await;
                missing.extend(before.difference(&seen).cloned());
                polls += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (polls, missing)
        })
    };

    // The writer and the reader under way before the rebuild starts.
    until_more(&writes, 0, 10).await;
    let writes_before = writes.load(Ordering::SeqCst);
    let r = t.post("/api/v1/projections/rebuild", json!({"all": true})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["items"].as_array().unwrap().len(), ReadModel::ALL.len());
    assert!(r.body["items"].as_array().unwrap().iter().all(|i| i["rebuild"]["status"] == "running"));
    // A second rebuild of a read model being rebuilt is refused.
    let again = t.post("/api/v1/projections/rebuild", json!({"names": ["llms"]})).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{:?}", again.body);

    let done = await_rebuild(&t, &ReadModel::ALL.map(|m| m.name())).await;
    let writes_during = writes.load(Ordering::SeqCst) - writes_before;
    // Writes after the rebuild finished, too.
    until_more(&writes, writes.load(Ordering::SeqCst), 10).await;
    stop.store(true, Ordering::SeqCst);
    let (created, updated) = writer.await.unwrap();
    let (polls, missing) = reader.await.unwrap();

    for (name, item) in &done {
        assert_eq!(item["rebuild"]["status"], "completed", "{name}: {item}");
        assert_eq!(item["rebuild"]["requestedBy"], "admin");
        assert!(item["rebuild"]["rate"].as_f64().unwrap() > 0.0, "{name}: {item}");
        assert_eq!(item["rebuild"]["etaSeconds"], Value::Null, "{name}: {item}");
        assert!(item["rebuild"]["replayed"].as_i64().unwrap() >= 12_300, "{name}: {item}");
    }
    assert!(writes_during > 0, "the writer wrote nothing while the rebuild ran");
    assert!(polls > 0);
    assert_eq!(missing, BTreeSet::new(), "a reader saw Llms vanish during the rebuild");

    // The tables equal a replay of the whole log from scratch...
    assert_eq!(verify(&t, json!({})).await, Vec::<String>::new());
    // ...and hold every write, the ones made during the rebuild included.
    let after = names(&t, "llms").await;
    assert!(after.is_superset(&before));
    for name in &created {
        assert!(after.contains(name), "{name} is missing");
    }
    for (name, version) in &updated {
        let r = t.get(&format!("/api/v1/llms/{name}")).await;
        assert_eq!(r.body["resourceVersion"], *version, "{name}");
        assert_eq!(r.body["tier"], "heavy");
    }
}

/// Polls until `counter` is `more` past `from` (a minute at most).
async fn until_more(counter: &AtomicUsize, from: usize, more: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while counter.load(Ordering::SeqCst) < from + more {
        assert!(std::time::Instant::now() < deadline, "the writer made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs `sql` on the test's database, as an operator (or a bug) would behind mcpd's back.
async fn tamper(t: &TestApp, sql: &str) {
    sqlx::query(sql).execute(&t.app.services.store.db.pool).await.unwrap();
}

async fn verify_reports_rows_changed_behind_its_back(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    for i in 0..3 {
        assert_eq!(
            t.post("/api/v1/secrets", secret(&format!("key-{i}"), "API_KEY", "v")).await.status,
            StatusCode::CREATED
        );
        assert_eq!(
            t.post("/api/v1/llms", llm(&format!("llm-{i}"), &format!("key-{i}"))).await.status,
            StatusCode::CREATED
        );
    }
    assert_eq!(verify(&t, json!({})).await, Vec::<String>::new(), "a healthy store");

    tamper(&t, "UPDATE llms SET tier = 'heavy' WHERE name = 'llm-1'").await;
    tamper(&t, "DELETE FROM secrets WHERE name = 'key-2'").await;
    tamper(
        &t,
        "INSERT INTO users (name, description, resource_version, created_at, updated_at) \
         VALUES ('ghost', '', 1, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
    )
    .await;
    let issued = t.post("/api/v1/tokens", json!({"user": "admin", "description": "ci"})).await;
    assert_eq!(issued.status, StatusCode::CREATED, "{:?}", issued.body);
    let token_id = issued.body["name"].as_str().unwrap().to_owned();
    tamper(&t, &format!("UPDATE tokens SET hash = 'forged' WHERE id = '{token_id}'")).await;

    let mut expected = vec![
        r#"llms "llm-1": tier is "heavy" in the table, "fast" in a replay of the log"#.to_owned(),
        r#"secrets "key-2": missing from the table"#.to_owned(),
        format!(r#"tokens "{token_id}": hash is "(hidden)" in the table, "(hidden)" in a replay of the log"#),
        r#"users "ghost": in the table, but not in a replay of the log"#.to_owned(),
    ];
    let mut found = verify(&t, json!({})).await;
    found.sort();
    expected.sort();
    assert_eq!(found, expected);
    assert_eq!(verify(&t, json!({"names": ["llms"]})).await, vec![expected[0].clone()]);
    let unknown = t.post("/api/v1/projections/verify", json!({"names": ["llmz"]})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.message().contains("one of secret_backends, secrets, llms"), "{}", unknown.message());

    // A rebuild repairs all of it.
    let r = t.post("/api/v1/projections/rebuild", json!({"all": true})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    await_rebuild(&t, &ReadModel::ALL.map(|m| m.name())).await;
    assert_eq!(verify(&t, json!({})).await, Vec::<String>::new());
    assert_eq!(t.get("/api/v1/secrets/key-2").await.status, StatusCode::OK);
    assert_eq!(t.get("/api/v1/llms/llm-1").await.body["tier"], "fast");
    // The admin's token works again: its hash is back.
    assert_eq!(t.get("/api/v1/whoami").await.status, StatusCode::OK);
}

async fn status_shows_checkpoints_and_lag(kind: StoreKind) {
    // Nobody else's transaction may sort before this test's appends (see below).
    let t = TestApp::start_holding_the_cluster(kind).await;
    t.seed_llm().await;
    let r = t.get("/api/v1/projections").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let items = r.body["items"].as_array().unwrap().clone();
    assert_eq!(
        items.iter().map(|i| i["name"].as_str().unwrap()).collect::<Vec<_>>(),
        ReadModel::ALL.map(|m| m.name()).to_vec()
    );
    for item in &items {
        assert_eq!(item["lagEvents"], 0, "{item}");
        assert_eq!(item["lagSeconds"], 0.0, "{item}");
        assert_eq!(item["lastError"], Value::Null, "{item}");
        assert_eq!(item["runningHere"], true, "{item}");
        assert_eq!(item["rebuild"], Value::Null, "{item}");
        assert!(item["checkpoint"]["position"].as_i64() <= item["head"]["position"].as_i64());
    }
    let llms = &items[2];
    assert_eq!(llms["name"], "llms");
    assert_eq!(llms["checkpoint"], llms["head"], "the Llm was the last event");

    // Only holders of run:rebuild-projections see any of this.
    let viewer = crate::rbac::user_with(&t, "vera", Some("viewer")).await;
    for (method, path) in [
        (axum::http::Method::GET, "/api/v1/projections"),
        (axum::http::Method::POST, "/api/v1/projections/verify"),
        (axum::http::Method::POST, "/api/v1/projections/rebuild"),
    ] {
        let r = t.call_as(Some(&viewer), method, path, Some(json!({"all": true}))).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {:?}", r.body);
    }

    // With the projector stopped, a write still shows at once: its read model takes it in the
    // write's own transaction.
    t.app.services.store.projector.shutdown();
    let spec = LlmSpec {
        provider: LlmType::parse("anthropic").unwrap(),
        model: "m".into(),
        url: None,
        tier: Tier::parse("fast").unwrap(),
        description: String::new(),
        api_key_ref: None,
        extra: BTreeMap::new(),
    };
    let create = || LlmEvent::LlmCreated { spec: spec.clone() };
    let append = async |name: &str| {
        let events = [create()];
        let decided = [Decided::<Llm> { id: name, before: 0, events: &events }];
        t.app.services.store.append(&decided, &Default::default()).await.unwrap();
    };
    append("inline").await;
    // On PostgreSQL only when no older transaction is running anywhere in the cluster (another
    // session's, outside this test binary's reach, can still be): one could still append an
    // event that sorts before this one.
    let inlined = t.get("/api/v1/llms/inline").await.status == StatusCode::OK;
    assert!(inlined || kind == StoreKind::Postgres);

    // Events nothing applied (written by a process that does not apply them inline, as an
    // older mcpd) are lag, counted for the read models they concern.
    for i in 0..3 {
        let event = create();
        let payload = serde_json::to_value(&event).unwrap();
        raw_event(&t, ("llm", &format!("late-{i}")), 1, &event.event_type(), &event.event_version(), payload).await;
    }
    // The lag's age grows while nothing applies them: polled until it passes a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let r = loop {
        let r = t.get("/api/v1/projections").await;
        let llms = r.body["items"].as_array().unwrap().iter().find(|i| i["name"] == "llms").cloned().unwrap();
        if llms["lagSeconds"].as_f64().unwrap() >= 1.0 {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "the lag's age did not grow: {llms}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for item in r.body["items"].as_array().unwrap() {
        if item["name"] == "llms" {
            assert_eq!(item["lagEvents"], if inlined { 3 } else { 4 }, "{item}");
            assert!(item["lagSeconds"].as_f64().unwrap() >= 1.0, "{item}");
            assert!(item["checkpoint"]["position"].as_i64() < item["head"]["position"].as_i64());
        } else {
            assert_eq!(item["lagEvents"], 0, "{item}");
        }
    }

    // The next write to the read model applies them first, in log order, then its own event.
    append("behind").await;
    let caught_up = t.get("/api/v1/llms/behind").await.status == StatusCode::OK;
    assert!(caught_up || kind == StoreKind::Postgres);
    if caught_up {
        for name in ["inline", "late-0", "late-1", "late-2"] {
            assert_eq!(t.get(&format!("/api/v1/llms/{name}")).await.status, StatusCode::OK, "{name}");
        }
        let r = t.get("/api/v1/projections").await;
        assert!(r.body["items"].as_array().unwrap().iter().all(|i| i["lagEvents"] == 0), "{:?}", r.body);
    }
}

/// Appends one event row as it would have been written, payload and version included.
async fn raw_event(
    t: &TestApp,
    aggregate: (&str, &str),
    sequence: i64,
    event_type: &str,
    version: &str,
    payload: Value,
) {
    let db = &t.app.services.store.db;
    let json = match db.dialect {
        Dialect::Sqlite => "$6",
        Dialect::Postgres => "CAST($6 AS json)",
    };
    let metadata = match db.dialect {
        Dialect::Sqlite => "$7",
        Dialect::Postgres => "CAST($7 AS json)",
    };
    sqlx::query(&format!(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ($1, $2, $3, $4, $5, {json}, {metadata})"
    ))
    .bind(aggregate.0)
    .bind(aggregate.1)
    .bind(sequence)
    .bind(event_type)
    .bind(version)
    .bind(payload.to_string())
    .bind(json!({"actor": "old-mcpd"}).to_string())
    .execute(&db.pool)
    .await
    .unwrap();
    t.app.services.store.projector.wake();
}

async fn status_of(t: &TestApp, name: &str) -> Value {
    let r = t.get("/api/v1/projections").await;
    r.body["items"].as_array().unwrap().iter().find(|i| i["name"] == name).unwrap().clone()
}

async fn a_poison_event_stops_only_its_projection_until_rebuilt(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.seed_llm().await;
    assert_eq!(t.get("/readyz").await.status, StatusCode::OK);
    // An Llm event this version cannot read: a tier that does not exist.
    let poison = json!({"LlmCreated": {"spec": {"type": "anthropic", "model": "m", "tier": "turbo", "extra": {}}}});
    raw_event(&t, ("llm", "poisoned"), 1, "LlmCreated", "2", poison).await;

    let mut llms = Value::Null;
    for _ in 0..100 {
        llms = status_of(&t, "llms").await;
        if llms["stopped"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(llms["stopped"], true, "{llms}");
    let error = llms["lastError"].as_str().unwrap();
    assert!(error.contains(r#"event LlmCreated of llm "poisoned" at sequence 1"#), "{error}");
    assert!(error.contains("turbo"), "{error}");
    assert_eq!(llms["lagEvents"], 1, "the poison event is not skipped: {llms}");
    let ready = t.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body, json!({"status": "projections stopped", "stopped": ["llms"]}));

    // The other read models go on.
    assert_eq!(t.post("/api/v1/secrets", secret("after", "K", "v")).await.status, StatusCode::CREATED);
    assert_eq!(t.get("/api/v1/secrets/after").await.status, StatusCode::OK);
    assert_eq!(status_of(&t, "secrets").await["lastError"], Value::Null);
    // Llm writes are recorded but cannot be shown yet, and say why.
    let r = t.post("/api/v1/llms", llm("waiting", "anthropic")).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert!(r.message().contains("read model llms is stopped"), "{}", r.message());
    assert_eq!(t.get("/api/v1/llms/waiting").await.status, StatusCode::NOT_FOUND);

    // A rebuild that still meets the event fails, says why, and changes nothing.
    let r = t.post("/api/v1/projections/rebuild", json!({"names": ["llms"]})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let done = await_rebuild(&t, &["llms"]).await;
    assert_eq!(done["llms"]["rebuild"]["status"], "failed");
    assert!(done["llms"]["rebuild"]["error"].as_str().unwrap().contains("turbo"));
    assert_eq!(names(&t, "llms").await, BTreeSet::from(["claude-fast".to_owned()]));

    // Once the operator has dealt with the event, a rebuild brings the projection back.
    tamper(&t, "DELETE FROM events WHERE aggregate_id = 'poisoned'").await;
    let r = t.post("/api/v1/projections/rebuild", json!({"names": ["llms"]})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(await_rebuild(&t, &["llms"]).await["llms"]["rebuild"]["status"], "completed");
    // The projector runs again: a write is shown at once, and so is the one that waited.
    let r = t.post("/api/v1/llms", llm("later", "anthropic")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(names(&t, "llms").await, BTreeSet::from(["claude-fast", "later", "waiting"].map(String::from)));
    assert_eq!(t.get("/readyz").await.status, StatusCode::OK);
    let llms = status_of(&t, "llms").await;
    assert_eq!((llms["stopped"].clone(), llms["lastError"].clone()), (json!(false), Value::Null));
}

async fn events_written_in_the_v1_shape_are_upcast_on_read(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    // LlmCreated as version 1 wrote it: no `extra`.
    let v1 = json!({"LlmCreated": {"spec": {
        "type": "ollama", "model": "llama3", "url": "http://127.0.0.1:11434", "tier": "fast", "description": "from v1"
    }}});
    raw_event(&t, ("llm", "legacy"), 1, "LlmCreated", "1", v1.clone()).await;

    // The projector reads it.
    let mut r = t.get("/api/v1/llms/legacy").await;
    for _ in 0..100 {
        if r.status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        r = t.get("/api/v1/llms/legacy").await;
    }
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!((r.body["description"].clone(), r.body["extra"].clone()), (json!("from v1"), json!({})));

    // The aggregate loads it: an update builds on it.
    let mut update = json!({"name": "legacy", "type": "ollama", "model": "llama3", "url": "http://127.0.0.1:11434", "tier": "heavy"});
    update["extra"] = json!({"team": "search"});
    let r = t.put("/api/v1/llms/legacy", update).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["resourceVersion"], 2);

    // The stored row is as it was written; the new event is version 2.
    let rows = t.app.services.store.log.aggregate_history("llm", "legacy").await.unwrap();
    assert_eq!(rows.iter().map(|e| e.event_version.as_str()).collect::<Vec<_>>(), ["2", "2"], "upcast on read");
    let stored: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT event_version, {} FROM events WHERE aggregate_id = 'legacy' ORDER BY sequence",
        match t.app.services.store.db.dialect {
            Dialect::Sqlite => "payload",
            Dialect::Postgres => "payload::text",
        }
    ))
    .fetch_all(&t.app.services.store.db.pool)
    .await
    .unwrap();
    assert_eq!(stored[0].0, "1");
    assert_eq!(serde_json::from_str::<Value>(&stored[0].1).unwrap(), v1, "history is never rewritten");
    assert_eq!(stored[1].0, "2");

    // The audit log, rebuilds and verify read it too.
    let audit = t.get("/api/v1/audit?kind=llm&name=legacy").await;
    assert_eq!(audit.status, StatusCode::OK, "{:?}", audit.body);
    let types: Vec<&str> =
        audit.body["items"].as_array().unwrap().iter().map(|i| i["eventType"].as_str().unwrap()).collect();
    assert_eq!(types, ["LlmUpdated", "LlmCreated"]);
    assert_eq!(verify(&t, json!({"names": ["llms"]})).await, Vec::<String>::new());
    let r = t.post("/api/v1/projections/rebuild", json!({"names": ["llms"]})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(await_rebuild(&t, &["llms"]).await["llms"]["rebuild"]["status"], "completed");
    let r = t.get("/api/v1/llms/legacy").await;
    assert_eq!((r.body["tier"].clone(), r.body["extra"].clone()), (json!("heavy"), json!({"team": "search"})));
}

async fn a_token_issued_while_its_read_model_is_stopped_is_still_handed_over(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    // A token event this version cannot read stops the tokens read model.
    let poison = json!({"TokenIssued": {"user": "admin", "hash": 42}});
    raw_event(&t, ("token", "tok-poisoned"), 1, "TokenIssued", "1", poison).await;
    for _ in 0..100 {
        if status_of(&t, "tokens").await["stopped"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status_of(&t, "tokens").await["stopped"], true);
    // The token is issued and recorded, but not readable yet: 202, and the token is in the
    // answer all the same (it is shown once; an error here used to lose it).
    let r = t.post("/api/v1/tokens", json!({"user": "admin", "description": "while stopped"})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert!(r.message().contains("read model tokens is stopped"), "{}", r.message());
    let token = r.body["token"].as_str().expect("the token is handed over").to_owned();
    let id = r.body["name"].as_str().unwrap().to_owned();
    assert!(token.starts_with(&format!("mcpd_{id}_")), "{token} {id}");
    // Once the operator has dealt with the event, the token works.
    tamper(&t, "DELETE FROM events WHERE aggregate_id = 'tok-poisoned'").await;
    assert_eq!(t.post("/api/v1/projections/rebuild", json!({"names": ["tokens"]})).await.status, StatusCode::ACCEPTED);
    assert_eq!(await_rebuild(&t, &["tokens"]).await["tokens"]["rebuild"]["status"], "completed");
    // The projector goes on from the rebuilt checkpoint; on PostgreSQL an event shows once every
    // transaction that could commit before it has ended, so give it a moment under load.
    let mut me = t.call_as(Some(&token), Method::GET, "/api/v1/whoami", None).await;
    for _ in 0..200 {
        if me.status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        me = t.call_as(Some(&token), Method::GET, "/api/v1/whoami", None).await;
    }
    assert_eq!((me.status, me.body["user"].clone()), (StatusCode::OK, json!("admin")), "{:?}", me.body);
}

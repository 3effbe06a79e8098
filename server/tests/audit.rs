//! The audit log over the event store: after a scripted sequence by two users every filter
//! returns exactly the expected rows, newest first; no secret value anywhere; pages neither skip
//! nor repeat a row while events keep being appended.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{StoreKind, TestApp, llm};

testkit::on_both_stores!(every_filter_returns_exactly_the_expected_rows, pages_neither_skip_nor_repeat_under_appends,);

fn types(r: &Value) -> Vec<String> {
    r["items"].as_array().unwrap().iter().map(|i| i["eventType"].as_str().unwrap().to_owned()).collect()
}

async fn every_filter_returns_exactly_the_expected_rows(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.post("/api/v1/users", json!({"name": "bob"})).await.succeeded();
    t.post("/api/v1/rolebindings", json!({"name": "bob-edits", "role": "editor", "users": ["bob"]})).await.succeeded();
    let bob = t.post("/api/v1/tokens", json!({"user": "bob"})).await.body["token"].as_str().unwrap().to_owned();
    let as_bob = |method: Method, path: &'static str, body: Option<Value>| {
        let (t, bob) = (&t, bob.clone());
        async move { t.call_as(Some(&bob), method, path, body).await }
    };
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let before = jiff::Timestamp::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    assert_eq!(
        t.post("/api/v1/secrets", json!({"name": "anthropic", "data": {"API_KEY": "sk-AUDIT-one"}})).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        as_bob(Method::POST, "/api/v1/llms", Some(llm("claude-fast", "anthropic"))).await.status,
        StatusCode::CREATED
    );
    let mut heavy = llm("claude-fast", "anthropic");
    heavy["tier"] = json!("heavy");
    assert_eq!(as_bob(Method::PUT, "/api/v1/llms/claude-fast", Some(heavy)).await.status, StatusCode::OK);
    assert_eq!(
        t.put("/api/v1/secrets/anthropic", json!({"data": {"API_KEY": "sk-AUDIT-two"}})).await.status,
        StatusCode::OK
    );
    assert_eq!(as_bob(Method::DELETE, "/api/v1/llms/claude-fast", None).await.status, StatusCode::NO_CONTENT);

    let by_bob = t.get("/api/v1/audit?actor=bob").await;
    assert_eq!(types(&by_bob.body), ["LlmDeleted", "LlmUpdated", "LlmCreated"]);
    assert!(
        by_bob.body["items"].as_array().unwrap().iter().all(|i| i["tokenId"].as_str().unwrap().starts_with("tok-"))
    );
    assert_eq!(
        types(&t.get("/api/v1/audit?kind=llm&name=claude-fast").await.body),
        ["LlmDeleted", "LlmUpdated", "LlmCreated"]
    );
    assert_eq!(types(&t.get("/api/v1/audit?kind=secrets").await.body), ["SecretUpdated", "SecretCreated"]);
    let updated = t.get("/api/v1/audit?type=SecretUpdated").await;
    let row = &updated.body["items"][0];
    assert_eq!((row["actor"].as_str(), row["name"].as_str()), (Some("admin"), Some("anthropic")));
    assert_eq!(row["summary"], "changedKeys=API_KEY dataVersion: 1→2", "{row}");
    let tier = t.get("/api/v1/audit?type=LlmUpdated").await;
    assert_eq!(tier.body["items"][0]["summary"], "spec.tier: fast→heavy", "{}", tier.body);

    let since = t.get(&format!("/api/v1/audit?since={before}")).await;
    assert_eq!(types(&since.body), ["LlmDeleted", "SecretUpdated", "LlmUpdated", "LlmCreated", "SecretCreated"]);
    let until = t.get(&format!("/api/v1/audit?until={before}")).await;
    let setup = [
        "TokenIssued",
        "RoleBindingCreated",
        "UserCreated",
        "RoleBindingCreated",
        "TokenIssued",
        "UserCreated",
        "DefaultBackendSet",
        "SecretBackendCreated",
    ];
    assert_eq!(types(&until.body), setup, "only what happened before");
    assert_eq!(types(&t.get("/api/v1/audit?since=1h&actor=bob&type=LlmCreated").await.body), ["LlmCreated"]);
    let first_two = t.get("/api/v1/audit?since=1h&limit=2").await;
    assert_eq!(types(&first_two.body), ["LlmDeleted", "SecretUpdated"]);
    let next = first_two.body["next"].as_str().unwrap().to_owned();
    assert_eq!(
        types(&t.get(&format!("/api/v1/audit?since=1h&limit=2&after={next}")).await.body),
        ["LlmUpdated", "LlmCreated"]
    );

    // Times before any event (a duration of 2,600 years, year 0) read as the epoch: since
    // then is everything, until then is nothing. PostgreSQL refused such years with a 500.
    let all = types(&t.get("/api/v1/audit?limit=1000").await.body);
    for far_back in ["957824d", "0000-01-01T00:00:00Z", "1969-12-31T23:59:59Z"] {
        let since = t.get(&format!("/api/v1/audit?since={far_back}&limit=1000")).await;
        assert_eq!(since.status, StatusCode::OK, "since={far_back}: {}", since.body);
        assert_eq!(types(&since.body), all, "since={far_back}");
        let until = t.get(&format!("/api/v1/audit?until={far_back}")).await;
        assert_eq!(until.status, StatusCode::OK, "until={far_back}: {}", until.body);
        assert_eq!(types(&until.body), Vec::<String>::new(), "until={far_back}");
        let usage = t.get(&format!("/api/v1/usage?since={far_back}")).await;
        assert_eq!(usage.status, StatusCode::OK, "usage since={far_back}: {}", usage.body);
    }

    let everything = t.get("/api/v1/audit?limit=1000").await.body.to_string();
    for value in ["sk-AUDIT-one", "sk-AUDIT-two", &bob, testkit::ADMIN_TOKEN] {
        assert!(!everything.contains(value), "{value} leaked into the audit log");
    }
    assert!(!everything.contains(&server::auth::hash(&bob)), "nor a token's hash");

    // Bad input is a 400 naming the parameter; bob (editor) may not read the audit log.
    for (query, field) in
        [("kind=pods", "kind"), ("since=yesterday", "since"), ("limit=0", "limit"), ("after=x", "after")]
    {
        let r = t.get(&format!("/api/v1/audit?{query}")).await;
        assert_eq!((r.status, r.fields()), (StatusCode::BAD_REQUEST, vec![field.to_owned()]), "{query}");
    }
    assert_eq!(t.get("/api/v1/audit?colour=red").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(as_bob(Method::GET, "/api/v1/audit", None).await.status, StatusCode::FORBIDDEN);
}

async fn pages_neither_skip_nor_repeat_under_appends(kind: StoreKind) {
    let t = Arc::new(TestApp::start(kind).await);
    for i in 0..30 {
        t.post("/api/v1/secrets", json!({"name": format!("old-{i}"), "data": {"K": "v"}})).await.succeeded();
    }
    let writer = {
        let t = t.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                t.post("/api/v1/secrets", json!({"name": format!("new-{i}"), "data": {"K": "v"}})).await.succeeded();
            }
        })
    };
    let mut paged: Vec<Value> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(cursor) => format!("/api/v1/audit?limit=7&after={cursor}"),
            None => "/api/v1/audit?limit=7".to_owned(),
        };
        let page = t.get(&path).await.body;
        paged.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    writer.await.unwrap();
    let positions: Vec<String> = paged.iter().map(|i| i["position"].as_str().unwrap().to_owned()).collect();
    let unique: std::collections::HashSet<_> = positions.iter().collect();
    assert_eq!(unique.len(), positions.len(), "no row twice");
    // Everything at or older than the first row seen, in the same order, is what the pages held.
    let all = t.get("/api/v1/audit?limit=1000").await.body["items"].as_array().unwrap().clone();
    let start = all.iter().position(|i| i["position"] == paged[0]["position"]).expect("the first row is in the log");
    let expected: Vec<String> = all[start..].iter().map(|i| i["position"].as_str().unwrap().to_owned()).collect();
    assert_eq!(positions, expected, "no row skipped");
    assert!(positions.len() >= 30, "the pages went back to the start");
}

//! Lists a page at a time (`?limit=N&continue=TOKEN`), the Kubernetes way: pages in the
//! list's own order, stable while writes happen, filtered by what the caller may view, and
//! clear 400s for a bad limit or token.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::rbac::user_with;
use crate::support::{StoreKind, TestApp, secret};

testkit::on_both_stores!(
    a_walk_page_by_page_while_writes_happen_returns_every_survivor_exactly_once,
    pages_keep_each_lists_order_and_filter_by_what_the_caller_may_view,
    bad_limits_and_tokens_are_400s_that_say_why,
);

fn llm(name: &str) -> Value {
    json!({"name": name, "type": "ollama", "model": "m", "tier": "fast", "url": "http://127.0.0.1:11434"})
}

/// Every page of `path` as `token` (the admin when `None`): the names, page by page.
async fn walk(t: &TestApp, token: Option<&str>, path: &str, limit: usize) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut url = format!("{path}?limit={limit}");
        if let Some(token) = &next {
            url.push_str(&format!("&continue={token}"));
        }
        let r = t.call_as(Some(token.unwrap_or(testkit::ADMIN_TOKEN)), Method::GET, &url, None).await;
        assert_eq!(r.status, StatusCode::OK, "{url}: {:?}", r.body);
        let items = r.body["items"].as_array().unwrap();
        assert!(items.len() <= limit, "a page holds at most limit items");
        pages.push(items.iter().map(|i| i["name"].as_str().unwrap().to_owned()).collect());
        match r.body["metadata"]["continue"].as_str() {
            Some(token) => next = Some(token.to_owned()),
            None => return pages,
        }
    }
}

async fn a_walk_page_by_page_while_writes_happen_returns_every_survivor_exactly_once(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    for i in 0..40 {
        assert_eq!(t.post("/api/v1/llms", llm(&format!("m-{i:02}"))).await.status, StatusCode::CREATED);
    }
    // Whole list, one page: as without limit.
    let all = t.get("/api/v1/llms").await.body;
    assert_eq!(all["items"].as_array().unwrap().len(), 40);
    assert!(all.get("metadata").is_none(), "no limit, no continue");

    // Walk in pages of 7 while, between pages, resources before and after the cursor are
    // created and deleted: those that existed throughout come exactly once, in order.
    let survivors: BTreeSet<String> = (0..40).filter(|i| i % 5 != 0).map(|i| format!("m-{i:02}")).collect();
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    let mut round = 0;
    loop {
        let mut url = "/api/v1/llms?limit=7".to_owned();
        if let Some(token) = &next {
            url.push_str(&format!("&continue={token}"));
        }
        let r = t.get(&url).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        seen.extend(r.body["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_owned()));
        // Writes between pages: one deleted (every fifth), one created at each end.
        for i in (round * 8..round * 8 + 8).filter(|i| i % 5 == 0 && *i < 40) {
            assert_eq!(t.delete(&format!("/api/v1/llms/m-{i:02}")).await.status, StatusCode::NO_CONTENT);
        }
        assert_eq!(t.post("/api/v1/llms", llm(&format!("a-{round}"))).await.status, StatusCode::CREATED);
        assert_eq!(t.post("/api/v1/llms", llm(&format!("z-{round}"))).await.status, StatusCode::CREATED);
        round += 1;
        match r.body["metadata"]["continue"].as_str() {
            Some(token) => next = Some(token.to_owned()),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "pages come in name order");
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "nothing twice: {seen:?}");
    for name in &survivors {
        assert!(unique.contains(name), "{name} existed throughout but was not listed");
    }
    assert!(!seen.iter().any(|n| n.starts_with("a-")), "created before the cursor: not in this walk");
}

async fn pages_keep_each_lists_order_and_filter_by_what_the_caller_may_view(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    // Roles: the built-in ones first, then custom ones by name, across page boundaries.
    for name in ["zeta", "alpha", "mid"] {
        let role = json!({"name": name, "rules": [{"resources": ["llms"], "verbs": ["view"]}]});
        assert_eq!(t.post("/api/v1/roles", role).await.status, StatusCode::CREATED);
    }
    let unpaged: Vec<String> = t.get("/api/v1/roles").await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(unpaged, ["admin", "editor", "viewer", "monitoring", "alpha", "mid", "zeta"]);
    let pages = walk(&t, None, "/api/v1/roles", 2).await;
    assert_eq!(pages, [vec!["admin", "editor"], vec!["viewer", "monitoring"], vec!["alpha", "mid"], vec!["zeta"]]);

    // Tokens: oldest first, as unpaged.
    for _ in 0..4 {
        assert_eq!(t.post("/api/v1/tokens", json!({"user": "admin"})).await.status, StatusCode::CREATED);
    }
    let unpaged: Vec<String> = t.get("/api/v1/tokens").await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect();
    let paged: Vec<String> = walk(&t, None, "/api/v1/tokens", 2).await.concat();
    assert_eq!(paged, unpaged);

    // A caller scoped to some names gets full pages of those alone.
    for i in 0..12 {
        let r = t.post("/api/v1/secrets", secret(&format!("s-{i:02}"), "K", "v")).await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let scoped = json!({"name": "some", "rules": [{"resources": ["secrets"], "verbs": ["view"],
        "names": ["s-01", "s-05", "s-06", "s-11"]}]});
    assert_eq!(t.post("/api/v1/roles", scoped).await.status, StatusCode::CREATED);
    let token = user_with(&t, "carol", Some("some")).await;
    let pages = walk(&t, Some(&token), "/api/v1/secrets", 2).await;
    assert_eq!(pages.concat(), ["s-01", "s-05", "s-06", "s-11"]);
    assert_eq!(pages[0], ["s-01", "s-05"], "the first page is full although names in between are hidden");
}

async fn bad_limits_and_tokens_are_400s_that_say_why(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    for name in ["a", "b", "c"] {
        assert_eq!(t.post("/api/v1/llms", llm(name)).await.status, StatusCode::CREATED);
    }
    for bad in ["0", "-1", "x", "10001", ""] {
        let r = t.get(&format!("/api/v1/llms?limit={bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "limit={bad}");
        assert!(r.message().contains("limit must be a whole number from 1 to 10000"), "{}", r.message());
    }
    for token in ["zz", "00", &hex_of(r#"{"k":"llm"}"#)] {
        let r = t.get(&format!("/api/v1/llms?limit=1&continue={token}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{token}");
        assert!(r.message().contains("continue token is not valid"), "{}", r.message());
    }
    // A token from one list is refused by another.
    let first = t.get("/api/v1/llms?limit=1").await.body;
    let token = first["metadata"]["continue"].as_str().unwrap().to_owned();
    let r = t.get(&format!("/api/v1/secrets?limit=1&continue={token}")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = t.get(&format!("/api/v1/llms?limit=1&continue={token}")).await;
    assert_eq!(r.body["items"][0]["name"], "b");
    // Without a limit, a token gives the rest of the list after it, in one answer.
    let r = t.get(&format!("/api/v1/llms?continue={token}")).await;
    assert_eq!(r.status, StatusCode::OK);
    let rest: Vec<&str> = r.body["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(rest, ["b", "c"]);
    assert!(r.body.get("metadata").is_none(), "{}", r.body);
}

fn hex_of(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

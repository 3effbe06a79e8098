//! Every verb on every kind: the happy paths, 404s, 409s on duplicates and stale If-Match, and
//! read-your-writes.

use axum::http::{Method, StatusCode, header};
use serde_json::json;

use crate::support::{StoreKind, TestApp, llm, secret};

testkit::on_both_stores!(
    the_default_backend_is_seeded_at_first_start,
    llm_lifecycle,
    secret_lifecycle,
    secret_backend_lifecycle,
    missing_resources_are_404,
    duplicate_create_is_409,
    stale_if_match_is_409,
    writes_are_readable_at_once,
    concurrent_creates_of_one_name_let_exactly_one_through,
    every_kind_sends_exactly_the_documents_mcpctl_reads,
);

async fn the_default_backend_is_seeded_at_first_start(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let r = t.get("/api/v1/secretbackends").await;
    assert_eq!(r.status, StatusCode::OK);
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["name"], "default");
    assert_eq!(items[0]["type"], "plaintext");
    assert_eq!(items[0]["isDefault"], true);

    // A restart does not seed it twice.
    let again = t.reopen().await;
    drop(again);
    let r = t.get("/api/v1/secretbackends/default").await;
    assert_eq!(r.body["resourceVersion"], 1);
}

async fn llm_lifecycle(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.post("/api/v1/secrets", secret("anthropic", "API_KEY", "sk-1")).await.succeeded();

    let created = t.post("/api/v1/llms", llm("claude-fast", "anthropic")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(created.headers[header::LOCATION], "/api/v1/llms/claude-fast");
    assert_eq!(created.headers[header::ETAG], "\"1\"");
    assert_eq!(created.body["kind"], "llm");
    assert_eq!(created.body["model"], "claude-haiku-4-5");
    assert_eq!(created.body["apiKeyRef"], json!({"name": "anthropic", "key": "API_KEY"}));
    assert_eq!(created.body["resourceVersion"], 1);
    assert!(created.body["createdAt"].as_str().unwrap().starts_with("20"));

    let read = t.get("/api/v1/llms/claude-fast").await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body, created.body);
    let list = t.get("/api/v1/llms").await;
    assert_eq!(list.body["items"], json!([created.body]));

    let mut heavy = llm("claude-fast", "anthropic");
    heavy["tier"] = json!("heavy");
    heavy["extra"] = json!({"maxTokens": "4096"});
    let updated = t.put("/api/v1/llms/claude-fast", heavy.clone()).await;
    assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.body);
    assert_eq!(updated.body["tier"], "heavy");
    assert_eq!(updated.body["extra"], json!({"maxTokens": "4096"}));
    assert_eq!(updated.body["resourceVersion"], 2);
    assert_eq!(updated.body["createdAt"], created.body["createdAt"]);

    // Replacing with the same spec records nothing.
    let same = t.put("/api/v1/llms/claude-fast", heavy).await;
    assert_eq!(same.status, StatusCode::OK);
    assert_eq!(same.body["resourceVersion"], 2);

    let deleted = t.delete("/api/v1/llms/claude-fast").await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(t.get("/api/v1/llms/claude-fast").await.status, StatusCode::NOT_FOUND);
    assert_eq!(t.get("/api/v1/llms").await.body["items"], json!([]));

    // A deleted name can be created again; its history continues.
    let again = t.post("/api/v1/llms", llm("claude-fast", "anthropic")).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body["resourceVersion"], 4);
    assert_eq!(again.body["tier"], "fast");
}

async fn secret_lifecycle(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let created = t
        .post(
            "/api/v1/secrets",
            json!({"name": "openai", "description": "team key", "data": {"API_KEY": "sk-a", "ORG": "org-1"}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(created.body["backend"], "default");
    assert_eq!(created.body["keys"], json!(["API_KEY", "ORG"]));
    assert_eq!(created.body["dataVersion"], 1);
    assert!(created.body.get("data").is_none(), "values are not returned unless asked for");

    let plain = t.get("/api/v1/secrets/openai").await;
    assert!(plain.body.get("data").is_none());
    let revealed = t.get("/api/v1/secrets/openai?reveal=true").await;
    assert_eq!(revealed.body["data"], json!({"API_KEY": "sk-a", "ORG": "org-1"}));
    let listed = t.get("/api/v1/secrets").await;
    assert!(listed.body["items"][0].get("data").is_none());
    let listed = t.get("/api/v1/secrets?reveal=true").await;
    assert_eq!(listed.body["items"][0]["data"]["ORG"], "org-1");

    let updated = t
        .put("/api/v1/secrets/openai", json!({"description": "team key", "data": {"API_KEY": "sk-b"}}))
        .await
        .succeeded();
    assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.body);
    assert_eq!(updated.body["keys"], json!(["API_KEY"]));
    assert_eq!(updated.body["dataVersion"], 2);
    assert_eq!(t.get("/api/v1/secrets/openai?reveal=true").await.body["data"], json!({"API_KEY": "sk-b"}));

    // Without `data` the values stay as they are.
    let described = t.put("/api/v1/secrets/openai", json!({"description": "rotated"})).await;
    assert_eq!(described.body["description"], "rotated");
    assert_eq!(described.body["dataVersion"], 2);
    assert_eq!(described.body["resourceVersion"], 3);
    assert_eq!(t.get("/api/v1/secrets/openai?reveal=true").await.body["data"], json!({"API_KEY": "sk-b"}));

    assert_eq!(t.delete("/api/v1/secrets/openai").await.status, StatusCode::NO_CONTENT);
    assert_eq!(t.get("/api/v1/secrets/openai").await.status, StatusCode::NOT_FOUND);
}

async fn secret_backend_lifecycle(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let created = t
        .post("/api/v1/secretbackends", json!({"kind": "SecretBackend", "name": "archive", "type": "plaintext"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(created.body["isDefault"], false);
    let updated = t
        .put("/api/v1/secretbackends/archive", json!({"type": "plaintext", "description": "old keys"}))
        .await
        .succeeded();
    assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.body);
    assert_eq!(updated.body["description"], "old keys");
    let names: Vec<_> = t.get("/api/v1/secretbackends").await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["archive", "default"]);

    // A secret can be put on it explicitly.
    let s = t.post("/api/v1/secrets", json!({"name": "old", "backend": "archive", "data": {"K": "v"}})).await;
    assert_eq!(s.body["backend"], "archive");
    t.delete("/api/v1/secrets/old").await.succeeded();

    assert_eq!(t.delete("/api/v1/secretbackends/archive").await.status, StatusCode::NO_CONTENT);
    assert_eq!(t.get("/api/v1/secretbackends/archive").await.status, StatusCode::NOT_FOUND);
}

async fn missing_resources_are_404(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let bodies = [
        ("llms", llm("nope", "anthropic")),
        ("secrets", json!({"data": {}})),
        ("secretbackends", json!({"type": "plaintext"})),
    ];
    for (collection, body) in bodies {
        let path = format!("/api/v1/{collection}/nope");
        let r = t.get(&path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "GET {path}");
        assert_eq!(r.body["error"]["code"], "NotFound");
        assert!(r.message().contains("\"nope\" not found"), "{}", r.message());
        assert_eq!(t.put(&path, body).await.status, StatusCode::NOT_FOUND, "PUT {path}");
        assert_eq!(t.delete(&path).await.status, StatusCode::NOT_FOUND, "DELETE {path}");
        // A name that could never exist is simply not found.
        assert_eq!(t.delete(&format!("/api/v1/{collection}/Not_A_Name")).await.status, StatusCode::NOT_FOUND);
    }
    assert_eq!(t.get("/api/v1/widgets").await.status, StatusCode::NOT_FOUND);
    let patch = t.call(Method::PATCH, "/api/v1/llms/x", None, None).await;
    assert_eq!(patch.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(patch.headers["allow"], "DELETE, GET, HEAD, PUT", "the methods this route takes");
    let put = t.call(Method::PUT, "/api/v1/llms", None, None).await;
    assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(put.headers["allow"], "GET, HEAD, POST");
}

async fn duplicate_create_is_409(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.seed_llm().await;
    let cases = [
        ("/api/v1/llms", llm("claude-fast", "anthropic"), "llm \"claude-fast\" already exists"),
        ("/api/v1/secrets", secret("anthropic", "API_KEY", "sk-other"), "secret \"anthropic\" already exists"),
        (
            "/api/v1/secretbackends",
            json!({"name": "default", "type": "plaintext", "isDefault": true}),
            "already exists",
        ),
    ];
    for (path, body, message) in cases {
        let r = t.post(path, body).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{path}");
        assert!(r.message().contains(message), "{}", r.message());
    }
    // The losing create changed nothing.
    let revealed = t.get("/api/v1/secrets/anthropic?reveal=true").await;
    assert_eq!(revealed.body["data"]["API_KEY"], "sk-ant-seed");
}

async fn stale_if_match_is_409(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.seed_llm().await;
    let mut body = llm("claude-fast", "anthropic");
    body["model"] = json!("claude-sonnet-4-5");

    let ok = t.call(Method::PUT, "/api/v1/llms/claude-fast", Some(body.clone()), Some("\"1\"")).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    assert_eq!(ok.body["resourceVersion"], 2);

    body["model"] = json!("claude-opus-4-5");
    let stale = t.call(Method::PUT, "/api/v1/llms/claude-fast", Some(body), Some("\"1\"")).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert!(stale.message().contains("is at resourceVersion 2, not 1"), "{}", stale.message());
    assert_eq!(t.get("/api/v1/llms/claude-fast").await.body["model"], "claude-sonnet-4-5");

    let stale = t.call(Method::DELETE, "/api/v1/llms/claude-fast", None, Some("1")).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    let bad = t.call(Method::DELETE, "/api/v1/llms/claude-fast", None, Some("yesterday")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let stale = t.call(Method::DELETE, "/api/v1/secrets/anthropic", None, Some("\"9\"")).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    let ok = t.call(Method::DELETE, "/api/v1/llms/claude-fast", None, Some("W/\"2\"")).await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT);
}

async fn writes_are_readable_at_once(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.post("/api/v1/secrets", secret("anthropic", "API_KEY", "sk-1")).await.succeeded();
    for i in 0..25 {
        let name = format!("llm-{i}");
        assert_eq!(t.post("/api/v1/llms", llm(&name, "anthropic")).await.status, StatusCode::CREATED);
        let read = t.get(&format!("/api/v1/llms/{name}")).await;
        assert_eq!(read.status, StatusCode::OK, "{name} was not readable right after its 201");
        assert_eq!(t.get("/api/v1/llms").await.body["items"].as_array().unwrap().len(), i + 1);
        let mut changed = llm(&name, "anthropic");
        changed["model"] = json!(format!("m-{i}"));
        t.put(&format!("/api/v1/llms/{name}"), changed).await.succeeded();
        assert_eq!(t.get(&format!("/api/v1/llms/{name}")).await.body["model"], format!("m-{i}"));
    }
}

async fn concurrent_creates_of_one_name_let_exactly_one_through(kind: StoreKind) {
    let t = std::sync::Arc::new(TestApp::start(kind).await);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"name": "raced", "data": {"K": format!("v{i}")}});
            (i, t.post("/api/v1/secrets", body).await.status)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (i, status) = task.await.unwrap();
        match status {
            StatusCode::CREATED => winners.push(i),
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one create wins");
    // The stored values are the winner's, not a loser's.
    let revealed = t.get("/api/v1/secrets/raced?reveal=true").await;
    assert_eq!(revealed.body["data"]["K"], format!("v{}", winners[0]));
}

/// Reads every document of the visited kind's list as `wire::Document<S>` (the type mcpctl
/// reads) and writes it back: nothing the server sends is lost or added on the way.
struct ReadsBack(Vec<serde_json::Value>);

impl wire::KindVisitor for ReadsBack {
    type Output = Vec<(serde_json::Value, serde_json::Value)>;
    fn visit<S: wire::Spec>(self) -> Self::Output {
        self.0
            .into_iter()
            .map(|sent| {
                let read: wire::Document<S> = serde_json::from_value(sent.clone())
                    .unwrap_or_else(|e| panic!("mcpctl cannot read the {} document {sent}: {e}", S::KIND));
                (sent, serde_json::to_value(read).unwrap())
            })
            .collect()
    }
}

async fn every_kind_sends_exactly_the_documents_mcpctl_reads(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.seed_llm().await;
    let mut llm = llm("local", "anthropic");
    llm["url"] = json!("http://127.0.0.1:11434");
    llm["type"] = json!("ollama");
    llm["extra"] = json!({"numCtx": "8192"});
    assert_eq!(t.post("/api/v1/llms", llm).await.status, StatusCode::CREATED);
    assert_eq!(
        t.post("/api/v1/secretbackends", json!({"name": "spare", "type": "plaintext", "description": "d"}))
            .await
            .status,
        StatusCode::CREATED
    );
    let run = t
        .post("/api/v1/secrets/migrate", json!({"from": "default", "to": "spare", "names": ["anthropic"]}))
        .await
        .succeeded();
    assert_eq!(run.status, StatusCode::OK, "{:?}", run.body);
    let role = json!({"name": "ops", "rules": [
        {"resources": ["llms"], "verbs": ["view"], "names": ["local"]}, {"operations": ["reveal:secrets"]}]});
    assert_eq!(t.post("/api/v1/roles", role).await.status, StatusCode::CREATED);
    assert_eq!(t.post("/api/v1/users", json!({"name": "ann", "description": "d"})).await.status, StatusCode::CREATED);
    let binding = json!({"name": "ann-ops", "role": "ops", "users": ["ann"]});
    assert_eq!(t.post("/api/v1/rolebindings", binding).await.status, StatusCode::CREATED);
    let token = json!({"user": "ann", "expires": "1h", "description": "ci"});
    assert_eq!(t.post("/api/v1/tokens", token).await.status, StatusCode::CREATED);

    for kind in wire::Kind::ALL {
        let paths = if kind == wire::Kind::Secret {
            vec![kind.path(), format!("{}?reveal=true", kind.path())]
        } else {
            vec![kind.path()]
        };
        for path in paths {
            let sent = t.get(&path).await.body["items"].as_array().unwrap().clone();
            assert!(!sent.is_empty(), "{path} lists nothing, so proves nothing");
            for (sent, read_back) in kind.visit(ReadsBack(sent)) {
                assert_eq!(read_back, sent, "{kind}: what mcpctl reads differs from what mcpd sent");
            }
        }
    }
    // One document read on its own, with its history, too.
    let one = t.get("/api/v1/llms/local").await.body;
    assert_eq!(wire::Kind::Llm.visit(ReadsBack(vec![one.clone()]))[0].1, one);
    let history = t.get("/api/v1/llms/local/history").await.body;
    let events: wire::List<wire::HistoryEvent> = serde_json::from_value(history.clone()).unwrap();
    assert_eq!(events.items.len(), 1);
    assert_eq!(events.items[0].event_type, "LlmCreated");
    assert_eq!(events.items[0].actor, "admin");
    assert_eq!(serde_json::to_value(&events).unwrap(), history, "nothing lost or added");
}

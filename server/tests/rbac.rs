//! Authorisation: name-scoped roles, filtered lists, can-i, and the guard rails. The permission
//! matrix over every route is in `permissions.rs`.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{StoreKind, TestApp, llm};

testkit::on_both_stores!(
    roles_and_bindings_have_etags_locations_history_and_dry_runs_like_every_kind,
    a_name_scoped_role_sees_and_edits_only_its_names,
    nobody_grants_more_than_they_hold_and_the_last_admin_binding_stays,
);

/// A user bound to `role` (none when `None`), and their token.
pub(crate) async fn user_with(t: &TestApp, user: &str, role: Option<&str>) -> String {
    assert_eq!(t.post("/api/v1/users", json!({"name": user})).await.status, StatusCode::CREATED);
    if let Some(role) = role {
        let binding = json!({"name": format!("{user}-binding"), "role": role, "users": [user]});
        let r = t.post("/api/v1/rolebindings", binding).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    let r = t.post("/api/v1/tokens", json!({"user": user})).await;
    r.body["token"].as_str().unwrap().to_owned()
}

async fn a_name_scoped_role_sees_and_edits_only_its_names(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.seed_llm().await;
    assert_eq!(t.post("/api/v1/llms", llm("gpt-heavy", "anthropic")).await.status, StatusCode::CREATED);
    let role = json!({"name": "claude-fast-editor", "rules": [
        {"resources": ["llms"], "verbs": ["view", "edit"], "names": ["claude-fast"]},
        {"resources": ["secrets"], "verbs": ["view"], "names": ["anthropic"]},
    ]});
    assert_eq!(t.post("/api/v1/roles", role).await.status, StatusCode::CREATED);
    let token = user_with(&t, "carol", Some("claude-fast-editor")).await;
    let as_carol = |method: Method, path: &str, body: Option<Value>| {
        let (t, token, path) = (&t, token.clone(), path.to_owned());
        async move { t.call_as(Some(&token), method, &path, body).await }
    };

    let list = as_carol(Method::GET, "/api/v1/llms", None).await;
    assert_eq!(list.status, StatusCode::OK);
    let names: Vec<_> = list.body["items"].as_array().unwrap().iter().map(|i| i["name"].clone()).collect();
    assert_eq!(names, [json!("claude-fast")], "the list is filtered, not refused");
    assert_eq!(as_carol(Method::GET, "/api/v1/llms/claude-fast", None).await.status, StatusCode::OK);
    assert_eq!(as_carol(Method::GET, "/api/v1/llms/gpt-heavy", None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        as_carol(Method::GET, "/api/v1/llms/never-was", None).await.status,
        StatusCode::FORBIDDEN,
        "no existence leak"
    );
    let mut heavy = llm("claude-fast", "anthropic");
    heavy["tier"] = json!("heavy");
    assert_eq!(as_carol(Method::PUT, "/api/v1/llms/claude-fast", Some(heavy.clone())).await.status, StatusCode::OK);
    heavy["name"] = json!("gpt-heavy");
    assert_eq!(as_carol(Method::PUT, "/api/v1/llms/gpt-heavy", Some(heavy)).await.status, StatusCode::FORBIDDEN);
    assert_eq!(as_carol(Method::DELETE, "/api/v1/llms/claude-fast", None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        as_carol(Method::POST, "/api/v1/llms", Some(llm("new", "anthropic"))).await.status,
        StatusCode::FORBIDDEN
    );
    let secrets = as_carol(Method::GET, "/api/v1/secrets", None).await;
    assert_eq!(secrets.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(as_carol(Method::GET, "/api/v1/secretbackends", None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        as_carol(Method::GET, "/api/v1/secrets/anthropic?reveal=true", None).await.status,
        StatusCode::FORBIDDEN
    );

    let can = |q: &'static str| {
        let f = as_carol;
        async move { f(Method::GET, &format!("/api/v1/auth/can-i?{q}"), None).await.body["allowed"].clone() }
    };
    assert_eq!(can("verb=edit&resource=llms&name=claude-fast").await, json!(true));
    assert_eq!(can("verb=edit&resource=llms&name=gpt-heavy").await, json!(false));
    assert_eq!(can("verb=reveal:secrets").await, json!(false));
}

async fn nobody_grants_more_than_they_hold_and_the_last_admin_binding_stays(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let role = json!({"name": "rbac-manager", "rules": [{"resources": ["rbac"], "verbs": ["view", "create", "edit", "delete"]}]});
    assert_eq!(t.post("/api/v1/roles", role).await.status, StatusCode::CREATED);
    let token = user_with(&t, "mallory", Some("rbac-manager")).await;
    let escalate = json!({"name": "mallory-admin", "role": "admin", "users": ["mallory"]});
    let r = t.call_as(Some(&token), Method::POST, "/api/v1/rolebindings", Some(escalate)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert!(r.message().contains("grants more than the user holds"), "{}", r.message());
    let wider = json!({"name": "wider", "rules": [{"resources": ["secrets"], "verbs": ["view"]}]});
    assert_eq!(t.call_as(Some(&token), Method::POST, "/api/v1/roles", Some(wider)).await.status, StatusCode::FORBIDDEN);
    let same = json!({"name": "mallory-again", "role": "rbac-manager", "users": ["mallory"]});
    assert_eq!(
        t.call_as(Some(&token), Method::POST, "/api/v1/rolebindings", Some(same)).await.status,
        StatusCode::CREATED
    );

    // The bootstrap binding is the only one granting admin: it stays.
    let r = t.delete("/api/v1/rolebindings/admin").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    let r = t.put("/api/v1/rolebindings/admin", json!({"role": "viewer", "users": ["admin"]})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = t
        .post("/api/v1/rolebindings", json!({"name": "second-admin", "role": "admin", "users": ["mallory"]}))
        .await
        .succeeded();
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(t.delete("/api/v1/rolebindings/admin").await.status, StatusCode::NO_CONTENT);
    // Without its binding the bootstrap admin holds nothing any more.
    assert_eq!(t.get("/api/v1/llms").await.status, StatusCode::FORBIDDEN);

    // Built-in roles are fixed; a bound role cannot go; bad rules are listed field by field.
    assert_eq!(
        t.call_as(Some(&token), Method::DELETE, "/api/v1/roles/viewer", None).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        t.call_as(Some(&token), Method::DELETE, "/api/v1/roles/rbac-manager", None).await.status,
        StatusCode::CONFLICT
    );
    let bad = json!({"name": "bad", "rules": [{"resources": ["llm"], "verbs": ["read"]}]});
    let r = t.call_as(Some(&token), Method::POST, "/api/v1/roles", Some(bad)).await;
    assert_eq!(
        (r.status, r.fields()),
        (StatusCode::BAD_REQUEST, vec!["rules[0].resources".to_owned(), "rules[0].verbs".to_owned()])
    );
    let unknown = json!({"name": "x", "role": "nope", "users": ["ghost"]});
    let r = t.call_as(Some(&token), Method::POST, "/api/v1/rolebindings", Some(unknown)).await;
    assert_eq!((r.status, r.fields()), (StatusCode::CONFLICT, vec!["role".to_owned(), "users".to_owned()]));
}

async fn roles_and_bindings_have_etags_locations_history_and_dry_runs_like_every_kind(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let role = json!({"name": "llm-reader", "rules": [{"resources": ["llms"], "verbs": ["view"]}]});
    let r = t.post("/api/v1/roles", role).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.headers["location"], "/api/v1/roles/llm-reader");
    assert_eq!(r.headers["etag"], "\"1\"");
    let binding = json!({"name": "admin-reads", "role": "llm-reader", "users": ["admin"]});
    let r = t.post("/api/v1/rolebindings", binding).await;
    assert_eq!(
        (r.status, r.headers["location"].to_str().unwrap()),
        (StatusCode::CREATED, "/api/v1/rolebindings/admin-reads")
    );
    assert_eq!(t.get("/api/v1/rolebindings/admin-reads").await.headers["etag"], "\"1\"");
    // A stale If-Match is refused; the role's history says who did what.
    let stale = t
        .call(
            Method::PUT,
            "/api/v1/roles/llm-reader",
            Some(json!({"rules": [{"resources": ["llms"], "verbs": ["view"]}], "description": "x"})),
            Some("\"7\""),
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{:?}", stale.body);
    let history = t.get("/api/v1/roles/llm-reader/history").await;
    assert_eq!(history.body["items"][0]["eventType"], "RoleCreated");
    assert_eq!(history.body["items"][0]["actor"], "admin");
    // Dry-run deletes check everything and change nothing.
    assert_eq!(t.delete("/api/v1/roles/llm-reader?dryRun=true").await.status, StatusCode::CONFLICT, "still bound");
    assert_eq!(t.delete("/api/v1/rolebindings/admin-reads?dryRun=true").await.status, StatusCode::NO_CONTENT);
    assert_eq!(t.get("/api/v1/rolebindings/admin-reads").await.status, StatusCode::OK, "a dry run deletes nothing");
    assert_eq!(
        t.delete("/api/v1/rolebindings/admin?dryRun=true").await.status,
        StatusCode::CONFLICT,
        "the last admin binding"
    );
}

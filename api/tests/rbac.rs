//! Authorisation: a permission matrix over every kind, verb and operation for the built-in roles,
//! a name-scoped custom role and a user with no binding; lists filtered; the guard rails.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{StoreKind, TestApp, llm};

testkit::on_both_stores!(
    every_role_gets_exactly_its_permissions,
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

struct Case {
    resource: &'static str,
    verb: &'static str,
    method: Method,
    path: String,
    body: Option<Value>,
}

/// Every verb on every kind, for user `u`, in an order where each allowed step finds what it
/// needs (create before edit before delete).
fn cases(u: &str, admin_token_id: &str) -> Vec<Case> {
    let case = |resource, verb, method, path: String, body: Option<Value>| Case { resource, verb, method, path, body };
    let mut heavy = llm(&format!("l-{u}"), "anthropic");
    heavy["tier"] = json!("heavy");
    let rules = json!([{"resources": ["llms"], "verbs": ["view"]}]);
    vec![
        case("llms", "view", Method::GET, "/api/v1/llms".into(), None),
        case("llms", "view", Method::GET, "/api/v1/llms/claude-fast".into(), None),
        case("llms", "create", Method::POST, "/api/v1/llms".into(), Some(llm(&format!("l-{u}"), "anthropic"))),
        case("llms", "edit", Method::PUT, format!("/api/v1/llms/l-{u}"), Some(heavy)),
        case("llms", "delete", Method::DELETE, format!("/api/v1/llms/l-{u}"), None),
        case("secrets", "view", Method::GET, "/api/v1/secrets".into(), None),
        case("secrets", "view", Method::GET, "/api/v1/secrets/anthropic".into(), None),
        case(
            "secrets",
            "create",
            Method::POST,
            "/api/v1/secrets".into(),
            Some(json!({"name": format!("s-{u}"), "data": {"K": "v"}})),
        ),
        case("secrets", "edit", Method::PUT, format!("/api/v1/secrets/s-{u}"), Some(json!({"data": {"K": "v2"}}))),
        case("secrets", "delete", Method::DELETE, format!("/api/v1/secrets/s-{u}"), None),
        case("secretbackends", "view", Method::GET, "/api/v1/secretbackends".into(), None),
        case("secretbackends", "view", Method::GET, "/api/v1/secretbackends/default".into(), None),
        case(
            "secretbackends",
            "create",
            Method::POST,
            "/api/v1/secretbackends".into(),
            Some(json!({"name": format!("b-{u}"), "type": "plaintext"})),
        ),
        case(
            "secretbackends",
            "edit",
            Method::PUT,
            format!("/api/v1/secretbackends/b-{u}"),
            Some(json!({"type": "plaintext", "description": "x"})),
        ),
        case("secretbackends", "delete", Method::DELETE, format!("/api/v1/secretbackends/b-{u}"), None),
        case("users", "view", Method::GET, "/api/v1/users".into(), None),
        case("users", "view", Method::GET, "/api/v1/users/admin".into(), None),
        case("users", "create", Method::POST, "/api/v1/users".into(), Some(json!({"name": format!("u-{u}")}))),
        case("users", "delete", Method::DELETE, format!("/api/v1/users/u-{u}"), None),
        case("tokens", "view", Method::GET, "/api/v1/tokens".into(), None),
        case("tokens", "view", Method::GET, format!("/api/v1/tokens/{admin_token_id}"), None),
        case("tokens", "create", Method::POST, "/api/v1/tokens".into(), Some(json!({"user": "admin"}))),
        case("rbac", "view", Method::GET, "/api/v1/roles".into(), None),
        case("rbac", "view", Method::GET, "/api/v1/roles/viewer".into(), None),
        case(
            "rbac",
            "create",
            Method::POST,
            "/api/v1/roles".into(),
            Some(json!({"name": format!("r-{u}"), "rules": rules})),
        ),
        case(
            "rbac",
            "edit",
            Method::PUT,
            format!("/api/v1/roles/r-{u}"),
            Some(json!({"rules": rules, "description": "x"})),
        ),
        case("rbac", "view", Method::GET, "/api/v1/rolebindings".into(), None),
        case(
            "rbac",
            "create",
            Method::POST,
            "/api/v1/rolebindings".into(),
            Some(json!({"name": format!("rb-{u}"), "role": format!("r-{u}"), "users": ["admin"]})),
        ),
        case(
            "rbac",
            "edit",
            Method::PUT,
            format!("/api/v1/rolebindings/rb-{u}"),
            Some(json!({"role": format!("r-{u}"), "users": ["admin"], "description": "x"})),
        ),
        case("rbac", "delete", Method::DELETE, format!("/api/v1/rolebindings/rb-{u}"), None),
        case("rbac", "delete", Method::DELETE, format!("/api/v1/roles/r-{u}"), None),
        case("migrations", "view", Method::GET, "/api/v1/migrations".into(), None),
        case("reveal:secrets", "", Method::GET, "/api/v1/secrets/anthropic?reveal=true".into(), None),
        case("view:audit", "", Method::GET, "/api/v1/audit?limit=5".into(), None),
        case(
            "run:migrate-secrets",
            "",
            Method::POST,
            "/api/v1/secrets/migrate".into(),
            Some(json!({"from": "default", "to": "spare", "dryRun": true})),
        ),
    ]
}

async fn every_role_gets_exactly_its_permissions(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.seed_llm().await;
    assert_eq!(
        t.post("/api/v1/secretbackends", json!({"name": "spare", "type": "plaintext"})).await.status,
        StatusCode::CREATED
    );
    let admin_token_id = t.get("/api/v1/whoami").await.body["tokenId"].as_str().unwrap().to_owned();
    let users = [("root2", Some("admin")), ("ed", Some("editor")), ("vi", Some("viewer")), ("nobody", None)];
    for (user, role) in users {
        let token = user_with(&t, user, role).await;
        let permissions = domain::rbac::Permissions::new(role.and_then(domain::rbac::built_in));
        for case in cases(user, &admin_token_id) {
            let allowed = if case.verb.is_empty() {
                permissions.allows_operation(case.resource)
            } else {
                permissions.allows(case.resource, case.verb, None)
            };
            let r = t.call_as(Some(&token), case.method.clone(), &case.path, case.body.clone()).await;
            if allowed {
                assert!(
                    r.status.is_success(),
                    "{user} ({role:?}) {} {}: {} {:?}",
                    case.method,
                    case.path,
                    r.status,
                    r.body
                );
            } else {
                assert_eq!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "{user} ({role:?}) {} {}: {:?}",
                    case.method,
                    case.path,
                    r.body
                );
                assert!(r.message().contains(&format!("user {user:?} may not")), "{}", r.message());
            }
        }
    }
    // The expectations come from the role definitions; pin the definitions' key facts too.
    let ed = t.post("/api/v1/tokens", json!({"user": "ed"})).await.body["token"].as_str().unwrap().to_owned();
    let vi = t.post("/api/v1/tokens", json!({"user": "vi"})).await.body["token"].as_str().unwrap().to_owned();
    let status = |token: String, method: Method, path: &'static str| {
        let t = &t;
        async move { t.call_as(Some(&token), method, path, None).await.status }
    };
    assert_eq!(status(ed.clone(), Method::DELETE, "/api/v1/llms/claude-fast").await, StatusCode::NO_CONTENT);
    assert_eq!(status(ed.clone(), Method::GET, "/api/v1/secrets?reveal=true").await, StatusCode::FORBIDDEN);
    assert_eq!(status(ed, Method::GET, "/api/v1/users").await, StatusCode::FORBIDDEN);
    assert_eq!(status(vi.clone(), Method::GET, "/api/v1/secrets").await, StatusCode::OK);
    assert_eq!(status(vi, Method::DELETE, "/api/v1/secrets/anthropic").await, StatusCode::FORBIDDEN);
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
    let r =
        t.post("/api/v1/rolebindings", json!({"name": "second-admin", "role": "admin", "users": ["mallory"]})).await;
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
    assert_eq!((r.status, r.fields()), (StatusCode::BAD_REQUEST, vec!["role".to_owned(), "users".to_owned()]));
}

//! The permission matrix: every route mcpd serves (`server::router::route_list()`), called by seven
//! users, each status written down here by hand, never computed from the permission code (a
//! wrong built-in role must fail this test, not pass it). A route without a row fails the test.
//!
//! Users, in column order:
//! - `admin`   the built-in admin role;
//! - `editor`  the built-in editor role;
//! - `viewer`  the built-in viewer role;
//! - `scoped`  a custom role naming resources: llms `claude-fast` and `l-scoped` (every verb),
//!   secrets `anthropic` and `s-scoped` (every verb), secretbackend `default` (view), and `view`
//!   on the `audit` resource (the other way to the audit log than the `view:audit` operation);
//! - `tokens`  a custom role granting only `create` on tokens;
//! - `nobody`  a user with no binding;
//! - `monitoring` the built-in monitoring role: `/metrics` and nothing a user without a
//!   binding could not do.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::rbac::user_with;
use crate::support::{StoreKind, TestApp, llm};

testkit::on_both_stores!(every_route_answers_each_user_exactly_as_written_down);

const USERS: [&str; 7] = ["admin", "editor", "viewer", "scoped", "tokens", "nobody", "monitoring"];

/// One call: the route it exercises (method and template), the concrete call for user `u`,
/// and the status each user must get, in [`USERS`] order.
struct Row {
    method: Method,
    template: &'static str,
    path: fn(&Fixture, &str) -> String,
    body: fn(&Fixture, &str) -> Option<Value>,
    expect: [u16; 7],
}

/// What the setup made that rows refer to.
struct Fixture {
    admin_token_id: String,
    migration_run: String,
    /// For each user, a token of `victim` that the user's row tries to revoke.
    victim_tokens: Vec<String>,
}

fn none(_: &Fixture, _: &str) -> Option<Value> {
    None
}

macro_rules! row {
    ($method:ident $template:literal, $path:expr, $body:expr, [$($s:literal),*]) => {
        Row { method: Method::$method, template: $template, path: $path, body: $body, expect: [$($s),*] }
    };
    ($method:ident $template:literal, $path:expr, [$($s:literal),*]) => {
        row!($method $template, $path, none, [$($s),*])
    };
}

fn index(u: &str) -> usize {
    USERS.iter().position(|x| *x == u).expect("a known user")
}

#[rustfmt::skip]
fn rows() -> Vec<Row> {
    vec![
        //                                                                                   admin ed  view scop tok  nob  mon
        row!(GET "/healthz", |_, _| "/healthz".into(),                                      [200, 200, 200, 200, 200, 200, 200]),
        row!(GET "/version", |_, _| "/version".into(),                                      [200, 200, 200, 200, 200, 200, 200]),
        row!(GET "/readyz", |_, _| "/readyz".into(),                                        [200, 200, 200, 200, 200, 200, 200]),
        row!(GET "/metrics", |_, _| "/metrics".into(),                                      [200, 403, 403, 403, 403, 403, 200]),
        row!(GET "/api/v1/whoami", |_, _| "/api/v1/whoami".into(),                          [200, 200, 200, 200, 200, 200, 200]),
        row!(GET "/api/v1/auth/can-i", |_, _| "/api/v1/auth/can-i?verb=view&resource=llms".into(), [200, 200, 200, 200, 200, 200, 200]),
        row!(GET "/api/v1/schemas/{kind}", |_, _| "/api/v1/schemas/llm".into(),             [200, 200, 200, 200, 200, 200, 200]),
        // The API's description: open, like the probes (it holds no data, only shapes).
        row!(GET "/api/v1/openapi.json", |_, _| "/api/v1/openapi.json".into(),              [200, 200, 200, 200, 200, 200, 200]),
        // Llms.
        row!(GET "/api/v1/llms", |_, _| "/api/v1/llms".into(),                              [200, 200, 200, 200, 403, 403, 403]),
        // A dry run is authorised as the write it rehearses, on every route that takes one.
        row!(POST "/api/v1/llms", |_, _| "/api/v1/llms?dryRun=true".into(),
             |_, u| Some(llm(&format!("l-{u}"), "anthropic")),                              [200, 200, 403, 200, 403, 403, 403]),
        // A keyless Llm outside the allowed upstreams receives its callers' requests: admin's.
        row!(POST "/api/v1/llms", |_, _| "/api/v1/llms?dryRun=true".into(),
             |_, u| Some(json!({"name": format!("l-{u}"), "type": "vllm", "model": "m", "tier": "fast",
                                "url": "http://127.0.0.1:9"})),                             [200, 403, 403, 403, 403, 403, 403]),
        row!(POST "/api/v1/llms", |_, _| "/api/v1/llms".into(),
             |_, u| Some(llm(&format!("l-{u}"), "anthropic")),                              [201, 201, 403, 201, 403, 403, 403]),
        row!(GET "/api/v1/llms/{name}", |_, _| "/api/v1/llms/claude-fast".into(),           [200, 200, 200, 200, 403, 403, 403]),
        row!(PUT "/api/v1/llms/{name}", |_, u| format!("/api/v1/llms/l-{u}"),
             |_, u| Some(json!({"name": format!("l-{u}"), "type": "anthropic", "model": "m", "tier": "heavy",
                                "apiKeyRef": {"name": "anthropic", "key": "API_KEY"}})), [200, 200, 403, 200, 403, 403, 403]),
        // Pointing it at a server of one's choice needs reveal on the key it sends.
        row!(PUT "/api/v1/llms/{name}", |_, u| format!("/api/v1/llms/l-{u}"),
             |_, u| Some(json!({"name": format!("l-{u}"), "type": "anthropic", "model": "m", "tier": "heavy",
                                "url": "http://127.0.0.1:9", "apiKeyRef": {"name": "anthropic", "key": "API_KEY"}})),
                                                                                             [200, 403, 403, 403, 403, 403, 403]),
        row!(PUT "/api/v1/llms/{name}", |_, u| format!("/api/v1/llms/l-{u}?dryRun=true"),
             |_, u| Some(json!({"name": format!("l-{u}"), "type": "anthropic", "model": "m2", "tier": "heavy",
                                "apiKeyRef": {"name": "anthropic", "key": "API_KEY"}})), [200, 200, 403, 200, 403, 403, 403]),
        row!(GET "/api/v1/llms/{name}/history", |_, _| "/api/v1/llms/claude-fast/history".into(), [200, 200, 200, 200, 403, 403, 403]),
        row!(DELETE "/api/v1/llms/{name}", |_, u| format!("/api/v1/llms/l-{u}?dryRun=true"), [204, 204, 403, 204, 403, 403, 403]),
        row!(DELETE "/api/v1/llms/{name}", |_, u| format!("/api/v1/llms/l-{u}"),            [204, 204, 403, 204, 403, 403, 403]),
        // Inference: run:infer (admin and editor; name-scoped rules name Llms). An Llm that
        // does not exist, so that nothing calls a provider: 404 to those who may use it.
        row!(POST "/openai/v1/chat/completions", |_, _| "/openai/v1/chat/completions".into(),
             |_, _| Some(json!({"model": "no-such-llm", "messages": []})),                 [404, 404, 403, 403, 403, 403, 403]),
        row!(POST "/anthropic/v1/messages", |_, _| "/anthropic/v1/messages".into(),
             |_, _| Some(json!({"model": "no-such-llm", "max_tokens": 5, "messages": []})), [404, 404, 403, 403, 403, 403, 403]),
        // The list is filtered to the Llms the caller may use (empty without run:infer).
        row!(GET "/openai/v1/models", |_, _| "/openai/v1/models".into(),                    [200, 200, 200, 200, 200, 200, 200]),
        // Warming an Llm up sends its key: run:infer on it.
        row!(POST "/api/v1/llms/{name}/warmup", |_, _| "/api/v1/llms/no-such-llm/warmup".into(), [404, 404, 403, 403, 403, 403, 403]),
        // One's own usage is everyone's; other users' needs view:audit.
        row!(GET "/api/v1/usage", |_, _| "/api/v1/usage".into(),                            [200, 200, 200, 200, 200, 200, 200]),
        row!(GET "/api/v1/usage", |_, _| "/api/v1/usage?user=admin".into(),                 [200, 403, 403, 403, 403, 403, 403]),
        // Secrets.
        row!(GET "/api/v1/secrets", |_, _| "/api/v1/secrets".into(),                        [200, 200, 200, 200, 403, 403, 403]),
        row!(GET "/api/v1/secrets", |_, _| "/api/v1/secrets?reveal=true".into(),            [200, 403, 403, 403, 403, 403, 403]),
        row!(POST "/api/v1/secrets", |_, _| "/api/v1/secrets?dryRun=true".into(),
             |_, u| Some(json!({"name": format!("s-{u}"), "data": {"K": "v"}})),           [200, 200, 403, 200, 403, 403, 403]),
        row!(POST "/api/v1/secrets", |_, _| "/api/v1/secrets".into(),
             |_, u| Some(json!({"name": format!("s-{u}"), "data": {"K": "v"}})),           [201, 201, 403, 201, 403, 403, 403]),
        row!(GET "/api/v1/secrets/{name}", |_, _| "/api/v1/secrets/anthropic".into(),       [200, 200, 200, 200, 403, 403, 403]),
        row!(GET "/api/v1/secrets/{name}", |_, _| "/api/v1/secrets/anthropic?reveal=true".into(), [200, 403, 403, 403, 403, 403, 403]),
        row!(PUT "/api/v1/secrets/{name}", |_, u| format!("/api/v1/secrets/s-{u}"),
             |_, _| Some(json!({"data": {"K": "v2"}})),                                     [200, 200, 403, 200, 403, 403, 403]),
        row!(PUT "/api/v1/secrets/{name}", |_, u| format!("/api/v1/secrets/s-{u}?dryRun=true"),
             |_, _| Some(json!({"data": {"K": "v3"}})),                                     [200, 200, 403, 200, 403, 403, 403]),
        row!(GET "/api/v1/secrets/{name}/history", |_, _| "/api/v1/secrets/anthropic/history".into(), [200, 200, 200, 200, 403, 403, 403]),
        row!(DELETE "/api/v1/secrets/{name}", |_, u| format!("/api/v1/secrets/s-{u}?dryRun=true"), [204, 204, 403, 204, 403, 403, 403]),
        row!(DELETE "/api/v1/secrets/{name}", |_, u| format!("/api/v1/secrets/s-{u}"),      [204, 204, 403, 204, 403, 403, 403]),
        row!(POST "/api/v1/secrets/migrate", |_, _| "/api/v1/secrets/migrate".into(),
             |_, _| Some(json!({"from": "default", "to": "spare", "dryRun": true})),       [200, 200, 403, 403, 403, 403, 403]),
        // Secret backends: viewing them is everyone's who sees the catalogue; choosing where
        // one sends its token and values is admin's (reveal on every secret).
        row!(GET "/api/v1/secretbackends", |_, _| "/api/v1/secretbackends".into(),          [200, 200, 200, 200, 403, 403, 403]),
        row!(POST "/api/v1/secretbackends", |_, _| "/api/v1/secretbackends?dryRun=true".into(),
             |_, u| Some(json!({"name": format!("b-{u}"), "type": "plaintext"})),          [200, 403, 403, 403, 403, 403, 403]),
        row!(POST "/api/v1/secretbackends", |_, _| "/api/v1/secretbackends".into(),
             |_, u| Some(json!({"name": format!("b-{u}"), "type": "plaintext"})),          [201, 403, 403, 403, 403, 403, 403]),
        row!(GET "/api/v1/secretbackends/{name}", |_, _| "/api/v1/secretbackends/default".into(), [200, 200, 200, 200, 403, 403, 403]),
        row!(PUT "/api/v1/secretbackends/{name}", |_, u| format!("/api/v1/secretbackends/b-{u}"),
             |_, _| Some(json!({"type": "plaintext", "description": "x"})),                [200, 403, 403, 403, 403, 403, 403]),
        row!(PUT "/api/v1/secretbackends/{name}", |_, u| format!("/api/v1/secretbackends/b-{u}?dryRun=true"),
             |_, _| Some(json!({"type": "plaintext", "description": "y"})),                [200, 403, 403, 403, 403, 403, 403]),
        row!(GET "/api/v1/secretbackends/{name}/history", |_, _| "/api/v1/secretbackends/default/history".into(), [200, 200, 200, 200, 403, 403, 403]),
        row!(GET "/api/v1/secretbackends/{name}/health", |_, _| "/api/v1/secretbackends/default/health".into(), [200, 200, 200, 200, 403, 403, 403]),
        row!(DELETE "/api/v1/secretbackends/{name}", |_, u| format!("/api/v1/secretbackends/b-{u}?dryRun=true"), [204, 403, 403, 403, 403, 403, 403]),
        row!(DELETE "/api/v1/secretbackends/{name}", |_, u| format!("/api/v1/secretbackends/b-{u}"), [204, 403, 403, 403, 403, 403, 403]),
        // Migration runs.
        row!(GET "/api/v1/migrations", |_, _| "/api/v1/migrations".into(),                  [200, 200, 200, 403, 403, 403, 403]),
        row!(GET "/api/v1/migrations/{id}", |f, _| format!("/api/v1/migrations/{}", f.migration_run), [200, 200, 200, 403, 403, 403, 403]),
        // Audit and projections.
        row!(GET "/api/v1/audit", |_, _| "/api/v1/audit?limit=5".into(),                    [200, 403, 403, 200, 403, 403, 403]),
        // The refused requests: the same as the audit log (they name who tried what).
        row!(GET "/api/v1/audit/denials", |_, _| "/api/v1/audit/denials?limit=5".into(),    [200, 403, 403, 200, 403, 403, 403]),
        row!(GET "/api/v1/projections", |_, _| "/api/v1/projections".into(),                [200, 403, 403, 403, 403, 403, 403]),
        row!(POST "/api/v1/projections/verify", |_, _| "/api/v1/projections/verify".into(),
             |_, _| Some(json!({"names": ["llms"]})),                                        [200, 403, 403, 403, 403, 403, 403]),
        row!(POST "/api/v1/projections/rebuild", |_, _| "/api/v1/projections/rebuild".into(),
             |_, _| Some(json!({"names": ["migrations"]})),                                  [202, 403, 403, 403, 403, 403, 403]),
        // Users and tokens.
        row!(GET "/api/v1/users", |_, _| "/api/v1/users".into(),                            [200, 403, 403, 403, 403, 403, 403]),
        row!(POST "/api/v1/users", |_, _| "/api/v1/users?dryRun=true".into(),
             |_, u| Some(json!({"name": format!("u-{u}")})),                                [200, 403, 403, 403, 403, 403, 403]),
        row!(POST "/api/v1/users", |_, _| "/api/v1/users".into(),
             |_, u| Some(json!({"name": format!("u-{u}")})),                                [201, 403, 403, 403, 403, 403, 403]),
        row!(GET "/api/v1/users/{name}", |_, _| "/api/v1/users/admin".into(),               [200, 403, 403, 403, 403, 403, 403]),
        row!(GET "/api/v1/users/{name}/history", |_, _| "/api/v1/users/admin/history".into(), [200, 403, 403, 403, 403, 403, 403]),
        row!(DELETE "/api/v1/users/{name}", |_, u| format!("/api/v1/users/u-{u}?dryRun=true"), [204, 403, 403, 403, 403, 403, 403]),
        row!(DELETE "/api/v1/users/{name}", |_, u| format!("/api/v1/users/u-{u}"),          [204, 403, 403, 403, 403, 403, 403]),
        row!(GET "/api/v1/tokens", |_, _| "/api/v1/tokens".into(),                          [200, 403, 403, 403, 403, 403, 403]),
        // A token for oneself needs `create` on tokens; one for anybody else acts as them from
        // then on (with whatever they are granted later): impersonate:users, admin's alone.
        row!(POST "/api/v1/tokens", |_, _| "/api/v1/tokens".into(),
             |_, u| Some(json!({"user": u})),                                               [201, 403, 403, 403, 201, 403, 403]),
        row!(POST "/api/v1/tokens", |_, _| "/api/v1/tokens".into(),
             |_, _| Some(json!({"user": "admin"})),                                         [201, 403, 403, 403, 403, 403, 403]),
        row!(POST "/api/v1/tokens", |_, _| "/api/v1/tokens".into(),
             |_, _| Some(json!({"user": "victim"})),                                        [201, 403, 403, 403, 403, 403, 403]),
        // A dry run issues nothing (200, no token), authorised as the issue it rehearses.
        row!(POST "/api/v1/tokens", |_, _| "/api/v1/tokens?dryRun=true".into(),
             |_, u| Some(json!({"user": u})),                                               [200, 403, 403, 403, 200, 403, 403]),
        row!(POST "/api/v1/tokens", |_, _| "/api/v1/tokens?dryRun=true".into(),
             |_, _| Some(json!({"user": "victim"})),                                        [200, 403, 403, 403, 403, 403, 403]),
        row!(GET "/api/v1/tokens/{name}", |f, _| format!("/api/v1/tokens/{}", f.admin_token_id), [200, 403, 403, 403, 403, 403, 403]),
        row!(GET "/api/v1/tokens/{name}/history", |f, _| format!("/api/v1/tokens/{}/history", f.admin_token_id), [200, 403, 403, 403, 403, 403, 403]),
        row!(DELETE "/api/v1/tokens/{name}", |f, u| format!("/api/v1/tokens/{}?dryRun=true", f.victim_tokens[index(u)]), [204, 403, 403, 403, 403, 403, 403]),
        row!(DELETE "/api/v1/tokens/{name}", |f, u| format!("/api/v1/tokens/{}", f.victim_tokens[index(u)]), [204, 403, 403, 403, 403, 403, 403]),
        // Roles and bindings.
        row!(GET "/api/v1/roles", |_, _| "/api/v1/roles".into(),                            [200, 403, 403, 403, 403, 403, 403]),
        row!(POST "/api/v1/roles", |_, _| "/api/v1/roles?dryRun=true".into(),
             |_, u| Some(json!({"name": format!("r-{u}"), "rules": [{"resources": ["llms"], "verbs": ["view"]}]})), [200, 403, 403, 403, 403, 403, 403]),
        row!(POST "/api/v1/roles", |_, _| "/api/v1/roles".into(),
             |_, u| Some(json!({"name": format!("r-{u}"), "rules": [{"resources": ["llms"], "verbs": ["view"]}]})), [201, 403, 403, 403, 403, 403, 403]),
        row!(GET "/api/v1/roles/{name}", |_, _| "/api/v1/roles/viewer".into(),              [200, 403, 403, 403, 403, 403, 403]),
        row!(PUT "/api/v1/roles/{name}", |_, u| format!("/api/v1/roles/r-{u}"),
             |_, _| Some(json!({"rules": [{"resources": ["llms"], "verbs": ["view"]}], "description": "x"})), [200, 403, 403, 403, 403, 403, 403]),
        row!(PUT "/api/v1/roles/{name}", |_, u| format!("/api/v1/roles/r-{u}?dryRun=true"),
             |_, _| Some(json!({"rules": [{"resources": ["llms"], "verbs": ["view"]}], "description": "y"})), [200, 403, 403, 403, 403, 403, 403]),
        row!(GET "/api/v1/roles/{name}/history", |_, _| "/api/v1/roles/scoped/history".into(), [200, 403, 403, 403, 403, 403, 403]),
        row!(GET "/api/v1/rolebindings", |_, _| "/api/v1/rolebindings".into(),              [200, 403, 403, 403, 403, 403, 403]),
        row!(GET "/api/v1/rolebindings/{name}/history", |_, _| "/api/v1/rolebindings/admin/history".into(), [200, 403, 403, 403, 403, 403, 403]),
        row!(POST "/api/v1/rolebindings", |_, _| "/api/v1/rolebindings?dryRun=true".into(),
             |_, u| Some(json!({"name": format!("rb-{u}"), "role": format!("r-{u}"), "users": ["victim"]})), [200, 403, 403, 403, 403, 403, 403]),
        row!(POST "/api/v1/rolebindings", |_, _| "/api/v1/rolebindings".into(),
             |_, u| Some(json!({"name": format!("rb-{u}"), "role": format!("r-{u}"), "users": ["victim"]})), [201, 403, 403, 403, 403, 403, 403]),
        row!(GET "/api/v1/rolebindings/{name}", |_, _| "/api/v1/rolebindings/admin".into(), [200, 403, 403, 403, 403, 403, 403]),
        row!(PUT "/api/v1/rolebindings/{name}", |_, u| format!("/api/v1/rolebindings/rb-{u}"),
             |_, u| Some(json!({"role": format!("r-{u}"), "users": ["victim"], "description": "x"})), [200, 403, 403, 403, 403, 403, 403]),
        row!(PUT "/api/v1/rolebindings/{name}", |_, u| format!("/api/v1/rolebindings/rb-{u}?dryRun=true"),
             |_, u| Some(json!({"role": format!("r-{u}"), "users": ["victim"], "description": "y"})), [200, 403, 403, 403, 403, 403, 403]),
        row!(DELETE "/api/v1/rolebindings/{name}", |_, u| format!("/api/v1/rolebindings/rb-{u}?dryRun=true"), [204, 403, 403, 403, 403, 403, 403]),
        row!(DELETE "/api/v1/rolebindings/{name}", |_, u| format!("/api/v1/rolebindings/rb-{u}"), [204, 403, 403, 403, 403, 403, 403]),
        row!(DELETE "/api/v1/roles/{name}", |_, u| format!("/api/v1/roles/r-{u}?dryRun=true"), [204, 403, 403, 403, 403, 403, 403]),
        row!(DELETE "/api/v1/roles/{name}", |_, u| format!("/api/v1/roles/r-{u}"),          [204, 403, 403, 403, 403, 403, 403]),
    ]
}

#[test]
fn every_route_has_a_row_and_every_row_a_route() {
    let routes: BTreeSet<(String, String)> =
        server::router::route_list().into_iter().map(|r| (r.method.to_string(), r.path)).collect();
    let covered: BTreeSet<(String, String)> =
        rows().iter().map(|r| (r.method.to_string(), r.template.to_owned())).collect();
    let missing: Vec<_> = routes.difference(&covered).collect();
    let unknown: Vec<_> = covered.difference(&routes).collect();
    assert!(missing.is_empty(), "routes without a row in the permission matrix: {missing:?}");
    assert!(unknown.is_empty(), "rows for routes mcpd does not serve: {unknown:?}");
}

#[test]
fn every_kind_of_the_registry_is_served() {
    let routes: BTreeSet<(String, String)> =
        server::router::route_list().into_iter().map(|r| (r.method.to_string(), r.path)).collect();
    for kind in domain::document::Kind::ALL {
        assert!(routes.contains(&("GET".to_owned(), kind.path())), "kind {kind} has no GET {} route", kind.path());
    }
}

async fn every_route_answers_each_user_exactly_as_written_down(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.seed_llm().await;
    assert_eq!(
        t.post("/api/v1/secretbackends", json!({"name": "spare", "type": "plaintext"})).await.status,
        StatusCode::CREATED
    );
    assert_eq!(t.post("/api/v1/secrets", json!({"name": "mig", "data": {"K": "v"}})).await.status, StatusCode::CREATED);
    let run = t.post("/api/v1/secrets/migrate", json!({"from": "default", "to": "spare", "names": ["mig"]})).await;
    assert_eq!(run.status, StatusCode::OK, "{:?}", run.body);
    let migration_run = t.get("/api/v1/migrations").await.body["items"][0]["name"].as_str().unwrap().to_owned();
    let admin_token_id = t.get("/api/v1/whoami").await.body["tokenId"].as_str().unwrap().to_owned();
    let scoped = json!({"name": "scoped", "rules": [
        {"resources": ["llms"], "verbs": ["view", "create", "edit", "delete"], "names": ["claude-fast", "l-scoped"]},
        {"resources": ["secrets"], "verbs": ["view", "create", "edit", "delete"], "names": ["anthropic", "s-scoped"]},
        {"resources": ["secretbackends"], "verbs": ["view"], "names": ["default"]},
        {"resources": ["audit"], "verbs": ["view"]},
    ]});
    assert_eq!(t.post("/api/v1/roles", scoped).await.status, StatusCode::CREATED);
    let tokens_only = json!({"name": "tokens-only", "rules": [{"resources": ["tokens"], "verbs": ["create"]}]});
    assert_eq!(t.post("/api/v1/roles", tokens_only).await.status, StatusCode::CREATED);
    assert_eq!(t.post("/api/v1/users", json!({"name": "victim"})).await.status, StatusCode::CREATED);
    let mut victim_tokens = Vec::new();
    for _ in USERS {
        let r = t.post("/api/v1/tokens", json!({"user": "victim"})).await;
        victim_tokens.push(r.body["name"].as_str().unwrap().to_owned());
    }
    let fixture = Fixture { admin_token_id, migration_run, victim_tokens };

    let mut tokens = vec![testkit::ADMIN_TOKEN.to_owned()];
    for (user, role) in [
        ("editor", Some("editor")),
        ("viewer", Some("viewer")),
        ("scoped", Some("scoped")),
        ("tokens", Some("tokens-only")),
        ("nobody", None),
        ("monitoring", Some("monitoring")),
    ] {
        tokens.push(user_with(&t, user, role).await);
    }
    let mut wrong = Vec::new();
    for (i, user) in USERS.iter().enumerate() {
        for row in rows() {
            let path = (row.path)(&fixture, user);
            let r = t.call_as(Some(&tokens[i]), row.method.clone(), &path, (row.body)(&fixture, user)).await;
            if r.status.as_u16() != row.expect[i] {
                wrong.push(format!(
                    "{user}: {} {path} answered {}, not {}: {}",
                    row.method,
                    r.status.as_u16(),
                    row.expect[i],
                    r.body
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{} calls answered otherwise than written down:\n{}", wrong.len(), wrong.join("\n"));
}

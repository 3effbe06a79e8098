//! Authentication: every route but /healthz and /version needs a valid bearer token; users and
//! tokens are event-sourced; a token exists in clear only in the answer that issued it.

use axum::http::{Method, StatusCode};
use projections::Position;
use serde_json::json;
use sqlx::Row;

use crate::support::{StoreKind, TestApp};

testkit::on_both_stores!(
    missing_malformed_unknown_expired_and_revoked_tokens_are_401,
    users_and_tokens_are_resources_and_a_token_is_shown_once,
    the_store_holds_no_token_in_clear,
    access_changes_on_one_replica_take_effect_on_the_other,
);

async fn issue(t: &TestApp, user: &str, extra: serde_json::Value) -> (String, String) {
    let mut body = json!({"user": user});
    for (k, v) in extra.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
    let r = t.post("/api/v1/tokens", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    (r.body["name"].as_str().unwrap().to_owned(), r.body["token"].as_str().unwrap().to_owned())
}

async fn missing_malformed_unknown_expired_and_revoked_tokens_are_401(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    assert_eq!(t.post("/api/v1/users", json!({"name": "alice"})).await.status, StatusCode::CREATED);
    let binding = json!({"name": "alice-views", "role": "viewer", "users": ["alice"]});
    assert_eq!(t.post("/api/v1/rolebindings", binding).await.status, StatusCode::CREATED);
    let as_ = |token: Option<String>| {
        let t = &t;
        async move { t.call_as(token.as_deref(), Method::GET, "/api/v1/llms", None).await }
    };

    let r = as_(None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers["www-authenticate"], "Bearer realm=\"mcpd\"");
    assert!(r.message().contains("mcpctl login"), "{}", r.message());
    let basic = t
        .send_raw(
            axum::http::Request::get("/api/v1/llms")
                .header("authorization", "Basic YWxpY2U6c2VjcmV0")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);
    assert_eq!(as_(Some(String::new())).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(as_(Some("mcpd_tok-0000000000000000_abcdef".into())).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(as_(Some("x".repeat(64))).await.status, StatusCode::UNAUTHORIZED);

    // A right id with a wrong secret is as unknown as anything else.
    let (id, token) = issue(&t, "alice", json!({})).await;
    assert_eq!(as_(Some(token.clone())).await.status, StatusCode::OK);
    let forged = format!("mcpd_{id}_{}", "0".repeat(64));
    assert_eq!(as_(Some(forged)).await.status, StatusCode::UNAUTHORIZED);

    // Revoked: refused on the very next request.
    assert_eq!(t.delete(&format!("/api/v1/tokens/{id}")).await.status, StatusCode::NO_CONTENT);
    let r = as_(Some(token)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.message(), "the token is not valid (unknown, expired or revoked)", "one answer whatever the reason");

    // Expired.
    let soon = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_secs(2)).unwrap();
    let (_, short_lived) = issue(&t, "alice", json!({"expires": soon.to_string()})).await;
    let mut refused = false;
    // Polled, not slept for: every answer before the expiry is 200, and the first 401 comes at
    // or after it.
    while !refused {
        let asked = jiff::Timestamp::now();
        match as_(Some(short_lived.clone())).await.status {
            StatusCode::OK => assert!(asked < soon, "accepted after its expiry ({asked} ≥ {soon})"),
            StatusCode::UNAUTHORIZED => {
                assert!(jiff::Timestamp::now() >= soon, "refused before its expiry ({soon})");
                refused = true;
            }
            other => panic!("an expiring token answered {other}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // A deleted user's tokens stop working, and do not come back with a new user of that name.
    let (_, alices) = issue(&t, "alice", json!({})).await;
    assert_eq!(t.delete("/api/v1/users/alice").await.status, StatusCode::NO_CONTENT);
    assert_eq!(as_(Some(alices.clone())).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(t.post("/api/v1/users", json!({"name": "alice"})).await.status, StatusCode::CREATED);
    assert_eq!(as_(Some(alices)).await.status, StatusCode::UNAUTHORIZED);

    // Open routes.
    assert_eq!(t.call_as(None, Method::GET, "/healthz", None).await.status, StatusCode::OK);
    assert_eq!(t.call_as(None, Method::GET, "/version", None).await.status, StatusCode::OK);
}

async fn users_and_tokens_are_resources_and_a_token_is_shown_once(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let r = t.post("/api/v1/users", json!({"name": "alice", "description": "SRE"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!((r.body["kind"].clone(), r.body["description"].clone()), (json!("user"), json!("SRE")));
    assert_eq!(t.post("/api/v1/users", json!({"name": "alice"})).await.status, StatusCode::CONFLICT);
    let bad = t.post("/api/v1/users", json!({"name": "Not A Name"})).await;
    assert_eq!((bad.status, bad.fields()), (StatusCode::BAD_REQUEST, vec!["name".to_owned()]));
    let users: Vec<_> =
        t.get("/api/v1/users").await.body["items"].as_array().unwrap().iter().map(|u| u["name"].clone()).collect();
    assert_eq!(users, [json!("admin"), json!("alice")]);

    let (id, token) = issue(&t, "alice", json!({"expires": "30d", "description": "laptop"})).await;
    assert!(token.starts_with(&format!("mcpd_{id}_")), "the id is part of the token");
    let me = t.call_as(Some(&token), Method::GET, "/api/v1/whoami", None).await;
    assert_eq!(me.body, json!({"user": "alice", "tokenId": id}));

    let listed = t.get("/api/v1/tokens").await.body["items"].as_array().unwrap().clone();
    let alices: Vec<_> = listed.iter().filter(|t| t["user"] == "alice").collect();
    assert_eq!(alices.len(), 1);
    let shown = alices[0];
    assert_eq!(shown["name"], json!(id));
    assert_eq!(shown["description"], "laptop");
    assert!(shown["expiresAt"].as_str().unwrap().starts_with("20"));
    assert!(shown.get("token").is_none() && shown.get("hash").is_none(), "{shown}");
    let one = t.get(&format!("/api/v1/tokens/{id}")).await;
    assert!(!one.body.to_string().contains(&token));

    let r = t.post("/api/v1/tokens", json!({"user": "bob"})).await;
    assert_eq!((r.status, r.fields()), (StatusCode::CONFLICT, vec!["user".to_owned()]));
    let r = t.post("/api/v1/tokens", json!({"user": "alice", "expires": "3 weeks"})).await;
    assert_eq!((r.status, r.fields()), (StatusCode::BAD_REQUEST, vec!["expires".to_owned()]));
    assert_eq!(t.delete("/api/v1/tokens/tok-nope").await.status, StatusCode::NOT_FOUND);

    // The last user cannot be deleted: nobody could log in any more.
    assert_eq!(t.delete("/api/v1/users/alice").await.status, StatusCode::NO_CONTENT);
    let r = t.delete("/api/v1/users/admin").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
}

async fn the_store_holds_no_token_in_clear(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.post("/api/v1/users", json!({"name": "alice"})).await.succeeded();
    let (_, token) = issue(&t, "alice", json!({})).await;
    assert_eq!(t.call_as(Some(&token), Method::GET, "/api/v1/whoami", None).await.status, StatusCode::OK);
    t.app
        .services
        .store
        .projector
        .wait_for(&projections::read_models::ReadModel::ALL, Position::default(), std::time::Duration::from_secs(5))
        .await
        .expect("the read models show every write");
    let pool = &t.app.services.store.db.pool;
    let mut text = String::new();
    for query in [
        "SELECT id || user_name || hash || description AS t FROM tokens",
        "SELECT name || description AS t FROM users",
        "SELECT id || last_used_at AS t FROM token_usage",
    ] {
        for row in sqlx::query(query).fetch_all(pool).await.unwrap() {
            text.push_str(&row.get::<String, _>("t"));
        }
    }
    for event in t.app.services.store.log.read_after(Position::default(), 10_000).await.unwrap() {
        text.push_str(&event.payload.to_string());
        text.push_str(&format!("{:?}", event.metadata));
    }
    let secret = token.rsplit_once('_').unwrap().1;
    assert!(text.contains(&server::auth::hash(&token)), "the hash is what is kept");
    assert!(!text.contains(secret), "the token's secret part is nowhere in the store");
    assert!(!text.contains(testkit::ADMIN_TOKEN), "nor is the bootstrap token");
}

/// Polls `check` until it holds, for at most 5 s (the design bound is the access cache's
/// follow interval plus the projection's lag, well under 1 s; the margin is for a loaded
/// machine); returns how long it took.
async fn within(what: &str, mut check: impl AsyncFnMut() -> bool) -> std::time::Duration {
    let start = std::time::Instant::now();
    while !check().await {
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "{what}: still not seen after 5 s");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// Authentication is served from memory on every replica, and a change recorded on one
/// replica reaches the others: a revoked token, a deleted user and a removed binding stop
/// working there too, without a restart.
async fn access_changes_on_one_replica_take_effect_on_the_other(kind: StoreKind) {
    let a = TestApp::start(kind).await;
    let b = a.replica().await;
    assert_eq!(a.post("/api/v1/users", json!({"name": "alice"})).await.status, StatusCode::CREATED);
    assert_eq!(a.post("/api/v1/users", json!({"name": "bob"})).await.status, StatusCode::CREATED);
    let binding = json!({"name": "alice-views", "role": "viewer", "users": ["alice", "bob"]});
    assert_eq!(a.post("/api/v1/rolebindings", binding).await.status, StatusCode::CREATED);
    let (_, alice) = issue(&a, "alice", json!({})).await;
    let (bob_id, bob) = issue(&a, "bob", json!({})).await;

    // Each is used on B first, so B holds the token, the user and the permissions.
    let lists = async |token: &str| b.call_as(Some(token), Method::GET, "/api/v1/llms", None).await.status;
    within("B sees alice's token", async || lists(&alice).await == StatusCode::OK).await;
    within("B sees bob's token", async || lists(&bob).await == StatusCode::OK).await;

    // Bob's token revoked on A: refused on B.
    assert_eq!(a.delete(&format!("/api/v1/tokens/{bob_id}")).await.status, StatusCode::NO_CONTENT);
    let took = within("bob's revoked token refused on B", async || lists(&bob).await == StatusCode::UNAUTHORIZED).await;
    eprintln!("revocation reached the other replica in {took:?}");

    // The binding removed on A: alice is still authenticated on B but may list nothing.
    assert_eq!(a.delete("/api/v1/rolebindings/alice-views").await.status, StatusCode::NO_CONTENT);
    let took = within("alice's lost binding on B", async || lists(&alice).await == StatusCode::FORBIDDEN).await;
    eprintln!("the binding's removal reached the other replica in {took:?}");

    // A new binding through a custom role on A: granted at once on A, and soon on B.
    let role = json!({"name": "llm-readers", "rules": [{"resources": ["secrets"], "verbs": ["view"]}]});
    assert_eq!(a.post("/api/v1/roles", role).await.status, StatusCode::CREATED);
    let binding = json!({"name": "alice-reads", "role": "llm-readers", "users": ["alice"]});
    assert_eq!(a.post("/api/v1/rolebindings", binding).await.status, StatusCode::CREATED);
    let secrets =
        async |app: &TestApp, token: &str| app.call_as(Some(token), Method::GET, "/api/v1/secrets", None).await.status;
    assert_eq!(secrets(&a, &alice).await, StatusCode::OK, "granted at once where it was recorded");
    within("alice's new binding on B", async || secrets(&b, &alice).await == StatusCode::OK).await;
    // The role's rules changed on A: the binding now grants llms, not secrets.
    let role = json!({"name": "llm-readers", "rules": [{"resources": ["llms"], "verbs": ["view"]}]});
    assert_eq!(a.put("/api/v1/roles/llm-readers", role).await.status, StatusCode::OK);
    assert_eq!(secrets(&a, &alice).await, StatusCode::FORBIDDEN);
    assert_eq!(a.call_as(Some(&alice), Method::GET, "/api/v1/llms", None).await.status, StatusCode::OK);
    within("the role's change on B", async || secrets(&b, &alice).await == StatusCode::FORBIDDEN).await;

    // Alice deleted on A: her token is refused on B.
    assert_eq!(a.delete("/api/v1/users/alice").await.status, StatusCode::NO_CONTENT);
    within("alice's token refused on B", async || lists(&alice).await == StatusCode::UNAUTHORIZED).await;

    // And on A at once, which recorded them.
    assert_eq!(a.call_as(Some(&bob), Method::GET, "/api/v1/llms", None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.call_as(Some(&alice), Method::GET, "/api/v1/llms", None).await.status, StatusCode::UNAUTHORIZED);
}

/// A transaction holding a transaction id, open until committed: while it is, no write after it
/// is applied inline and the projector does not pass it (PostgreSQL's xmin rule).
async fn older_transaction(t: &TestApp) -> sqlx::Transaction<'static, sqlx::Any> {
    let mut older = t.app.services.store.db.pool.begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()::text").execute(&mut *older).await.unwrap();
    older
}

/// Two replicas on one PostgreSQL database that wait 300 ms for the read models before
/// answering a write 202; the database is dropped with the first of the three.
async fn lagging_replicas() -> (testkit::TestDb, TestApp, TestApp) {
    let db = testkit::TestDb::holding_the_cluster(StoreKind::Postgres).await;
    let open = async |db: &testkit::TestDb| {
        let wait = std::time::Duration::from_millis(300);
        let app = server::App::open(&db.url, wait, &crate::support::bootstrap()).await.expect("mcpd starts");
        TestApp { app, db: db.share() }
    };
    let a = open(&db).await;
    let b = open(&db).await;
    (db, a, b)
}

/// PostgreSQL, with an older transaction open: a write is not applied inline, so the access
/// cache hears of it at the append, before the projector makes the read models show it. A
/// request in that window reads them as they were (no binding yet). Once the write is
/// answered, that stale read must not be what the next request is served: the new binding
/// grants at once, as it does when the write is inlined (before the fix, it waited for the
/// cache's follower). A revoked token is refused throughout, from the append on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_projector_applies_takes_effect_at_once_though_read_before_it_showed() {
    let t = std::sync::Arc::new(TestApp::start_holding_the_cluster(StoreKind::Postgres).await);
    assert_eq!(t.post("/api/v1/users", json!({"name": "alice"})).await.status, StatusCode::CREATED);
    let secrets = async |token: &str| t.call_as(Some(token), Method::GET, "/api/v1/secrets", None).await.status;
    let (_, alice) = issue(&t, "alice", json!({})).await;
    assert_eq!(secrets(&alice).await, StatusCode::FORBIDDEN, "no binding yet");

    // A write run while a transaction older than it is open, and `token`'s request once it is
    // in the log; the window is shut by ending the older transaction.
    let in_the_window =
        async |method: Method, path: String, body: Option<serde_json::Value>, logged_as: (&str, &str), token: &str| {
            let (aggregate, id) = logged_as;
            let pool = &t.app.services.store.db.pool;
            let older = older_transaction(&t).await;
            let access = &t.app.services.access;
            let before = access.generation();
            let write = tokio::spawn({
                let t = t.clone();
                async move { t.call(method, &path, body, None).await }
            });
            let logged = async || {
                sqlx::query("SELECT 1 FROM events WHERE aggregate_type = $1 AND aggregate_id = $2")
                    .bind(aggregate)
                    .bind(id)
                    .fetch_optional(pool)
                    .await
                    .unwrap()
                    .is_some()
            };
            within("the write is in the log", logged).await;
            // The writer tells the cache right after its commit (it drops what the write changes):
            // the request is sent once it has.
            within("the cache heard of the write", async || access.generation() > before).await;
            let status = secrets(token).await;
            older.commit().await.unwrap();
            let reply = write.await.unwrap();
            (status, reply)
        };

    for round in 0..3 {
        let name = format!("alice-reads-{round}");
        let binding = json!({"name": name, "role": "viewer", "users": ["alice"]});
        let (between, reply) = in_the_window(
            Method::POST,
            "/api/v1/rolebindings".to_owned(),
            Some(binding),
            (domain::rbac::BINDING_AGGREGATE_TYPE, &name),
            &alice,
        )
        .await;
        assert_eq!(between, StatusCode::FORBIDDEN, "round {round}: the read models did not show it yet");
        assert_eq!(reply.status, StatusCode::CREATED, "round {round}: {:?}", reply.body);
        assert_eq!(secrets(&alice).await, StatusCode::OK, "round {round}: granted once the write is answered");
        assert_eq!(t.delete(&format!("/api/v1/rolebindings/{name}")).await.status, StatusCode::NO_CONTENT);
        assert_eq!(secrets(&alice).await, StatusCode::FORBIDDEN, "round {round}: and gone with it");
    }

    assert_eq!(
        t.post("/api/v1/rolebindings", json!({"name": "alice-reads", "role": "viewer", "users": ["alice"]}))
            .await
            .status,
        StatusCode::CREATED
    );
    for round in 0..3 {
        let (id, token) = issue(&t, "alice", json!({})).await;
        assert_eq!(secrets(&token).await, StatusCode::OK);
        let revoke = format!("/api/v1/tokens/{id}");
        let (between, reply) =
            in_the_window(Method::DELETE, revoke, None, (domain::token::AGGREGATE_TYPE, &id), &token).await;
        assert_eq!(between, StatusCode::UNAUTHORIZED, "round {round}: refused from the moment it is recorded");
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "round {round}: {:?}", reply.body);
        assert_eq!(
            secrets(&token).await,
            StatusCode::UNAUTHORIZED,
            "round {round}: refused once the revocation is answered"
        );
    }
}

/// PostgreSQL, with an older transaction open for a while: the read models cannot show new
/// writes, which are answered 202. A revoked token, a deleted binding and a deleted user still
/// hold at once on the replica that recorded them and at the next follow on another. An update
/// of a binding takes effect when shown: it neither refuses whom it still binds nor grants early.
/// Once the transaction ends, the read models show it all and nothing reverts. (Before, a
/// revoked token kept working on every replica until the read models caught up.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_hold_at_once_while_the_read_models_lag() {
    let (_db, a, b) = lagging_replicas().await;
    for user in ["alice", "bob", "carol", "dave", "erin"] {
        assert_eq!(a.post("/api/v1/users", json!({"name": user})).await.status, StatusCode::CREATED);
    }
    for user in ["alice", "bob", "dave", "erin"] {
        let binding = json!({"name": format!("{user}-reads"), "role": "viewer", "users": [user]});
        assert_eq!(a.post("/api/v1/rolebindings", binding).await.status, StatusCode::CREATED);
    }
    let (alice_id, alice) = issue(&a, "alice", json!({})).await;
    let (_, bob) = issue(&a, "bob", json!({})).await;
    let (_, carol) = issue(&a, "carol", json!({})).await;
    let (_, dave) = issue(&a, "dave", json!({})).await;
    let (_, erin) = issue(&a, "erin", json!({})).await;
    let lists =
        async |app: &TestApp, token: &str| app.call_as(Some(token), Method::GET, "/api/v1/llms", None).await.status;
    for app in [&a, &b] {
        for token in [&alice, &bob, &dave, &erin] {
            within("every token works on both", async || lists(app, token).await == StatusCode::OK).await;
        }
        assert_eq!(lists(app, &carol).await, StatusCode::FORBIDDEN, "carol is bound to nothing yet");
    }

    let older = older_transaction(&a).await;

    let r = a.delete(&format!("/api/v1/tokens/{alice_id}")).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "the read models cannot show it: {:?}", r.body);
    assert_eq!(lists(&a, &alice).await, StatusCode::UNAUTHORIZED, "revoked at once where it was recorded");
    within("the revocation on B", async || lists(&b, &alice).await == StatusCode::UNAUTHORIZED).await;

    assert_eq!(a.delete("/api/v1/rolebindings/bob-reads").await.status, StatusCode::ACCEPTED);
    assert_eq!(lists(&a, &bob).await, StatusCode::FORBIDDEN, "unbound at once where it was recorded");
    within("bob unbound on B", async || lists(&b, &bob).await == StatusCode::FORBIDDEN).await;

    let r = a.call(Method::DELETE, "/api/v1/users/dave", None, None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(lists(&a, &dave).await, StatusCode::UNAUTHORIZED, "deleted at once where it was recorded");
    within("dave deleted on B", async || lists(&b, &dave).await == StatusCode::UNAUTHORIZED).await;

    let binding = json!({"name": "erin-reads", "role": "viewer", "users": ["erin", "carol"]});
    assert_eq!(a.put("/api/v1/rolebindings/erin-reads", binding).await.status, StatusCode::ACCEPTED);
    // Both replicas follow the log past the update (as their background task does every 200 ms;
    // done here so the step is the test's, not a sleep's).
    for app in [&a, &b] {
        app.app.services.access.follow(&app.app.services.store).await.unwrap();
    }
    for app in [&a, &b] {
        assert_eq!(lists(app, &erin).await, StatusCode::OK, "an update refuses nobody it still binds");
        assert_eq!(lists(app, &carol).await, StatusCode::FORBIDDEN, "and grants once shown");
    }

    older.commit().await.unwrap();
    for app in [&a, &b] {
        within("carol's grant once shown", async || lists(app, &carol).await == StatusCode::OK).await;
        assert_eq!(lists(app, &erin).await, StatusCode::OK, "erin stays bound");
        assert_eq!(lists(app, &alice).await, StatusCode::UNAUTHORIZED, "alice's token stays revoked");
        assert_eq!(lists(app, &bob).await, StatusCode::FORBIDDEN, "bob stays unbound");
        assert_eq!(lists(app, &dave).await, StatusCode::UNAUTHORIZED, "dave stays deleted");
    }
}

/// PostgreSQL, with an older transaction open so that writes are answered 202: an update of a
/// binding or a role that takes something away holds from the moment it is recorded, as a
/// deletion does, on the replica that recorded it at once and on another at its next follow.
/// Until the read models show it, the narrowed binding or role grants nothing (fail closed:
/// those it still binds wait for it too); once shown, exactly the new content holds. (Before,
/// a user dropped from a binding kept its grants until the read models caught up.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrowing_update_of_a_binding_or_role_holds_at_once_while_the_read_models_lag() {
    let (_db, a, b) = lagging_replicas().await;
    for user in ["frank", "gina", "hank"] {
        assert_eq!(a.post("/api/v1/users", json!({"name": user})).await.status, StatusCode::CREATED);
    }
    let binding = json!({"name": "team-reads", "role": "viewer", "users": ["frank", "gina"]});
    assert_eq!(a.post("/api/v1/rolebindings", binding).await.status, StatusCode::CREATED);
    let role = json!({"name": "secret-readers", "rules": [{"resources": ["secrets"], "verbs": ["view"]},
                                                          {"resources": ["llms"], "verbs": ["view"]}]});
    assert_eq!(a.post("/api/v1/roles", role).await.status, StatusCode::CREATED);
    let hanks = json!({"name": "hank-reads", "role": "secret-readers", "users": ["hank"]});
    assert_eq!(a.post("/api/v1/rolebindings", hanks).await.status, StatusCode::CREATED);
    let (_, frank) = issue(&a, "frank", json!({})).await;
    let (_, gina) = issue(&a, "gina", json!({})).await;
    let (_, hank) = issue(&a, "hank", json!({})).await;
    let get =
        async |app: &TestApp, token: &str, path: &str| app.call_as(Some(token), Method::GET, path, None).await.status;
    for app in [&a, &b] {
        for token in [&frank, &gina] {
            within("the binding grants on both", async || get(app, token, "/api/v1/llms").await == StatusCode::OK)
                .await;
        }
        within("the role grants on both", async || get(app, &hank, "/api/v1/secrets").await == StatusCode::OK).await;
    }

    let older = older_transaction(&a).await;
    // gina dropped from the binding.
    let narrowed = json!({"name": "team-reads", "role": "viewer", "users": ["frank"]});
    let r = a.put("/api/v1/rolebindings/team-reads", narrowed).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "the read models cannot show it: {:?}", r.body);
    assert_eq!(get(&a, &gina, "/api/v1/llms").await, StatusCode::FORBIDDEN, "gina loses it at once where recorded");
    within("gina unbound on B", async || get(&b, &gina, "/api/v1/llms").await == StatusCode::FORBIDDEN).await;
    assert_eq!(get(&a, &frank, "/api/v1/llms").await, StatusCode::FORBIDDEN, "fail closed until shown");
    // The role loses its secrets rule.
    let role = json!({"name": "secret-readers", "rules": [{"resources": ["llms"], "verbs": ["view"]}]});
    let r = a.put("/api/v1/roles/secret-readers", role).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(
        get(&a, &hank, "/api/v1/secrets").await,
        StatusCode::FORBIDDEN,
        "the rule is gone at once where recorded"
    );
    within("the rule gone on B", async || get(&b, &hank, "/api/v1/secrets").await == StatusCode::FORBIDDEN).await;

    older.commit().await.unwrap();
    for app in [&a, &b] {
        within("the new binding shown", async || get(app, &frank, "/api/v1/llms").await == StatusCode::OK).await;
        within("the new role shown", async || get(app, &hank, "/api/v1/llms").await == StatusCode::OK).await;
        assert_eq!(get(app, &gina, "/api/v1/llms").await, StatusCode::FORBIDDEN, "gina stays unbound");
        assert_eq!(get(app, &hank, "/api/v1/secrets").await, StatusCode::FORBIDDEN, "the rule stays gone");
    }
}

/// PostgreSQL, with an older transaction open so that writes are answered 202: a key rotated
/// meanwhile is not sent again once the rotation is acknowledged. The Llms using it are not
/// served (503 `Changing`) on the replica that recorded it at once, and on another at its next
/// follow, until the read models show the new key; then only the new key is sent. (Before, the
/// key cache reloaded the old key from the lagging read models and kept sending it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_while_the_read_models_lag_is_not_sent_again() {
    let (url, seen) = crate::support::key_recording_provider().await;
    let (_db, a, b) = lagging_replicas().await;
    let secret = json!({"name": "k", "data": {"API_KEY": "sk-old-key-0001"}});
    assert_eq!(a.post("/api/v1/secrets", secret).await.status, StatusCode::CREATED);
    let llm = json!({"name": "local", "type": "openai", "model": "m", "tier": "fast", "url": url,
                     "apiKeyRef": {"name": "k", "key": "API_KEY"}});
    assert_eq!(a.post("/api/v1/llms", llm).await.status, StatusCode::CREATED);
    let chat = json!({"model": "local", "messages": [{"role": "user", "content": "hi"}]});
    let ask =
        async |app: &TestApp| app.call(Method::POST, "/openai/v1/chat/completions", Some(chat.clone()), None).await;
    for app in [&a, &b] {
        within("served with the old key on both", async || ask(app).await.status == StatusCode::OK).await;
    }

    let older = older_transaction(&a).await;
    let r = a.put("/api/v1/secrets/k", json!({"data": {"API_KEY": "sk-new-key-0002"}})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "the read models cannot show it: {:?}", r.body);
    let sent_before = seen.lock().unwrap().len();
    let r = ask(&a).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "not served at once where recorded: {:?}", r.body);
    assert_eq!(r.body["error"]["code"], json!("Changing"), "{:?}", r.body);
    assert_eq!(seen.lock().unwrap().len(), sent_before, "no call reached the provider");
    within("not served on B after its follow", async || ask(&b).await.status == StatusCode::SERVICE_UNAVAILABLE).await;
    let refused_everywhere = seen.lock().unwrap().len();

    older.commit().await.unwrap();
    for app in [&a, &b] {
        within("served with the new key on both", async || ask(app).await.status == StatusCode::OK).await;
    }
    let after: Vec<String> = seen.lock().unwrap()[refused_everywhere..].to_vec();
    assert!(!after.is_empty());
    assert!(after.iter().all(|k| k == "Bearer sk-new-key-0002"), "only the new key once shown: {after:?}");
}

/// A stand-in for a self-hosted provider (an LLM cannot run here): answers every chat
/// completion with `reply` and counts the calls it gets.
async fn provider(reply: &'static str) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                axum::Json(json!({"id": "c", "object": "chat.completion", "created": 0, "model": "m",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, calls)
}

/// PostgreSQL, with an older transaction open so that writes are answered 202: an Llm repointed
/// meanwhile is not served from its old URL (where the proxy would no longer send its
/// requests) on the replica that recorded the change, nor on another after its next follow:
/// 503 `Changing` with Retry-After. Once the read models show it, the new URL serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_changed_while_the_read_models_lag_is_not_served_from_its_old_url() {
    use std::sync::atomic::Ordering;
    let (old_url, old_calls) = provider("from the old url").await;
    let (new_url, new_calls) = provider("from the new url").await;
    let (_db, a, b) = lagging_replicas().await;
    let llm = |url: &str| json!({"name": "local", "type": "ollama", "model": "llama3", "tier": "fast", "url": url});
    assert_eq!(a.post("/api/v1/llms", llm(&old_url)).await.status, StatusCode::CREATED);
    let chat = json!({"model": "local", "messages": [{"role": "user", "content": "hi"}]});
    let ask =
        async |app: &TestApp| app.call(Method::POST, "/openai/v1/chat/completions", Some(chat.clone()), None).await;
    for app in [&a, &b] {
        within("served from the old url on both", async || {
            let r = ask(app).await;
            r.status == StatusCode::OK && r.body["choices"][0]["message"]["content"] == "from the old url"
        })
        .await;
    }
    let before = old_calls.load(Ordering::SeqCst);

    let older = older_transaction(&a).await;
    let r = a.put("/api/v1/llms/local", llm(&new_url)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "the read models cannot show it: {:?}", r.body);
    let r = ask(&a).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "Changing", "{:?}", r.body);
    assert_eq!(r.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    within("not served on B either", async || ask(&b).await.status == StatusCode::SERVICE_UNAVAILABLE).await;
    let models = a.get("/openai/v1/models").await;
    assert!(!models.body.to_string().contains("\"local\""), "nor listed: {:?}", models.body);
    assert_eq!(old_calls.load(Ordering::SeqCst), before, "the old url got nothing after the change");

    older.commit().await.unwrap();
    for app in [&a, &b] {
        within("served from the new url once shown", async || {
            let r = ask(app).await;
            r.status == StatusCode::OK && r.body["choices"][0]["message"]["content"] == "from the new url"
        })
        .await;
    }
    assert_eq!(old_calls.load(Ordering::SeqCst), before, "and nothing since");
    assert!(new_calls.load(Ordering::SeqCst) >= 2);
}

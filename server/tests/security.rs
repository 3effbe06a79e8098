//! Regression tests for the privilege escalations a black-box probe found (issue 12): directing
//! a credential needs the right to read it, tokens for others need their permissions, users
//! leave their bindings, hidden secrets look missing, NUL is refused alike on both stores, and
//! an unreachable database is 503, never 401.

use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::rbac::user_with;
use crate::support::{StoreKind, TestApp, llm};

testkit::on_both_stores!(
    no_non_admin_can_direct_a_credential_to_a_server_of_their_choice,
    an_admin_still_directs_credentials_and_editing_harmless_fields_needs_no_reveal,
    a_tokens_only_user_issues_tokens_for_themselves_and_for_nobody_else,
    the_last_admin_user_stays_and_a_deleted_user_leaves_every_binding,
    a_secret_the_caller_may_not_view_looks_missing_in_every_answer,
    a_name_scoped_user_migrates_and_sees_only_its_own_secrets,
    nul_characters_are_refused_alike_and_leave_nothing_behind,
    a_stopped_backend_turns_no_recorded_change_into_a_5xx_nor_fails_a_whole_reveal,
    an_https_openbao_backend_is_trusted_through_its_ca_and_server_name_only,
);

/// SQLite is a file in mcpd's own process: it has no outage to stage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_postgresql_is_503_with_retry_after_never_401() {
    let db = crate::support::TestDb::new(StoreKind::Postgres).await;
    let (url, proxy) = db.behind_proxy().await;
    let app = server::App::open(&url, std::time::Duration::from_secs(10), &crate::support::bootstrap()).await.unwrap();
    let t = TestApp { app, db };
    t.seed_llm().await;
    // A token issued but never used yet: nothing about it is held in memory.
    let fresh = t.post("/api/v1/tokens", json!({"user": "admin"})).await.body["token"].as_str().unwrap().to_owned();
    // The access cache follows every event so far (as its background task does every 200 ms;
    // done here so that a late tick cannot drop what the next request holds), then the admin's
    // token, user and permissions are held again.
    t.app.services.access.follow(&t.app.services.store).await.unwrap();
    assert_eq!(t.get("/api/v1/whoami").await.status, StatusCode::OK);
    proxy.set_down(true);
    let unavailable = |r: &crate::support::Reply, what: &str| {
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {:?}", r.body);
        assert_eq!(r.headers.get("retry-after").map(|v| v.to_str().unwrap()), Some("1"));
        assert_eq!(r.body["error"]["code"], json!("StoreUnavailable"));
    };
    for (method, path) in [(Method::GET, "/api/v1/llms"), (Method::DELETE, "/api/v1/llms/claude-fast")] {
        let r = t.call(method.clone(), path, None, None).await;
        unavailable(&r, &format!("{method} {path}"));
    }
    // A token that cannot be checked is 503, never 401.
    let r = t.call_as(Some(&fresh), Method::GET, "/api/v1/whoami", None).await;
    unavailable(&r, "whoami with a token never checked before");
    // One checked before is known without the database (authentication costs no query).
    let r = t.get("/api/v1/whoami").await;
    assert_eq!((r.status, &r.body["user"]), (StatusCode::OK, &json!("admin")), "{:?}", r.body);
    proxy.set_down(false);
    let r = t.get("/api/v1/llms/claude-fast").await;
    assert_eq!(r.status, StatusCode::OK, "the outage changed nothing: {:?}", r.body);
}

/// PostgreSQL: the connection breaks after the server committed a write and before mcpd heard
/// it had. The write was recorded, so it is answered as recorded, and once: mcpd asks the
/// database how the transaction ended (`pg_xact_status`) instead of answering 503 "nothing
/// changed", which a client would retry as a new change. Found by the history checker (issue
/// 25): a DELETE answered 503 whose secret was gone, a PUT answered 503 whose value was read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_answer_is_lost_is_answered_as_recorded() {
    let db = crate::support::TestDb::new(StoreKind::Postgres).await;
    let (url, proxy) = db.behind_proxy().await;
    // In clear, and without the statement cache every insert carries its SQL text: the trap
    // below can tell the write's transaction from any other.
    let url = format!("{url}?sslmode=disable&statement-cache-capacity=0");
    let app = server::App::open(&url, std::time::Duration::from_secs(10), &crate::support::bootstrap()).await.unwrap();
    let t = TestApp { app, db };
    let r = t.post("/api/v1/secrets", json!({"name": "s", "data": {"K": "v1"}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);

    proxy.cut_client_after(b"INSERT INTO events", b"COMMIT");
    let r = t.put("/api/v1/secrets/s", json!({"data": {"K": "v2"}})).await;
    assert_eq!(proxy.sprung(), 1, "the write's commit lost its answer");
    assert_eq!(r.status, StatusCode::OK, "answered as recorded: {:?}", r.body);
    assert_eq!(r.body["resourceVersion"], json!(2), "{:?}", r.body);
    let revealed = t.get("/api/v1/secrets/s?reveal=true").await;
    assert_eq!(revealed.body["data"]["K"], json!("v2"), "{:?}", revealed.body);

    proxy.cut_client_after(b"INSERT INTO events", b"COMMIT");
    let r = t.delete("/api/v1/secrets/s").await;
    assert_eq!(proxy.sprung(), 2);
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert_eq!(t.get("/api/v1/secrets/s").await.status, StatusCode::NOT_FOUND);
    let mut conn = sqlx::PgConnection::connect(&t.db.url).await.unwrap();
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = 's'").fetch_one(&mut conn).await.unwrap();
    assert_eq!(events, 3, "created, updated, deleted: each recorded once");

    // When the database stays out of reach, mcpd cannot find out: it says so (503
    // OutcomeUnknown), not "nothing changed", and the change turns out to be there.
    let r = t.post("/api/v1/secrets", json!({"name": "t", "data": {"K": "v1"}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    proxy.cut_client_and_go_down_after(b"INSERT INTO events", b"COMMIT");
    let r = t.put("/api/v1/secrets/t", json!({"data": {"K": "v2"}})).await;
    assert_eq!(proxy.sprung(), 3);
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], json!("OutcomeUnknown"), "{:?}", r.body);
    assert!(r.message().contains("may or may not have been recorded"), "{}", r.message());
    proxy.set_down(false);
    // Nothing waited for the read models to show it (when another transaction on the cluster
    // kept it from being applied inline, the projector applies it): polled.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let revealed = t.get("/api/v1/secrets/t?reveal=true").await;
        if revealed.body["data"]["K"] == json!("v2") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "it was recorded, and never showed: {:?}", revealed.body);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A listener standing in for an attacker's server: it records every byte anyone sends it and
/// answers each connection with an empty 200.
struct Attacker {
    url: String,
    received: Arc<Mutex<Vec<u8>>>,
}

impl Attacker {
    async fn start() -> Attacker {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    if let Ok(Ok(n)) =
                        tokio::time::timeout(std::time::Duration::from_secs(2), socket.read(&mut buf)).await
                    {
                        sink.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").await;
                });
            }
        });
        Attacker { url, received }
    }

    fn received(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().unwrap()).into_owned()
    }
}

fn openbao_backend(name: &str, url: &str, token_secret: &str, token_key: &str) -> Value {
    json!({"name": name, "type": "openbao",
           "config": {"url": url, "tokenSecretRef": {"name": token_secret, "key": token_key}}})
}

/// A custom role: the given rules.
pub(crate) async fn role(t: &TestApp, name: &str, rules: Value) {
    let r = t.post("/api/v1/roles", json!({"name": name, "rules": rules})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}

async fn no_non_admin_can_direct_a_credential_to_a_server_of_their_choice(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.seed_llm().await;
    let attacker = Attacker::start().await;
    // An admin's legitimate openbao backend, whose token is the one to steal.
    let bao = tokio::task::block_in_place(testkit::openbao::shared);
    let prefix = format!("t{}/", uuid::Uuid::new_v4().simple());
    let bao_token = bao.token_for_prefix(&prefix).await;
    assert_eq!(
        t.post("/api/v1/secrets", json!({"name": "bao-token", "data": {"token": bao_token}})).await.status,
        StatusCode::CREATED
    );
    let mut legit = openbao_backend("bao", &bao.addr, "bao-token", "token");
    legit["config"]["pathPrefix"] = json!(prefix);
    let r = t.post("/api/v1/secretbackends", legit.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);

    // Everyone who is not admin: the editor, a user who may manage backends and secrets but
    // reveal nothing, and one who may reveal a single secret only.
    role(
        &t,
        "backend-manager",
        json!([{"resources": ["secretbackends", "secrets", "llms"], "verbs": ["view", "create", "edit", "delete"]},
                                        {"operations": ["run:migrate-secrets"]}]),
    )
    .await;
    role(
        &t,
        "one-secret",
        json!([{"resources": ["secretbackends", "llms"], "verbs": ["view", "create", "edit"]},
                                   {"resources": ["secrets"], "verbs": ["view", "edit"], "names": ["mine"]},
                                   {"operations": ["reveal:secrets", "run:migrate-secrets"]}]),
    )
    .await;
    assert_eq!(
        t.post("/api/v1/secrets", json!({"name": "mine", "data": {"K": "my-own-value"}})).await.status,
        StatusCode::CREATED
    );
    let users = [
        ("ed", user_with(&t, "ed", Some("editor")).await),
        ("bm", user_with(&t, "bm", Some("backend-manager")).await),
        ("one", user_with(&t, "one", Some("one-secret")).await),
    ];
    // Whether a user allowed to migrate moved the secrets to the admin's own backend.
    let mut migrated = false;
    for (user, token) in &users {
        let call = |method: Method, path: String, body: Option<Value>| {
            let t = &t;
            async move { t.call_as(Some(token), method, &path, body).await }
        };
        // A backend of their own, with any secret as its token, at the attacker's URL.
        let evil = openbao_backend(&format!("evil-{user}"), &attacker.url, "anthropic", "API_KEY");
        let r = call(Method::POST, "/api/v1/secretbackends".into(), Some(evil.clone())).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{user}: {:?}", r.body);
        let r = call(Method::POST, "/api/v1/secretbackends?dryRun=true".into(), Some(evil)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{user} dry run: {:?}", r.body);
        assert_eq!(
            call(Method::GET, format!("/api/v1/secretbackends/evil-{user}/health"), None).await.status,
            StatusCode::NOT_FOUND
        );
        // The existing backend pointed elsewhere, or given another token.
        let mut moved = legit.clone();
        moved["config"]["url"] = json!(attacker.url);
        let r = call(Method::PUT, "/api/v1/secretbackends/bao".into(), Some(moved)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{user}: {:?}", r.body);
        let mut retokened = legit.clone();
        retokened["config"]["tokenSecretRef"] = json!({"name": "anthropic", "key": "API_KEY"});
        let r = call(Method::PUT, "/api/v1/secretbackends/bao".into(), Some(retokened)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{user}: {:?}", r.body);
        // The token it authenticates with swapped for one the attacker holds: every value
        // written there afterwards would be readable with it.
        let swapped = json!({"data": {"token": "attacker-held-token"}});
        let r = call(Method::PUT, "/api/v1/secrets/bao-token".into(), Some(swapped)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{user}: {:?}", r.body);
        // Everyone's new secrets routed to it.
        let mut default = legit.clone();
        default["isDefault"] = json!(true);
        let r = call(Method::PUT, "/api/v1/secretbackends/bao".into(), Some(default)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{user}: {:?}", r.body);
        // An Llm that would send someone's key to the attacker.
        let mut exfil = llm(&format!("exfil-{user}"), "anthropic");
        exfil["url"] = json!(attacker.url);
        let r = call(Method::POST, "/api/v1/llms".into(), Some(exfil)).await;
        // `one` may not even view `anthropic`: to it, the secret does not exist.
        let refused = if *user == "one" { StatusCode::CONFLICT } else { StatusCode::FORBIDDEN };
        assert_eq!(r.status, refused, "{user}: {:?}", r.body);
        let mut repointed = llm("claude-fast", "anthropic");
        repointed["url"] = json!(attacker.url);
        let r = call(Method::PUT, "/api/v1/llms/claude-fast".into(), Some(repointed)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{user}: {:?}", r.body);
        // Every secret migrated to the default backend's replacement stays where it is.
        let r =
            call(Method::POST, "/api/v1/secrets/migrate".into(), Some(json!({"from": "default", "to": "bao"}))).await;
        migrated |= r.status.is_success();
        if *user == "one" {
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "a name-scoped user may not migrate every secret: {:?}",
                r.body
            );
        }
    }
    // The user who may reveal `mine` may not send even that key anywhere: the Llm would carry
    // its callers' requests there too (a tier's callers, whoever they are), which only a user
    // who may read every secret may direct (issue 24, finding 3).
    let one = &users[2].1;
    let mut own = llm("own-endpoint", "mine");
    own["apiKeyRef"] = json!({"name": "mine", "key": "K"});
    own["url"] = json!(attacker.url);
    let r = t.call_as(Some(one), Method::POST, "/api/v1/llms", Some(own)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert!(r.message().contains("callers' requests"), "{}", r.message());

    let token_now = t.get("/api/v1/secrets/bao-token?reveal=true").await.body["data"]["token"].clone();
    assert_eq!(token_now, json!(bao_token), "the backend's token is the admin's still");
    let seen = attacker.received();
    assert!(seen.is_empty(), "the attacker's server received: {seen}");
    assert_eq!(t.get("/api/v1/secretbackends/bao").await.body["config"]["url"], json!(bao.addr));
    assert_eq!(t.get("/api/v1/secretbackends/default").await.body["isDefault"], json!(true));
    let runs = t.get("/api/v1/migrations").await.body["items"].as_array().unwrap().len();
    assert_eq!(runs > 0, migrated, "a run is recorded exactly when a migration was let through");
    let anthropic = t.get("/api/v1/secrets/anthropic?reveal=true").await.body;
    let expected = if migrated { "bao" } else { "default" };
    assert_eq!(anthropic["backend"], json!(expected), "moved only by a permitted migration, to the admin's backend");
    assert!(anthropic["data"]["API_KEY"].is_string(), "and its value reads back: {anthropic}");
}

async fn an_admin_still_directs_credentials_and_editing_harmless_fields_needs_no_reveal(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.seed_llm().await;
    let attacker = Attacker::start().await;
    // An admin may point an Llm anywhere; the key is theirs to read anyway.
    let mut custom = llm("custom", "anthropic");
    custom["url"] = json!(attacker.url);
    assert_eq!(t.post("/api/v1/llms", custom).await.status, StatusCode::CREATED);
    // The official endpoint needs no reveal: an editor points Llms at it with any visible key.
    let ed = user_with(&t, "ed", Some("editor")).await;
    let mut official = llm("official", "anthropic");
    official["url"] = json!("https://api.anthropic.com/v1");
    let r = t.call_as(Some(&ed), Method::POST, "/api/v1/llms", Some(official)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    // Changing what does not direct the key (the description, the tier) of an Llm pointing
    // elsewhere is fine without reveal; changing where it points is not.
    let mut described = llm("custom", "anthropic");
    described["url"] = json!(attacker.url);
    described["description"] = json!("kept where the admin put it");
    let r = t.call_as(Some(&ed), Method::PUT, "/api/v1/llms/custom", Some(described)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // The editor views backends but no longer manages them.
    assert_eq!(t.call_as(Some(&ed), Method::GET, "/api/v1/secretbackends", None).await.status, StatusCode::OK);
    let plain = json!({"name": "spare", "type": "plaintext"});
    assert_eq!(
        t.call_as(Some(&ed), Method::POST, "/api/v1/secretbackends", Some(plain.clone())).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(t.post("/api/v1/secretbackends", plain).await.status, StatusCode::CREATED);
    // A user who may edit backends but reveal nothing can still describe one.
    role(&t, "backend-describer", json!([{"resources": ["secretbackends"], "verbs": ["view", "edit"]}])).await;
    let bd = user_with(&t, "bd", Some("backend-describer")).await;
    let r = t
        .call_as(
            Some(&bd),
            Method::PUT,
            "/api/v1/secretbackends/spare",
            Some(json!({"type": "plaintext", "description": "spare room"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = t
        .call_as(
            Some(&bd),
            Method::PUT,
            "/api/v1/secretbackends/spare",
            Some(json!({"type": "plaintext", "isDefault": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert_eq!(
        t.put("/api/v1/secretbackends/spare", json!({"type": "plaintext", "isDefault": true})).await.status,
        StatusCode::OK
    );
    assert!(attacker.received().is_empty(), "nothing calls an Llm's URL yet");
}

async fn a_tokens_only_user_issues_tokens_for_themselves_and_for_nobody_else(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    role(&t, "token-issuer", json!([{"resources": ["tokens"], "verbs": ["create"]}])).await;
    let issuer = user_with(&t, "issuer", Some("token-issuer")).await;
    let _ = user_with(&t, "nobody", None).await;
    let _ = user_with(&t, "vi", Some("viewer")).await;
    let issue = |user: &'static str| {
        let (t, issuer) = (&t, issuer.clone());
        async move { t.call_as(Some(&issuer), Method::POST, "/api/v1/tokens", Some(json!({"user": user}))).await }
    };
    let r = issue("admin").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a token for admin: {:?}", r.body);
    assert!(r.body.get("token").is_none());
    assert_eq!(issue("vi").await.status, StatusCode::FORBIDDEN, "viewer holds what the issuer does not");
    let own = issue("issuer").await;
    assert_eq!(own.status, StatusCode::CREATED, "{:?}", own.body);
    let own = own.body["token"].as_str().unwrap().to_owned();
    assert_eq!(t.call_as(Some(&own), Method::GET, "/api/v1/whoami", None).await.body["user"], json!("issuer"));
    // A user holding nothing today may be granted anything tomorrow: a token for another user
    // is impersonation, whatever they hold (issue 24, finding 1).
    assert_eq!(issue("nobody").await.status, StatusCode::FORBIDDEN, "a user holding nothing (yet)");
    // Admin, holding everything, issues for anyone.
    assert_eq!(t.post("/api/v1/tokens", json!({"user": "vi"})).await.status, StatusCode::CREATED);
    let far = t.post("/api/v1/tokens", json!({"user": "vi", "expires": "9999-01-01T00:00:00Z"})).await;
    assert_eq!((far.status, far.fields()), (StatusCode::BAD_REQUEST, vec!["expires".to_owned()]));
}

async fn the_last_admin_user_stays_and_a_deleted_user_leaves_every_binding(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let _eve = user_with(&t, "eve", Some("admin")).await;
    let _ = user_with(&t, "vi", Some("viewer")).await;
    let r = t.post("/api/v1/rolebindings", json!({"name": "team", "role": "viewer", "users": ["eve", "vi"]})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    // eve is not the last admin: she can go, and takes her bindings with her.
    assert_eq!(t.delete("/api/v1/users/eve").await.status, StatusCode::NO_CONTENT);
    assert_eq!(t.get("/api/v1/rolebindings/eve-binding").await.status, StatusCode::NOT_FOUND);
    assert_eq!(t.get("/api/v1/rolebindings/team").await.body["users"], json!(["vi"]));
    let audit = t.get("/api/v1/audit?kind=rolebinding").await;
    let types: Vec<_> = audit.body["items"].as_array().unwrap().iter().map(|e| e["eventType"].clone()).collect();
    // Taking eve out of `team` narrows it.
    assert!(types.contains(&json!("RoleBindingDeleted")) && types.contains(&json!("RoleBindingNarrowed")), "{types:?}");
    // A new eve starts with nothing.
    let eve = user_with(&t, "eve", None).await;
    assert_eq!(t.call_as(Some(&eve), Method::GET, "/api/v1/llms", None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(t.call_as(Some(&eve), Method::GET, "/api/v1/users", None).await.status, StatusCode::FORBIDDEN);
    // admin is now the last user holding admin: not deleted, by anyone.
    let r = t.delete("/api/v1/users/admin").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(r.message().contains("admin role"), "{}", r.message());
    assert_eq!(t.get("/api/v1/users/admin").await.status, StatusCode::OK);
    assert_eq!(t.get("/api/v1/rolebindings/admin").await.status, StatusCode::OK);
}

async fn a_secret_the_caller_may_not_view_looks_missing_in_every_answer(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.seed_llm().await;
    assert_eq!(
        t.post("/api/v1/secrets", json!({"name": "team-a-key", "data": {"API_KEY": "a"}})).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        t.post("/api/v1/secrets", json!({"name": "team-b-key", "data": {"API_KEY": "b"}})).await.status,
        StatusCode::CREATED
    );
    let mut team_a = llm("team-a-fast", "team-a-key");
    assert_eq!(t.post("/api/v1/llms", team_a.clone()).await.status, StatusCode::CREATED);
    role(
        &t,
        "team-a",
        json!([{"resources": ["llms"], "verbs": ["view", "edit"], "names": ["team-a-fast"]},
                              {"resources": ["secrets"], "verbs": ["view"], "names": ["team-a-key"]}]),
    )
    .await;
    let a = user_with(&t, "alice", Some("team-a")).await;
    let put = |body: Value, dry: bool| {
        let (t, a) = (&t, a.clone());
        let path = if dry { "/api/v1/llms/team-a-fast?dryRun=true" } else { "/api/v1/llms/team-a-fast" };
        async move { t.call_as(Some(&a), Method::PUT, path, Some(body)).await }
    };
    // Pointing at team B's key, real or not, existing key or not: one and the same answer.
    let mut answers = Vec::new();
    for (secret, key, dry) in [
        ("team-b-key", "API_KEY", false),
        ("team-b-key", "NOPE", true),
        ("no-such", "API_KEY", true),
        ("team-b-key", "API_KEY", true),
    ] {
        team_a["apiKeyRef"] = json!({"name": secret, "key": key});
        let r = put(team_a.clone(), dry).await;
        answers.push((r.status, r.fields(), r.message().replace(secret, "S")));
    }
    assert!(answers.iter().all(|a| a == &answers[2]), "{answers:#?}");
    assert_eq!(answers[0].0, StatusCode::CONFLICT);
    // A key it may view: fine, and its own description edits keep working.
    team_a["apiKeyRef"] = json!({"name": "team-a-key", "key": "API_KEY"});
    team_a["description"] = json!("ours");
    assert_eq!(put(team_a.clone(), false).await.status, StatusCode::OK);
    assert_eq!(t.get("/api/v1/llms/team-a-fast").await.body["apiKeyRef"]["name"], json!("team-a-key"));
}

async fn a_name_scoped_user_migrates_and_sees_only_its_own_secrets(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.seed_llm().await;
    assert_eq!(
        t.post("/api/v1/secretbackends", json!({"name": "spare", "type": "plaintext"})).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        t.post("/api/v1/secrets", json!({"name": "mine", "data": {"K": "v"}})).await.status,
        StatusCode::CREATED
    );
    // The admin moves everything and back: the run names `anthropic` and `mine`.
    let r = t
        .post("/api/v1/secrets/migrate", json!({"from": "default", "to": "spare", "names": ["anthropic", "mine"]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    role(
        &t,
        "mine-only",
        json!([{"resources": ["secrets"], "verbs": ["view", "edit"], "names": ["mine"]},
                                 {"resources": ["migrations"], "verbs": ["view"]},
                                 {"operations": ["run:migrate-secrets"]}]),
    )
    .await;
    let m = user_with(&t, "m", Some("mine-only")).await;
    let runs = t.call_as(Some(&m), Method::GET, "/api/v1/migrations", None).await;
    let run = &runs.body["items"][0];
    assert_eq!(run["names"], json!(["mine"]), "{run:?}");
    let id = run["name"].as_str().unwrap();
    let detail = t.call_as(Some(&m), Method::GET, &format!("/api/v1/migrations/{id}"), None).await;
    let text = detail.body.to_string();
    assert!(text.contains("mine") && !text.contains("anthropic"), "{text}");
    // It migrates what it may edit, and nothing it may not.
    let back = |names: Value| {
        let (t, m) = (&t, m.clone());
        async move {
            t.call_as(
                Some(&m),
                Method::POST,
                "/api/v1/secrets/migrate",
                Some(json!({"from": "spare", "to": "default", "names": names})),
            )
            .await
        }
    };
    assert_eq!(back(json!(["mine", "anthropic"])).await.status, StatusCode::FORBIDDEN);
    let r = t
        .call_as(Some(&m), Method::POST, "/api/v1/secrets/migrate", Some(json!({"from": "spare", "to": "default"})))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "every secret is more than it may edit");
    assert_eq!(t.get("/api/v1/secrets/anthropic").await.body["backend"], json!("spare"));
    let r = back(json!(["mine"])).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(t.get("/api/v1/secrets/mine").await.body["backend"], json!("default"));
}

async fn nul_characters_are_refused_alike_and_leave_nothing_behind(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.seed_llm().await;
    let mut bad = llm("nul", "anthropic");
    bad["model"] = json!("a\u{0}b");
    let r = t.post("/api/v1/llms", bad).await;
    assert_eq!((r.status, r.fields()), (StatusCode::BAD_REQUEST, vec!["model".to_owned()]), "{:?}", r.body);
    let r = t.post("/api/v1/secrets", json!({"name": "nul-secret", "data": {"K": "x\u{0}y", "OK": "fine"}})).await;
    assert_eq!((r.status, r.fields()), (StatusCode::BAD_REQUEST, vec!["data.K".to_owned()]), "{:?}", r.body);
    for path in ["/api/v1/llms/%00", "/api/v1/audit?name=%00", "/api/v1/secrets/a%00b/history"] {
        let r = t.get(path).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {:?}", r.body);
    }
    assert_eq!(t.get("/api/v1/secrets/nul-secret").await.status, StatusCode::NOT_FOUND);
    // Nothing of the refused secret reached the value table.
    let values: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM plaintext_secret_values")
        .fetch_one(&t.app.services.store.db.pool)
        .await
        .unwrap();
    assert_eq!(values, 1, "only the seeded secret's values");
}

async fn a_stopped_backend_turns_no_recorded_change_into_a_5xx_nor_fails_a_whole_reveal(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let mut bao = tokio::task::block_in_place(testkit::openbao::OpenBao::start);
    let token = bao.token_for_prefix("mcpd/").await;
    assert_eq!(
        t.post("/api/v1/secrets", json!({"name": "bao-token", "data": {"token": token}})).await.status,
        StatusCode::CREATED
    );
    let r = t.post("/api/v1/secretbackends", openbao_backend("bao", &bao.addr, "bao-token", "token")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = t.post("/api/v1/secrets", json!({"name": "doomed", "backend": "bao", "data": {"K": "v"}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = t.post("/api/v1/secrets", json!({"name": "kept", "backend": "bao", "data": {"K": "v"}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    tokio::task::block_in_place(|| bao.stop());
    // The delete is recorded first; removing the values from the stopped server then fails.
    let r = t.delete("/api/v1/secrets/doomed").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert!(r.message().contains("recorded"), "{}", r.message());
    assert_eq!(t.get("/api/v1/secrets/doomed").await.status, StatusCode::NOT_FOUND);
    // A revealing list shows every secret it can read, and says which it could not.
    let r = t.get("/api/v1/secrets?reveal=true").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let items = r.body["items"].as_array().unwrap();
    let item = |name: &str| items.iter().find(|i| i["name"] == name).unwrap().clone();
    assert_eq!(item("bao-token")["data"]["token"], json!(token));
    assert!(item("kept").get("data").is_none(), "{:?}", item("kept"));
    assert!(item("kept")["revealError"].as_str().unwrap().contains("unreachable"), "{:?}", item("kept"));
    assert_eq!(t.get("/api/v1/secrets/kept?reveal=true").await.status, StatusCode::SERVICE_UNAVAILABLE);
    // A write refused before anything was recorded keeps its 503.
    let r = t.post("/api/v1/secrets", json!({"name": "never", "backend": "bao", "data": {"K": "v"}})).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
}

async fn an_https_openbao_backend_is_trusted_through_its_ca_and_server_name_only(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let bao = tokio::task::block_in_place(testkit::openbao::OpenBao::start_tls);
    assert!(bao.addr.starts_with("https://127.0.0.1:"), "{}", bao.addr);
    let ca = bao.ca_pem.clone().unwrap();
    let token = bao.token_for_prefix("mcpd/").await;
    assert_eq!(
        t.post("/api/v1/secrets", json!({"name": "bao-token", "data": {"token": token}})).await.status,
        StatusCode::CREATED
    );
    // Without its CA the server's certificate is not trusted: a clear failure, nothing written.
    let untrusted = openbao_backend("bao", &bao.addr, "bao-token", "token");
    assert_eq!(t.post("/api/v1/secretbackends", untrusted.clone()).await.status, StatusCode::CREATED);
    let health = t.get("/api/v1/secretbackends/bao/health").await;
    assert_eq!(health.body["status"], json!("unreachable"), "{:?}", health.body);
    assert!(health.body["message"].as_str().unwrap().contains("certificate"), "{:?}", health.body);
    let r = t.post("/api/v1/secrets", json!({"name": "k", "backend": "bao", "data": {"K": "over-tls"}})).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert!(r.message().contains("certificate"), "{}", r.message());
    assert_eq!(t.get("/api/v1/secrets/k").await.status, StatusCode::NOT_FOUND);
    // With it, everything works, and the value is in OpenBao.
    let mut trusted = untrusted.clone();
    trusted["config"]["caCert"] = json!(ca);
    assert_eq!(t.put("/api/v1/secretbackends/bao", trusted.clone()).await.status, StatusCode::OK);
    assert_eq!(t.get("/api/v1/secretbackends/bao/health").await.body["status"], json!("ok"));
    let r = t.post("/api/v1/secrets", json!({"name": "k", "backend": "bao", "data": {"K": "over-tls"}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(bao.read("mcpd/k").await.unwrap()["K"], json!("over-tls"));
    assert_eq!(t.get("/api/v1/secrets/k?reveal=true").await.body["data"]["K"], json!("over-tls"));
    // The name checked can differ from the address dialled; a name the certificate lacks fails.
    let mut named = trusted.clone();
    named["config"]["tlsServerName"] = json!("localhost");
    assert_eq!(t.put("/api/v1/secretbackends/bao", named.clone()).await.status, StatusCode::OK);
    assert_eq!(t.get("/api/v1/secretbackends/bao/health").await.body["status"], json!("ok"));
    named["config"]["tlsServerName"] = json!("bao.elsewhere.example");
    assert_eq!(t.put("/api/v1/secretbackends/bao", named).await.status, StatusCode::OK);
    let health = t.get("/api/v1/secretbackends/bao/health").await;
    assert_eq!(health.body["status"], json!("unreachable"), "{:?}", health.body);
    // A CA that is not PEM is refused when written.
    let mut broken = trusted;
    broken["config"]["caCert"] = json!("-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n");
    let r = t.put("/api/v1/secretbackends/bao", broken).await;
    assert_eq!(
        (r.status, r.fields()),
        (StatusCode::BAD_REQUEST, vec!["spec.config.caCert".to_owned()]),
        "{:?}",
        r.body
    );
}

//! Serving in production: Prometheus metrics, per-token rate limits, the request timeout and
//! idempotent retries, against the real mcpd binary.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::{Connection, Executor};

use crate::ctl::Ctl;
use crate::support::{StoreKind, TestServer};

/// One sample of a Prometheus exposition: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the text exposition format (what Prometheus itself reads).
fn samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), BTreeMap::new()),
            Some((name, rest)) => {
                let mut labels = BTreeMap::new();
                for pair in rest.trim_end_matches('}').split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
                    labels.insert(k.to_owned(), v.trim_end_matches('"').to_owned());
                }
                (name.to_owned(), labels)
            }
        };
        out.push((name, labels, value));
    }
    out
}

/// The value of the one sample of `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, _, v)| *v)
        .collect();
    assert!(matching.len() <= 1, "{name} {labels:?} matches {} samples", matching.len());
    matching.first().copied()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A new user bound to `role`, and a token of theirs.
async fn user_token(server: &TestServer, user: &str, role: &str) -> String {
    assert_eq!(server.post("/api/v1/users", json!({"name": user})).await.0, 201);
    let binding = json!({"name": format!("{user}-binding"), "role": role, "users": [user]});
    assert_eq!(server.post("/api/v1/rolebindings", binding).await.0, 201);
    let (status, body) = server.post("/api/v1/tokens", json!({"user": user})).await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn scrape(server: &TestServer, token: Option<&str>) -> (u16, String) {
    let mut request = server.http.get(server.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_scripted_traffic_and_only_view_metrics_may_scrape() {
    let metrics_port = free_port();
    let listen = format!("127.0.0.1:{metrics_port}");
    let server = TestServer::start_with_env(StoreKind::Sqlite, &[("MCPD_METRICS_LISTEN", &listen)]).await;
    let monitoring = user_token(&server, "prometheus", "monitoring").await;
    let viewer = user_token(&server, "vic", "viewer").await;

    // Scripted traffic: three secrets, an Llm, two reads, one miss.
    for name in ["m1", "m2", "m3"] {
        assert_eq!(server.post("/api/v1/secrets", json!({"name": name, "data": {"K": "v"}})).await.0, 201);
    }
    let llm = json!({"name": "metered", "type": "openai", "model": "gpt-5-mini", "tier": "fast",
                     "apiKeyRef": {"name": "m1", "key": "K"}});
    assert_eq!(server.post("/api/v1/llms", llm).await.0, 201);
    assert_eq!(server.get("/api/v1/secrets/m1").await.0, 200);
    assert_eq!(server.get("/api/v1/secrets/m2").await.0, 200);
    assert_eq!(server.get("/api/v1/secrets/nope").await.0, 404);
    // Unknown paths and methods share one series each: a client cannot make new ones at will.
    let brew = reqwest::Method::from_bytes(b"BREW").unwrap();
    let odd = server.http.request(brew, server.url("/coffee/pot-1")).send().await.unwrap();
    assert_eq!(odd.status(), 401, "no token: refused before routing");

    // Who may scrape: admin and monitoring; not a viewer, not without a token.
    assert_eq!(scrape(&server, None).await.0, 401);
    assert_eq!(scrape(&server, Some(&viewer)).await.0, 403);
    assert_eq!(scrape(&server, Some(server.admin_token())).await.0, 200);
    let (status, text) = scrape(&server, Some(&monitoring)).await;
    assert_eq!(status, 200, "{text}");
    // The monitoring role holds nothing else.
    let denied = server.http.get(server.url("/api/v1/secrets")).bearer_auth(&monitoring).send().await.unwrap();
    assert_eq!(denied.status(), 403);

    let s = samples(&text);
    let requests = |method: &str, route: &str, status: &str| {
        value(&s, "mcpd_http_requests_total", &[("method", method), ("route", route), ("status", status)])
    };
    assert_eq!(requests("POST", "/api/v1/secrets", "201"), Some(3.0), "{text}");
    assert_eq!(requests("POST", "/api/v1/llms", "201"), Some(1.0));
    assert_eq!(requests("GET", "/api/v1/secrets/{name}", "200"), Some(2.0));
    assert_eq!(requests("GET", "/api/v1/secrets/{name}", "404"), Some(1.0));
    assert_eq!(requests("GET", "/metrics", "401"), Some(1.0));
    assert_eq!(requests("GET", "/metrics", "403"), Some(1.0));
    assert_eq!(requests("other", "unmatched", "401"), Some(1.0), "{text}");
    assert!(!text.contains("BREW") && !text.contains("coffee"), "{text}");
    let latency =
        value(&s, "mcpd_http_request_duration_seconds_count", &[("method", "POST"), ("route", "/api/v1/secrets")]);
    assert_eq!(latency, Some(3.0));
    assert!(s.iter().any(|(n, l, _)| n == "mcpd_http_request_duration_seconds_bucket" && l.contains_key("le")));
    let events = |kind: &str, event: &str| value(&s, "mcpd_events_appended_total", &[("kind", kind), ("type", event)]);
    assert_eq!(events("secret", "SecretCreated"), Some(3.0), "{text}");
    assert_eq!(events("llm", "LlmCreated"), Some(1.0));
    let puts =
        value(&s, "mcpd_backend_calls_total", &[("backend", "default"), ("operation", "put"), ("outcome", "ok")]);
    assert_eq!(puts, Some(3.0), "{text}");
    for model in ["llms", "secrets", "secret_backends", "migrations", "users", "tokens", "rbac"] {
        assert_eq!(value(&s, "mcpd_projection_lag_events", &[("read_model", model)]), Some(0.0), "{model}");
        assert_eq!(value(&s, "mcpd_projection_stopped", &[("read_model", model)]), Some(0.0), "{model}");
        assert!(value(&s, "mcpd_projection_lag_seconds", &[("read_model", model)]).is_some());
    }
    assert!(value(&s, "mcpd_db_pool_connections", &[("state", "in_use")]).is_some());
    assert!(value(&s, "mcpd_db_pool_max_connections", &[]).unwrap() >= 1.0);
    assert_eq!(value(&s, "mcpd_migrations", &[("status", "running")]), Some(0.0));
    // No secret value or token in the exposition.
    assert!(!text.contains(server.admin_token()) && !text.contains(&monitoring));

    // The separate listener: /metrics without a token, nothing else.
    let open = reqwest::get(format!("http://{listen}/metrics")).await.unwrap();
    assert_eq!(open.status(), 200);
    let open = samples(&open.text().await.unwrap());
    assert_eq!(value(&open, "mcpd_events_appended_total", &[("kind", "secret"), ("type", "SecretCreated")]), Some(3.0));
    let other = reqwest::get(format!("http://{listen}/api/v1/secrets")).await.unwrap();
    assert_eq!(other.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_past_its_rate_gets_429_with_retry_after_and_others_are_unaffected() {
    let env = [("MCPD_RATE_LIMIT", "1"), ("MCPD_RATE_BURST", "5")];
    let server = TestServer::start_with_env(StoreKind::Sqlite, &env).await;
    let other = user_token(&server, "olga", "viewer").await;
    // A burst of 20 at once: at most the burst of 5, plus one a second since, gets through.
    let started = Instant::now();
    let burst: Vec<_> =
        (0..20).map(|_| server.http.get(server.url("/api/v1/llms")).bearer_auth(server.admin_token()).send()).collect();
    let (mut passed, mut limited, mut retry_after) = (0u64, 0u64, None);
    for r in futures_join(burst).await {
        let r = r.unwrap();
        match r.status().as_u16() {
            200 => passed += 1,
            429 => {
                limited += 1;
                retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["error"]["code"], "RateLimited", "{body}");
            }
            other => panic!("{other}"),
        }
    }
    let allowed = 5 + started.elapsed().as_secs() + 1;
    assert!(passed <= allowed, "{passed} got through, at most {allowed} may");
    assert!(limited >= 20u64.saturating_sub(allowed) && limited > 0, "{limited} were limited");
    let retry_after: u64 = retry_after.expect("429 carries Retry-After").parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // Another token has a rate of its own.
    let r = server.http.get(server.url("/api/v1/llms")).bearer_auth(&other).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // mcpctl, on a token held to its rate, gets through (it waits as Retry-After says: proven
    // against a stub, with every attempt counted, in cli_client.rs).
    let mut ctl = Ctl::new(&server);
    ctl.token = Some(server.admin_token().into());
    let listed = ctl.command(&["get", "llms"]).env("MCPCTL_RETRY_TIMEOUT", "20s").output().unwrap();
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_timeout_gets_503_and_records_nothing() {
    let env = [("MCPD_REQUEST_TIMEOUT_SECS", "1")];
    let server = TestServer::start_holding_the_cluster(StoreKind::Postgres, &env).await;
    assert_eq!(server.post("/api/v1/secrets", json!({"name": "k", "data": {"K": "v"}})).await.0, 201);
    // Another session holds the event log: appending the Llm's event waits for it (before its
    // commit, so the timeout still answers).
    let mut holder = sqlx::PgConnection::connect(&server.store_url()).await.unwrap();
    holder.execute("BEGIN").await.unwrap();
    holder.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let llm = json!({"name": "slow", "type": "openai", "model": "gpt-5-mini", "tier": "fast",
                     "apiKeyRef": {"name": "k", "key": "K"}});
    // Answered while the lock is still held (it is released only below): the timeout answered.
    let r = server.http.post(server.url("/api/v1/llms")).bearer_auth(server.admin_token()).json(&llm).send().await;
    let r = r.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers().get("retry-after").unwrap(), "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Overloaded", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("before it changed anything"), "{body}");
    // Held no longer than needed: a transaction open anywhere on the cluster holds back every
    // mcpd's projector there (other tests' too).
    holder.execute("ROLLBACK").await.unwrap();
    // Nothing was recorded, and the same request now goes through.
    let mut db = sqlx::PgConnection::connect(&server.store_url()).await.unwrap();
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = 'llm'")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(events, 0);
    assert_eq!(server.get("/api/v1/llms/slow").await.0, 404);
    assert_eq!(server.post("/api/v1/llms", llm).await.0, 201);
}

async fn post_with_key(server: &TestServer, key: &str, path: &str, body: &Value) -> (u16, Option<String>, Value) {
    let r = server
        .http
        .post(server.url(path))
        .bearer_auth(server.admin_token())
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let replayed = r.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap().to_owned());
    (status, replayed, r.json().await.unwrap_or(Value::Null))
}

async fn events_of(server: &TestServer, kind: &str, name: &str) -> i64 {
    let mut db = <sqlx::AnyConnection as Connection>::connect(&server.store_url()).await.unwrap();
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events WHERE aggregate_type = $1 AND aggregate_id = $2")
        .bind(kind)
        .bind(name)
        .fetch_one(&mut db)
        .await
        .unwrap()
}

testkit::on_both_stores!(
    an_idempotent_retry_returns_the_first_answer_and_records_once,
    sigterm_during_a_burst_of_writes_keeps_every_acknowledged_write,
);

async fn an_idempotent_retry_returns_the_first_answer_and_records_once(kind: StoreKind) {
    sqlx::any::install_default_drivers();
    let mut server = TestServer::start(kind).await;
    let body = json!({"name": "idem", "data": {"K": "v1"}});
    let (status, replayed, first) = post_with_key(&server, "key-1", "/api/v1/secrets", &body).await;
    assert_eq!((status, replayed), (201, None), "{first}");
    let (status, replayed, again) = post_with_key(&server, "key-1", "/api/v1/secrets", &body).await;
    assert_eq!((status, replayed.as_deref()), (201, Some("true")), "{again}");
    assert_eq!(again, first, "the first answer, as it was");
    assert_eq!(events_of(&server, "secret", "idem").await, 1);

    // The same key with another body: 422, nothing recorded.
    let other = json!({"name": "idem-2", "data": {"K": "v2"}});
    let (status, _, refused) = post_with_key(&server, "key-1", "/api/v1/secrets", &other).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "IdempotencyKeyReused");
    assert_eq!(server.get("/api/v1/secrets/idem-2").await.0, 404);
    // Without a key, the same body is a second request (a clash here).
    let (status, _) = server.post("/api/v1/secrets", body.clone()).await;
    assert_eq!(status, 409);

    // A PUT and a DELETE replay too.
    let put = |key: &'static str, body: Value| {
        let request = server.http.put(server.url("/api/v1/secrets/idem")).bearer_auth(server.admin_token());
        request.header("Idempotency-Key", key).json(&body).send()
    };
    let update = json!({"name": "idem", "data": {"K": "v2"}});
    assert_eq!(put("key-2", update.clone()).await.unwrap().status(), 200);
    let replay = put("key-2", update).await.unwrap();
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(events_of(&server, "secret", "idem").await, 2);

    // Across a restart: the key is in the database, not in memory.
    server.terminate();
    server.spawn().await;
    let (status, replayed, after_restart) = post_with_key(&server, "key-1", "/api/v1/secrets", &body).await;
    assert_eq!((status, replayed.as_deref()), (201, Some("true")));
    assert_eq!(after_restart, first);
    assert_eq!(events_of(&server, "secret", "idem").await, 2);

    // Keys are per user: another user's same key is theirs.
    let token = user_token(&server, "ursula", "editor").await;
    let r = server
        .http
        .post(server.url("/api/v1/secrets"))
        .bearer_auth(&token)
        .header("Idempotency-Key", "key-1")
        .json(&json!({"name": "ursulas", "data": {"K": "u"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // A token's answer is never stored: its retry says the token was issued.
    let (status, _, issued) = post_with_key(&server, "key-t", "/api/v1/tokens", &json!({"user": "ursula"})).await;
    assert_eq!(status, 201, "{issued}");
    let (status, _, again) = post_with_key(&server, "key-t", "/api/v1/tokens", &json!({"user": "ursula"})).await;
    assert_eq!(status, 409, "{again}");
    assert!(again["error"]["message"].as_str().unwrap().contains("shown only once"), "{again}");
    let secret_token = issued["token"].as_str().unwrap();
    let mut db = <sqlx::AnyConnection as Connection>::connect(&server.store_url()).await.unwrap();
    let stored: Vec<Option<String>> =
        sqlx::query_scalar("SELECT body FROM idempotency_keys").fetch_all(&mut db).await.unwrap();
    assert!(stored.iter().flatten().all(|b| !b.contains(secret_token)), "a token is never stored");

    // A malformed key is refused before anything happens.
    let (status, _, bad) = post_with_key(&server, "", "/api/v1/secrets", &json!({"name": "x", "data": {}})).await;
    assert_eq!(status, 400, "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_kill_9_between_commit_and_answer_gets_the_change_and_one_event() {
    sqlx::any::install_default_drivers();
    let mut server = TestServer::start_holding_the_cluster(StoreKind::Postgres, &[]).await;
    assert_eq!(server.post("/api/v1/secrets", json!({"name": "k", "data": {"K": "v"}})).await.0, 201);
    // A fault on demand: storing an answer stalls, after the change is committed.
    let mut db = sqlx::PgConnection::connect(&server.store_url()).await.unwrap();
    db.execute(
        "CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(60); RETURN NEW; END $$; \
         CREATE TRIGGER stall BEFORE UPDATE ON idempotency_keys FOR EACH ROW EXECUTE FUNCTION stall();",
    )
    .await
    .unwrap();
    let llm = json!({"name": "once", "type": "openai", "model": "gpt-5-mini", "tier": "fast",
                     "apiKeyRef": {"name": "k", "key": "K"}});
    let (http, url, token) = (server.http.clone(), server.url("/api/v1/llms"), server.admin_token().to_owned());
    let body = llm.clone();
    let pending = tokio::spawn(async move {
        http.post(url).bearer_auth(token).header("Idempotency-Key", "once-1").json(&body).send().await
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while events_of(&server, "llm", "once").await == 0 {
        assert!(Instant::now() < deadline, "the write was not committed:\n{}", server.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The answer is held up after the commit: its statement sleeps in the trigger (seen in
    // pg_stat_activity), so the request cannot have been answered.
    let stalled = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep'";
    while sqlx::query_scalar::<_, i64>(stalled).fetch_one(&mut db).await.unwrap() == 0 {
        assert!(Instant::now() < deadline, "the answer's statement did not stall:\n{}", server.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!pending.is_finished(), "the answer is held up after the commit");
    server.kill9();
    // The stalled statement's backend outlives mcpd: end it, as PostgreSQL would once it
    // noticed the client gone. (A transaction held open anywhere on the cluster holds back
    // every mcpd's projector there: docs/operations.md.)
    db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        .await
        .unwrap();
    assert!(pending.await.unwrap().is_err(), "the client never got an answer");
    db.execute("DROP TRIGGER stall ON idempotency_keys").await.unwrap();

    server.spawn().await;
    let (status, replayed, answer) = post_with_key(&server, "once-1", "/api/v1/llms", &llm).await;
    assert_eq!((status, replayed.as_deref()), (201, Some("true")), "{answer}");
    assert_eq!(answer["name"], "once");
    assert_eq!(answer["resourceVersion"], 1);
    assert_eq!(events_of(&server, "llm", "once").await, 1, "exactly one event");

    // Another replica finds the same key.
    let replica = server.replica().await;
    let (status, replayed, _) = post_with_key(&replica, "once-1", "/api/v1/llms", &llm).await;
    assert_eq!((status, replayed.as_deref()), (201, Some("true")));
    assert_eq!(events_of(&server, "llm", "once").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_one_key_record_once() {
    sqlx::any::install_default_drivers();
    let server = TestServer::start(StoreKind::Postgres).await;
    let body = json!({"name": "raced", "data": {"K": "v"}});
    let mut answers = Vec::new();
    let sends: Vec<_> = (0..8)
        .map(|_| {
            let request = server.http.post(server.url("/api/v1/secrets")).bearer_auth(server.admin_token());
            request.header("Idempotency-Key", "race").json(&body).send()
        })
        .collect();
    for r in futures_join(sends).await {
        let r = r.unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        if status == 201 {
            assert_eq!(body["name"], "raced", "a replay is the created secret: {body}");
        }
        answers.push(status);
    }
    // A retry that meets the first request still in flight waits for the read models as the
    // first one does: a create is answered 201 (the race once answered 204 here).
    assert!(answers.iter().all(|s| *s == 201 || *s == 409), "{answers:?}");
    assert!(answers.contains(&201), "{answers:?}");
    assert_eq!(events_of(&server, "secret", "raced").await, 1, "{answers:?}");
}

async fn futures_join<F: std::future::Future + Send + 'static>(futures: Vec<F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

/// One client writing secrets until mcpd goes away: the names it was told were created, and
/// any answer that began but did not arrive whole.
async fn burst_writer(
    base: String,
    token: String,
    id: usize,
    progress: Arc<AtomicUsize>,
) -> (Vec<String>, Vec<String>) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let (mut acknowledged, mut cut) = (Vec::new(), Vec::new());
    for i in 0.. {
        let name = format!("w{id}-{i}");
        let sent = http
            .post(format!("{base}/api/v1/secrets"))
            .bearer_auth(&token)
            .json(&json!({"name": name, "data": {"K": "v"}}))
            .send()
            .await;
        let Ok(response) = sent else { break };
        let status = response.status().as_u16();
        match response.json::<Value>().await {
            Ok(body) if status == 201 && body["name"] == name.as_str() => {
                acknowledged.push(name);
                progress.fetch_add(1, Ordering::SeqCst);
            }
            Ok(body) => panic!("{name}: {status} {body}"),
            Err(e) => {
                cut.push(format!("{name}: {status}, body cut off: {e}"));
                break;
            }
        }
    }
    (acknowledged, cut)
}

async fn sigterm_during_a_burst_of_writes_keeps_every_acknowledged_write(kind: StoreKind) {
    let mut server = TestServer::start(kind).await;
    let progress = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..6)
        .map(|id| tokio::spawn(burst_writer(server.url(""), server.admin_token().to_owned(), id, progress.clone())))
        .collect();
    // SIGTERM once the writers are well under way: every one of them is mid-burst.
    let deadline = Instant::now() + Duration::from_secs(60);
    while progress.load(Ordering::SeqCst) < 30 {
        assert!(Instant::now() < deadline, "the writers made no progress:\n{}", server.logs());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = server.terminate();
    assert!(status.success(), "mcpd exited with {status}:\n{}", server.logs());
    let (mut acknowledged, mut cut) = (Vec::new(), Vec::new());
    for writer in writers {
        let (a, c) = writer.await.unwrap();
        acknowledged.extend(a);
        cut.extend(c);
    }
    assert!(cut.is_empty(), "answers cut mid-response: {cut:?}");
    assert!(acknowledged.len() >= 30, "the writers were writing: {}", acknowledged.len());
    server.spawn().await;
    for name in &acknowledged {
        assert_eq!(server.get(&format!("/api/v1/secrets/{name}")).await.0, 200, "{name} was acknowledged");
    }
    assert!(server.logs().contains("shutting down: finishing requests in flight"), "{}", server.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_each_requests_id_user_and_route_and_never_a_value() {
    let server = TestServer::start_with_env(StoreKind::Sqlite, &[("MCPD_LOG_FORMAT", "json")]).await;
    let value = "json-log-secret-value-0451";
    let response = server
        .http
        .post(server.url("/api/v1/secrets"))
        .bearer_auth(server.admin_token())
        .header("x-request-id", "req-json-1")
        .json(&json!({"name": "logged", "data": {"K": value}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let (status, _) = server.get("/api/v1/secrets/logged?reveal=true").await;
    assert_eq!(status, 200);
    // The "served" line is written after the answer is sent: wait for it to reach the file.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.logs().lines().any(|l| l.contains("\"served\"") && l.contains("req-json-1")) {
        assert!(Instant::now() < deadline, "no served line for the request:\n{}", server.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let logs = server.logs();
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let served = lines
        .iter()
        .find(|l| l["fields"]["message"] == "served" && l["span"]["request_id"] == "req-json-1")
        .unwrap_or_else(|| panic!("no served line for the request:\n{logs}"));
    assert_eq!(served["span"]["user"], "admin", "{served}");
    assert_eq!(served["span"]["route"], "/api/v1/secrets", "{served}");
    assert_eq!(served["span"]["method"], "POST", "{served}");
    assert_eq!(served["fields"]["status"], 201, "{served}");
    assert!(!logs.contains(value), "a secret value reached the log");
    assert!(!logs.contains(server.admin_token()), "a token reached the log");
}

#[test]
fn the_configuration_reference_is_what_mcpd_serve_help_prints() {
    // Without the environment: clap shows each variable's current value.
    let help = std::process::Command::new(crate::support::binary("mcpd"))
        .args(["serve", "--help"])
        .env_clear()
        .output()
        .unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operations.md")).unwrap();
    let start = docs.find("<!-- serve-help:start -->\n```text\n").expect("the reference's start marker");
    let end = docs.find("```\n<!-- serve-help:end -->").expect("the reference's end marker");
    let shown = &docs[start + "<!-- serve-help:start -->\n```text\n".len()..end];
    assert_eq!(shown, help, "docs/operations.md's configuration reference is not `mcpd serve --help`; paste:\n{help}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_past_the_cap_get_503_and_sighup_without_tls_changes_nothing() {
    let server = TestServer::start_with_env(StoreKind::Sqlite, &[("MCPD_MAX_STREAMS", "1")]).await;
    let open = || {
        let request = server.http.get(server.url("/api/v1/llms?watch=true")).bearer_auth(server.admin_token());
        request.timeout(Duration::from_secs(600)).send()
    };
    let first = open().await.unwrap();
    assert_eq!(first.status(), 200);
    let second = open().await.unwrap();
    assert_eq!(second.status(), 503);
    assert_eq!(second.headers()["retry-after"], "1");
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Overloaded", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("--max-streams"), "{body}");
    // Reads that are not streams are not held back by the cap.
    assert_eq!(server.get("/api/v1/llms").await.0, 200);
    // The first one closed, the next may open.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let again = open().await.unwrap();
        if again.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the closed watch's slot was not given back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // SIGHUP without TLS: logged, and mcpd goes on serving.
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.logs().contains("SIGHUP: nothing to reload") {
        assert!(Instant::now() < deadline, "{}", server.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.get("/api/v1/llms").await.0, 200);
}

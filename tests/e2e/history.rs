//! The history checker: concurrent clients drive real mcpd processes while faults are injected
//! (kill -9 and restart; on PostgreSQL three replicas, and the database cut off, reset and
//! stalled under one of them through a proxy). Every operation is recorded as ok, failed
//! (the answer says nothing changed) or unknown (no answer), and the history is checked as it
//! runs and at the end: no acknowledged write lost, no phantom or stale read, no lost update,
//! contiguous per-aggregate sequences, read models equal to a replay, no call served with a
//! revoked token or a rotated-away key, no 500, SQLite's file intact.
//!
//! Seeded: the seed is printed; `MCPD_HISTORY_SEED=<seed>` replays the same schedule of
//! operations and faults (outcomes still depend on timing). `MCPD_HISTORY_FAULTS` sets how many
//! faults a run injects (default 16 per store: 16 kills on SQLite, 8 kills and 8 database faults on
//! PostgreSQL; docs/reliability.md).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::{AnyConnection, Connection, Row};
use testkit::proxy::{Mode, Proxy};

use crate::support::{StoreKind, TestServer};

testkit::on_both_stores!(a_seeded_history_under_kill_9_and_store_faults_checks_out);

const CLIENTS: u64 = 4;
const KEYS: u64 = 3;

fn seed() -> u64 {
    let seed =
        std::env::var("MCPD_HISTORY_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| fastrand::u64(..));
    eprintln!("history seed: {seed} (replay with MCPD_HISTORY_SEED={seed})");
    seed
}

fn faults_per_run() -> usize {
    std::env::var("MCPD_HISTORY_FAULTS").ok().and_then(|s| s.parse().ok()).unwrap_or(16)
}

/// What one call came to.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// 2xx: the change happened (202: recorded, maybe not shown yet).
    Ok(u16, Value),
    /// An answer saying nothing changed (4xx, 503), or a connection never made.
    Failed(u16),
    /// No answer: it may or may not have happened.
    Unknown,
}

/// Everything the run saw: the operations and the violations of a guarantee.
#[derive(Default)]
struct History {
    operations: Mutex<Vec<String>>,
    violations: Mutex<Vec<String>>,
    unknown: AtomicU64,
}

impl History {
    fn record(&self, client: u64, op: &str, outcome: &Outcome) {
        let summary = match outcome {
            Outcome::Ok(status, _) => format!("ok {status}"),
            Outcome::Failed(status) => format!("failed {status}"),
            Outcome::Unknown => {
                self.unknown.fetch_add(1, Ordering::SeqCst);
                "unknown".to_owned()
            }
        };
        self.operations.lock().unwrap().push(format!("c{client} {op}: {summary}"));
    }

    fn violation(&self, what: String) {
        eprintln!("VIOLATION: {what}");
        self.violations.lock().unwrap().push(what);
    }
}

/// One mcpd as the clients see it: where it is, and whether the fault injector has it down.
#[derive(Clone)]
struct Node {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Node {
    async fn call(&self, history: &History, method: reqwest::Method, path: &str, body: Option<Value>) -> Outcome {
        self.call_as(history, &self.token.clone(), method, path, body, None).await
    }

    async fn call_as(
        &self,
        history: &History,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<u64>,
    ) -> Outcome {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(version) = if_match {
            request = request.header("If-Match", format!("\"{version}\""));
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let Ok(text) = response.text().await else { return Outcome::Unknown };
                let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                match status {
                    200..=299 => Outcome::Ok(status, body),
                    // The one 503 that does not say "nothing changed".
                    503 if body["error"]["code"] == "OutcomeUnknown" => Outcome::Unknown,
                    503 => Outcome::Failed(status),
                    400..=499 => Outcome::Failed(status),
                    _ => {
                        history.violation(format!("{method} {path} answered {status}: {body}"));
                        Outcome::Unknown
                    }
                }
            }
            Err(e) if e.is_connect() => Outcome::Failed(0),
            Err(_) => Outcome::Unknown,
        }
    }

    /// Waits until this node answers again (the injector restarts what it kills).
    async fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(r) = self.http.get(format!("{}/healthz", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "{} did not come back within 90 s", self.base);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The states a value may be in, given what the client was told: `None` is "absent".
type Possible = BTreeSet<Option<String>>;

/// A provider stub that answers which key it was sent: `gen N` for a key ending in `-N`.
async fn key_echo_provider() -> String {
    crate::support::provider(|head| {
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("authorization: Bearer ").or_else(|| l.strip_prefix("Authorization: Bearer ")))
            .unwrap_or("none");
        let generation = key.rsplit('-').next().unwrap_or("none");
        let body = json!({"id": "h", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("gen {generation}")},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}});
        ("application/json", body.to_string())
    })
    .await
}

/// What the shared secret's contended updates came to: each acknowledged update's If-Match,
/// and how many had no answer.
#[derive(Default)]
struct Contention {
    acknowledged: Vec<u64>,
    unknown: u64,
}

struct Client {
    id: u64,
    node: Node,
    rng: fastrand::Rng,
    history: Arc<History>,
    secrets: BTreeMap<String, Possible>,
    /// The provider key's generations it may be at.
    generations: BTreeSet<u64>,
    next_generation: u64,
    revoked: Vec<String>,
    contention: Arc<Mutex<Contention>>,
}

impl Client {
    fn secret_name(&self, k: u64) -> String {
        format!("c{}-s{k}", self.id)
    }

    fn key_value(&self, generation: u64) -> String {
        format!("sk-hist-{}-{generation}", self.id)
    }

    /// Creates the client's provider key and Llm; before any fault, so both must succeed.
    async fn set_up(&mut self, provider: &str) {
        let key = json!({"name": format!("c{}-key", self.id), "data": {"API_KEY": self.key_value(0)}});
        let llm = json!({"name": format!("c{}-ai", self.id), "type": "openai", "model": "m", "tier": "fast",
                         "url": provider, "apiKeyRef": {"name": format!("c{}-key", self.id), "key": "API_KEY"}});
        for (path, body) in [("/api/v1/secrets", key), ("/api/v1/llms", llm)] {
            let outcome = self.node.call(&self.history, reqwest::Method::POST, path, Some(body)).await;
            assert!(matches!(outcome, Outcome::Ok(201, _)), "set-up {path}: {outcome:?}");
        }
        self.generations = BTreeSet::from([0]);
        self.next_generation = 1;
    }

    /// After an operation without an answer, the node may be down: wait for it. After a 503,
    /// a moment's pause, as a client honouring Retry-After would.
    async fn settle(&self, outcome: &Outcome) {
        match outcome {
            Outcome::Unknown | Outcome::Failed(0) => self.node.wait_up().await,
            Outcome::Failed(503) => tokio::time::sleep(Duration::from_millis(50)).await,
            _ => {}
        }
    }

    async fn run(mut self, stop: Arc<AtomicBool>) -> Client {
        let mut step = 0u64;
        while !stop.load(Ordering::SeqCst) {
            step += 1;
            let roll = self.rng.u8(0..100);
            let k = self.rng.u64(0..KEYS);
            match roll {
                0..30 => self.write_secret(k, step).await,
                30..40 => self.delete_secret(k).await,
                40..62 => self.read_secret(k).await,
                62..80 => self.rotate_and_infer().await,
                80..90 => self.contend().await,
                _ => self.token_round().await,
            }
        }
        self
    }

    async fn write_secret(&mut self, k: u64, step: u64) {
        let name = self.secret_name(k);
        let value = format!("v-{}-{step}", self.id);
        let possible = self.secrets.entry(name.clone()).or_insert_with(|| BTreeSet::from([None])).clone();
        let body = json!({"name": name, "data": {"K": value}});
        let (method, path) = if possible.contains(&None) && possible.len() == 1 {
            (reqwest::Method::POST, "/api/v1/secrets".to_owned())
        } else {
            (reqwest::Method::PUT, format!("/api/v1/secrets/{name}"))
        };
        let outcome = self.node.call(&self.history, method.clone(), &path, Some(body)).await;
        self.history.record(self.id, &format!("{method} {name}={value}"), &outcome);
        let entry = self.secrets.get_mut(&name).unwrap();
        match &outcome {
            Outcome::Ok(..) => *entry = BTreeSet::from([Some(value)]),
            Outcome::Failed(_) => {}
            Outcome::Unknown => {
                entry.insert(Some(value));
            }
        }
        self.settle(&outcome).await;
    }

    async fn delete_secret(&mut self, k: u64) {
        let name = self.secret_name(k);
        let outcome =
            self.node.call(&self.history, reqwest::Method::DELETE, &format!("/api/v1/secrets/{name}"), None).await;
        self.history.record(self.id, &format!("DELETE {name}"), &outcome);
        let entry = self.secrets.entry(name).or_insert_with(|| BTreeSet::from([None]));
        match &outcome {
            Outcome::Ok(..) => *entry = BTreeSet::from([None]),
            // 404: it was absent already, which is a read.
            Outcome::Failed(404) => {
                if !entry.contains(&None) {
                    self.history
                        .violation(format!("c{}: a delete found nothing where {entry:?} was acknowledged", self.id));
                }
                *entry = BTreeSet::from([None]);
            }
            Outcome::Failed(_) => {}
            Outcome::Unknown => {
                entry.insert(None);
            }
        }
        self.settle(&outcome).await;
    }

    /// What a read returns must be a state the history allows: the last acknowledged write,
    /// or one whose outcome is unknown. A 202 earlier may still be settling, so a mismatch is
    /// read again a few times before it counts.
    async fn read_secret(&mut self, k: u64) {
        let name = self.secret_name(k);
        let possible = self.secrets.entry(name.clone()).or_insert_with(|| BTreeSet::from([None])).clone();
        for attempt in 0..20 {
            let path = format!("/api/v1/secrets/{name}?reveal=true");
            let outcome = self.node.call(&self.history, reqwest::Method::GET, &path, None).await;
            let seen = match &outcome {
                Outcome::Ok(_, body) => Some(body["data"]["K"].as_str().map(str::to_owned)),
                Outcome::Failed(404) => Some(None),
                _ => None,
            };
            self.history.record(self.id, &format!("GET {name} -> {seen:?}"), &outcome);
            let Some(seen) = seen else {
                self.settle(&outcome).await;
                return;
            };
            if possible.contains(&seen) {
                self.secrets.insert(name, BTreeSet::from([seen]));
                return;
            }
            if attempt == 19 {
                self.history
                    .violation(format!("c{}: read {name} = {seen:?}; the history allows {possible:?}", self.id));
                self.secrets.insert(name, BTreeSet::from([seen]));
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Rotates the provider key, then calls the model: the provider must be sent the key the
    /// rotation put there once it is acknowledged, never the one it replaced.
    async fn rotate_and_infer(&mut self) {
        let generation = self.next_generation;
        self.next_generation += 1;
        let name = format!("c{}-key", self.id);
        let body = json!({"data": {"API_KEY": self.key_value(generation)}});
        let outcome =
            self.node.call(&self.history, reqwest::Method::PUT, &format!("/api/v1/secrets/{name}"), Some(body)).await;
        self.history.record(self.id, &format!("rotate {name} to gen {generation}"), &outcome);
        match &outcome {
            Outcome::Ok(..) => self.generations = BTreeSet::from([generation]),
            Outcome::Failed(_) => {}
            Outcome::Unknown => {
                self.generations.insert(generation);
            }
        }
        self.settle(&outcome).await;
        let chat =
            json!({"model": format!("c{}-ai", self.id), "messages": [{"role": "user", "content": "which key?"}]});
        let outcome =
            self.node.call(&self.history, reqwest::Method::POST, "/openai/v1/chat/completions", Some(chat)).await;
        let seen = match &outcome {
            Outcome::Ok(200, body) => body["choices"][0]["message"]["content"]
                .as_str()
                .and_then(|c| c.strip_prefix("gen "))
                .and_then(|g| g.parse::<u64>().ok()),
            _ => None,
        };
        self.history.record(self.id, &format!("infer with {name} -> gen {seen:?}"), &outcome);
        match seen {
            Some(seen) if self.generations.contains(&seen) => self.generations = BTreeSet::from([seen]),
            Some(seen) => self.history.violation(format!(
                "c{}: the provider was sent key generation {seen}; the history allows {:?}",
                self.id, self.generations
            )),
            None if matches!(outcome, Outcome::Ok(..)) => {
                self.history.violation(format!("c{}: an inference answer without a generation: {outcome:?}", self.id))
            }
            None => self.settle(&outcome).await,
        }
    }

    /// Reads the shared secret's version and updates it with If-Match, against every other
    /// client doing the same: no two acknowledged updates may have started from one version.
    async fn contend(&mut self) {
        let outcome = self.node.call(&self.history, reqwest::Method::GET, "/api/v1/secrets/shared", None).await;
        let Outcome::Ok(_, body) = &outcome else {
            self.settle(&outcome).await;
            return;
        };
        let Some(version) = body["resourceVersion"].as_u64() else {
            self.history.violation(format!("the shared secret has no resourceVersion: {body}"));
            return;
        };
        let value = json!({"data": {"K": format!("c{}-{version}", self.id)}});
        let token = self.node.token.clone();
        let path = "/api/v1/secrets/shared";
        let outcome =
            self.node.call_as(&self.history, &token, reqwest::Method::PUT, path, Some(value), Some(version)).await;
        self.history.record(self.id, &format!("PUT shared If-Match {version}"), &outcome);
        match &outcome {
            Outcome::Ok(..) => self.contention.lock().unwrap().acknowledged.push(version),
            Outcome::Unknown => self.contention.lock().unwrap().unknown += 1,
            Outcome::Failed(_) => {}
        }
        self.settle(&outcome).await;
    }

    /// Issues a token, uses it, revokes it: once the revocation is acknowledged the token is
    /// refused by this replica at once.
    async fn token_round(&mut self) {
        let outcome = self
            .node
            .call(&self.history, reqwest::Method::POST, "/api/v1/tokens", Some(json!({"user": "admin"})))
            .await;
        self.history.record(self.id, "issue token", &outcome);
        let Outcome::Ok(201, body) = &outcome else {
            self.settle(&outcome).await;
            return;
        };
        let (id, token) = (body["name"].as_str().unwrap().to_owned(), body["token"].as_str().unwrap().to_owned());
        let whoami = self.node.call_as(&self.history, &token, reqwest::Method::GET, "/api/v1/whoami", None, None).await;
        if let Outcome::Failed(401) = whoami {
            self.history.violation(format!("c{}: a token just issued ({id}) was refused", self.id));
        }
        let outcome =
            self.node.call(&self.history, reqwest::Method::DELETE, &format!("/api/v1/tokens/{id}"), None).await;
        self.history.record(self.id, &format!("revoke {id}"), &outcome);
        match outcome {
            Outcome::Ok(..) => {
                let after =
                    self.node.call_as(&self.history, &token, reqwest::Method::GET, "/api/v1/whoami", None, None).await;
                if let Outcome::Ok(..) = after {
                    self.history
                        .violation(format!("c{}: token {id} served after its revocation was acknowledged", self.id));
                }
                self.revoked.push(token);
            }
            other => self.settle(&other).await,
        }
    }
}

/// The fault injector's record.
#[derive(Debug, Default)]
struct Injected {
    kills: u64,
    cuts: u64,
    resets: u64,
    stalls: u64,
}

async fn a_seeded_history_under_kill_9_and_store_faults_checks_out(kind: StoreKind) {
    let seed = seed();
    let env = [("MCPD_REQUEST_TIMEOUT_SECS", "5")];
    let first = TestServer::start_with_env(kind, &env).await;
    // On PostgreSQL three replicas: the second reaches the database through a proxy the
    // injector cuts, resets and stalls; any of them may be killed, the projector's holder too.
    let (mut servers, proxy) = match kind {
        StoreKind::Sqlite => (vec![first], None),
        StoreKind::Postgres => {
            let (proxy, url) = Proxy::in_front_of(first.database_url.as_ref().unwrap()).await;
            let second = first.replica_at(url).await;
            let third = first.replica().await;
            (vec![first, second, third], Some(proxy))
        }
    };
    let nodes: Vec<Node> = servers
        .iter()
        .map(|s| Node {
            base: s.url(""),
            token: s.admin_token().to_owned(),
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        })
        .collect();
    let history = Arc::new(History::default());
    let provider = key_echo_provider().await;
    let shared = nodes[0]
        .call(&history, reqwest::Method::POST, "/api/v1/secrets", Some(json!({"name": "shared", "data": {"K": "0"}})))
        .await;
    assert!(matches!(shared, Outcome::Ok(201, _)), "{shared:?}");

    let contention = Arc::new(Mutex::new(Contention::default()));
    let mut clients = Vec::new();
    for id in 0..CLIENTS {
        let mut client = Client {
            id,
            node: nodes[(id as usize) % nodes.len()].clone(),
            rng: fastrand::Rng::with_seed(seed.wrapping_add(id + 1)),
            history: history.clone(),
            secrets: BTreeMap::new(),
            generations: BTreeSet::new(),
            next_generation: 0,
            revoked: Vec::new(),
            contention: contention.clone(),
        };
        client.set_up(&provider).await;
        clients.push(client);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let running: Vec<_> = clients.into_iter().map(|c| tokio::spawn(c.run(stop.clone()))).collect();

    // The faults, on a schedule drawn from the seed.
    let mut faults = fastrand::Rng::with_seed(seed ^ 0x5eed_fa17);
    let mut injected = Injected::default();
    for round in 0..faults_per_run() {
        tokio::time::sleep(Duration::from_millis(faults.u64(150..900))).await;
        // On PostgreSQL every other fault is a kill, the rest the database's (cut, reset, stall).
        let choice = match &proxy {
            None => 0,
            Some(_) if round % 2 == 0 => 0,
            Some(_) => faults.u8(2..5),
        };
        match (choice, &proxy) {
            (0, _) => {
                let victim = faults.usize(0..servers.len());
                servers[victim].kill9();
                injected.kills += 1;
                servers[victim].spawn().await;
            }
            (2, Some(proxy)) => {
                proxy.set(Mode::Cut);
                injected.cuts += 1;
                // /readyz is truthful meanwhile: the replica behind the cut says it is not ready.
                let behind = &nodes[1];
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    match behind.http.get(format!("{}/readyz", behind.base)).send().await {
                        Ok(r) if r.status() == 503 => break,
                        Ok(r) if r.status().is_server_error() => {
                            history.violation(format!("/readyz answered {} during a cut", r.status()));
                            break;
                        }
                        _ => {}
                    }
                    if Instant::now() > deadline {
                        history.violation("/readyz still said ready 20 s into a database cut".into());
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(Duration::from_millis(faults.u64(200..1500))).await;
                proxy.set(Mode::Up);
            }
            (3, Some(proxy)) => {
                proxy.set(Mode::Reset);
                injected.resets += 1;
                tokio::time::sleep(Duration::from_millis(faults.u64(100..800))).await;
                proxy.set(Mode::Up);
            }
            (_, Some(proxy)) => {
                proxy.set(Mode::Stall);
                injected.stalls += 1;
                tokio::time::sleep(Duration::from_millis(faults.u64(200..2000))).await;
                proxy.set(Mode::Up);
            }
            (_, None) => unreachable!("a store without a proxy only gets kills"),
        }
    }
    stop.store(true, Ordering::SeqCst);
    let mut clients = Vec::new();
    for client in running {
        clients.push(client.await.expect("a client panicked"));
    }
    for node in &nodes {
        node.wait_up().await;
        // Self-recovery: each replica is ready again (its read models reachable).
        let deadline = Instant::now() + Duration::from_secs(60);
        while !node.http.get(format!("{}/readyz", node.base)).send().await.is_ok_and(|r| r.status() == 200) {
            assert!(Instant::now() < deadline, "{} not ready again after the faults", node.base);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // What was recorded is shown before anything is checked (a 202 is shown by the projector).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let outcome = nodes[0].call(&history, reqwest::Method::GET, "/api/v1/projections", None).await;
        let Outcome::Ok(_, status) = outcome else { panic!("projection status: {outcome:?}") };
        if status["items"].as_array().unwrap().iter().all(|i| i["lagEvents"] == 0) {
            break;
        }
        assert!(Instant::now() < deadline, "the read models did not catch up: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let operations = history.operations.lock().unwrap().len();
    eprintln!(
        "history seed {seed}: {operations} operations ({} without an answer), faults injected: {injected:?}",
        history.unknown.load(Ordering::SeqCst)
    );

    // Every acknowledged write is there; nothing appears that no client wrote.
    for client in &clients {
        for (name, possible) in &client.secrets {
            let outcome = nodes[0]
                .call(&history, reqwest::Method::GET, &format!("/api/v1/secrets/{name}?reveal=true"), None)
                .await;
            let seen = match &outcome {
                Outcome::Ok(_, body) => body["data"]["K"].as_str().map(str::to_owned),
                Outcome::Failed(404) => None,
                other => panic!("reading {name} at the end: {other:?}"),
            };
            assert!(
                possible.contains(&seen),
                "{name} = {seen:?} at the end; the history allows {possible:?} (seed {seed})"
            );
        }
        // Every revoked token is refused by every replica (at once where it was revoked, and
        // within the access cache's follow on the others).
        for token in &client.revoked {
            for node in &nodes {
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    let r = node.call_as(&history, token, reqwest::Method::GET, "/api/v1/whoami", None, None).await;
                    if r == Outcome::Failed(401) {
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "a revoked token still works on {}: {r:?} (seed {seed})",
                        node.base
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    // No lost update: no two acknowledged updates of the shared secret started from one
    // version, and its version counts every acknowledged one (and at most the unanswered too).
    let contention = std::mem::take(&mut *contention.lock().unwrap());
    let distinct: BTreeSet<u64> = contention.acknowledged.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        contention.acknowledged.len(),
        "two updates from one version: {:?}",
        contention.acknowledged
    );
    let shared = nodes[0].call(&history, reqwest::Method::GET, "/api/v1/secrets/shared", None).await;
    let Outcome::Ok(_, shared) = shared else { panic!("{shared:?}") };
    let version = shared["resourceVersion"].as_u64().unwrap();
    let acknowledged = contention.acknowledged.len() as u64;
    assert!(
        (1 + acknowledged..=1 + acknowledged + contention.unknown).contains(&version),
        "shared is at version {version} after {acknowledged} acknowledged updates and {} unanswered (seed {seed})",
        contention.unknown
    );
    eprintln!("shared secret: {acknowledged} acknowledged If-Match updates, version {version}");

    // Every aggregate's stream is contiguous from 1, and the read models equal a replay.
    sqlx::any::install_default_drivers();
    let mut db = AnyConnection::connect(&servers[0].store_url()).await.unwrap();
    let streams = sqlx::query(
        "SELECT aggregate_type, aggregate_id, COUNT(*) AS n, MIN(sequence) AS low, MAX(sequence) AS high \
         FROM events GROUP BY aggregate_type, aggregate_id",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert!(streams.len() > CLIENTS as usize * 2, "the clients wrote: {} streams", streams.len());
    for row in &streams {
        let (n, low, high): (i64, i64, i64) = (row.get("n"), row.get("low"), row.get("high"));
        let id: String = row.get("aggregate_id");
        assert!(low == 1 && high == n, "stream {id}: {n} events numbered {low}..{high} (seed {seed})");
    }
    db.close().await.unwrap();
    let verify = nodes[0].call(&history, reqwest::Method::POST, "/api/v1/projections/verify", Some(json!({}))).await;
    let Outcome::Ok(200, verify) = verify else { panic!("verify: {verify:?}") };
    assert_eq!(verify["differences"], json!([]), "the read models differ from a replay (seed {seed})");

    let violations = history.violations.lock().unwrap().clone();
    if !violations.is_empty() {
        // What mcpd logged about each request a violation names.
        let logs: String = servers.iter().map(TestServer::logs).collect();
        let ids: Vec<&str> =
            violations.iter().filter_map(|v| v.split("\"requestId\":\"").nth(1)?.split('"').next()).collect();
        let related: Vec<&str> = logs.lines().filter(|l| ids.iter().any(|id| l.contains(id))).collect();
        // The whole history, for reading beside mcpd's logs.
        let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("history-{seed}.log"));
        std::fs::write(&file, history.operations.lock().unwrap().join("\n")).unwrap();
        std::fs::write(file.with_extension("mcpd.log"), &logs).unwrap();
        panic!(
            "seed {seed}: {} violations:\n{}\nmcpd's log of them:\n{}\nthe history: {}",
            violations.len(),
            violations.join("\n"),
            related.join("\n"),
            file.display()
        );
    }

    // SQLite: after all those kills, the file is intact.
    if kind == StoreKind::Sqlite {
        let status = servers[0].terminate();
        assert!(status.success(), "{status}");
        let mut db = AnyConnection::connect(&servers[0].store_url()).await.unwrap();
        let check: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut db).await.unwrap();
        assert_eq!(check, "ok", "seed {seed}");
    }
}

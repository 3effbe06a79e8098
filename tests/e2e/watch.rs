//! Watches: every change of two concurrent writers, in commit order, exactly once; resuming
//! from the last line loses nothing; a viewer scoped to some names sees only those; SIGTERM
//! ends a watch with a final line; so does the loss of what the watch was allowed by (its
//! token, its user, its permission), on this replica and on another; `mcpctl get -w` prints
//! rows as they change.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;

use crate::ctl::Ctl;
use crate::support::{StoreKind, TestServer};

/// A watch as a client reads it: one JSON value per line.
struct Lines {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl Lines {
    async fn open(server: &TestServer, token: &str, query: &str) -> Lines {
        let url = server.url(&format!("/api/v1/secrets?watch=true{query}"));
        let response = server.http.get(url).bearer_auth(token).timeout(Duration::from_secs(600)).send().await.unwrap();
        if response.status() != 200 {
            let status = response.status();
            panic!(
                "watch answered {status}: {}\nmcpd's log:\n{}",
                response.text().await.unwrap_or_default(),
                server.logs()
            );
        }
        assert_eq!(response.headers()["content-type"], "application/x-ndjson");
        Lines { response, buffer: Vec::new() }
    }

    /// The next line, or `None` when the stream ended; panics after `within`.
    async fn next(&mut self, within: Duration) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            let left = deadline.checked_duration_since(Instant::now()).expect("a watch line within the time");
            match tokio::time::timeout(left, self.response.chunk()).await.expect("a watch line within the time") {
                Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk),
                Ok(None) => return None,
                Err(e) => panic!("the watch broke off: {e}"),
            }
        }
    }

    /// The next `n` change lines (bookmarks skipped).
    async fn changes(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::new();
        while out.len() < n {
            let line = self.next(Duration::from_secs(30)).await.expect("the watch goes on");
            if line["type"] != "BOOKMARK" {
                out.push(line);
            }
        }
        out
    }
}

/// The log's secret events after the first `skip`, in commit order: (cursor, type, name).
async fn logged(server: &TestServer, skip: usize) -> Vec<(String, String, String)> {
    sqlx::any::install_default_drivers();
    let mut db = <sqlx::AnyConnection as Connection>::connect(&server.store_url()).await.unwrap();
    let sql = if server.database_url.is_some() {
        "SELECT transaction_id::text || ':' || position::text AS c, event_type, aggregate_id FROM events \
         WHERE aggregate_type = 'secret' ORDER BY transaction_id, position"
    } else {
        "SELECT CAST(position AS TEXT) AS c, event_type, aggregate_id FROM events WHERE aggregate_type = 'secret' ORDER BY position"
    };
    let rows: Vec<(String, String, String)> = sqlx::query_as(sql).fetch_all(&mut db).await.unwrap();
    rows.into_iter()
        .skip(skip)
        .map(|(c, t, n)| {
            let change = if t.ends_with("Deleted") {
                "DELETED"
            } else if t.ends_with("Created") {
                "ADDED"
            } else {
                "MODIFIED"
            };
            (c, change.to_owned(), n)
        })
        .collect()
}

fn seen(lines: &[Value]) -> Vec<(String, String, String)> {
    lines
        .iter()
        .map(|l| {
            (
                l["resourceVersion"].as_str().unwrap().to_owned(),
                l["type"].as_str().unwrap().to_owned(),
                l["object"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Creates, updates and deletes secrets `{prefix}-0..` as fast as it can.
async fn writer(server: &TestServer, prefix: &str) {
    for i in 0..8 {
        let name = format!("{prefix}-{i}");
        let (status, body) = server.post("/api/v1/secrets", json!({"name": name, "data": {"K": "v"}})).await;
        assert_eq!(status, 201, "{body}");
        if i % 2 == 0 {
            let (status, body) =
                server.put(&format!("/api/v1/secrets/{name}"), json!({"name": name, "data": {"K": "w"}})).await;
            assert_eq!(status, 200, "{body}");
        }
        if i % 3 == 0 {
            assert_eq!(server.delete(&format!("/api/v1/secrets/{name}")).await.0, 204);
        }
    }
}

testkit::on_both_stores!(
    a_watch_sees_every_change_of_concurrent_writers_once_in_order_and_resumes,
    a_watch_ends_when_its_token_its_user_or_its_permission_goes_away,
);

async fn a_watch_sees_every_change_of_concurrent_writers_once_in_order_and_resumes(kind: StoreKind) {
    let mut server = TestServer::start(kind).await;
    assert_eq!(server.post("/api/v1/secrets", json!({"name": "before", "data": {"K": "v"}})).await.0, 201);
    let before = logged(&server, 0).await.len();

    // A watch from now: the current state first.
    let mut watch = Lines::open(&server, server.admin_token(), "").await;
    let first = watch.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!((first["type"].as_str(), first["object"]["name"].as_str()), (Some("ADDED"), Some("before")));

    // A scoped viewer watching too.
    assert_eq!(server.post("/api/v1/users", json!({"name": "scoped"})).await.0, 201);
    let role = json!({"name": "some-secrets", "rules": [{"resources": ["secrets"], "verbs": ["view"], "names": ["a-1", "b-2"]}]});
    assert_eq!(server.post("/api/v1/roles", role).await.0, 201);
    let binding = json!({"name": "scoped-some", "role": "some-secrets", "users": ["scoped"]});
    assert_eq!(server.post("/api/v1/rolebindings", binding).await.0, 201);
    let (_, issued) = server.post("/api/v1/tokens", json!({"user": "scoped"})).await;
    let scoped_token = issued["token"].as_str().unwrap().to_owned();
    let mut scoped = Lines::open(&server, &scoped_token, "&sendInitialEvents=false").await;

    tokio::join!(writer(&server, "a"), writer(&server, "b"));
    let expected = logged(&server, before).await;
    assert_eq!(expected.len(), 2 * (8 + 4 + 3));

    // The first half on this connection, then the rest on a new one from the last line.
    let half = expected.len() / 2;
    let mut lines = watch.changes(half).await;
    let resume = lines.last().unwrap()["resourceVersion"].as_str().unwrap().to_owned();
    drop(watch);
    let mut resumed = Lines::open(&server, server.admin_token(), &format!("&resourceVersion={resume}")).await;
    lines.extend(resumed.changes(expected.len() - half).await);
    assert_eq!(seen(&lines), expected, "every change, in commit order, exactly once");
    // Objects are documents, never values.
    let added = lines.iter().find(|l| l["type"] == "ADDED").unwrap();
    assert_eq!(added["object"]["kind"], "secret");
    assert!(!lines.iter().any(|l| l.to_string().contains("\"v\"") || l.to_string().contains("\"w\"")));

    // The scoped viewer: only a-1 and b-2.
    let want: Vec<_> = expected.iter().filter(|(_, _, n)| n == "a-1" || n == "b-2").cloned().collect();
    let got = scoped.changes(want.len()).await;
    assert_eq!(seen(&got), want);

    // A resourceVersion that is no position: 400.
    let bad = server.get("/api/v1/secrets?watch=true&resourceVersion=yesterday").await;
    assert_eq!(bad.0, 400, "{}", bad.1);
    let migrations = server.get("/api/v1/migrations?watch=true").await;
    assert_eq!(migrations.0, 400, "{}", migrations.1);
    let secrets = server.get("/api/v1/secrets?watch=true&reveal=true").await;
    assert_eq!(secrets.0, 400, "a watch never reveals: {}", secrets.1);

    // SIGTERM: the open watch ends with a final line saying where to resume.
    let status = tokio::task::spawn_blocking(move || {
        let status = server.terminate();
        (status, server)
    });
    let last = loop {
        match resumed.next(Duration::from_secs(30)).await {
            Some(line) if line["type"] == "BOOKMARK" => continue,
            Some(line) => break line,
            None => panic!("the watch ended without a final line"),
        }
    };
    assert_eq!(last["type"], "ERROR", "{last}");
    assert_eq!(last["error"]["code"], "ShuttingDown");
    assert_eq!(last["resourceVersion"], expected.last().unwrap().0.as_str());
    assert!(resumed.next(Duration::from_secs(30)).await.is_none(), "and the stream ends");
    let (status, _server) = status.await.unwrap();
    assert!(status.success(), "{status}");
}

/// A user bound to `role`, and a token of theirs with its id.
async fn watcher(server: &TestServer, user: &str, role: &str) -> (String, String) {
    assert_eq!(server.post("/api/v1/users", json!({"name": user})).await.0, 201);
    let binding = json!({"name": format!("{user}-binding"), "role": role, "users": [user]});
    assert_eq!(server.post("/api/v1/rolebindings", binding).await.0, 201);
    let (status, issued) = server.post("/api/v1/tokens", json!({"user": user})).await;
    assert_eq!(status, 201, "{issued}");
    (issued["token"].as_str().unwrap().to_owned(), issued["name"].as_str().unwrap().to_owned())
}

/// Reads `watch` to its end: the lines before its final ERROR line must name none of
/// `unseen`, and the final line must carry `code`; nothing follows it.
async fn ends_with(watch: &mut Lines, code: &str, unseen: &str, what: &str) {
    let last = loop {
        match watch.next(Duration::from_secs(30)).await {
            Some(line) if line["type"] == "ERROR" => break line,
            Some(line) => assert!(!line.to_string().contains(unseen), "{what}: a line after the loss: {line}"),
            None => panic!("{what}: the watch ended without a final line"),
        }
    };
    assert_eq!(last["error"]["code"], code, "{what}: {last}");
    assert!(watch.next(Duration::from_secs(30)).await.is_none(), "{what}: and the stream ends");
}

/// Finding 4 of the second probe: a watch kept streaming with a revoked token, and watches of
/// a deleted user or of a user whose binding was removed stayed open (holding a stream slot).
/// Each now ends with a final ERROR line, and shows nothing recorded after the loss.
async fn a_watch_ends_when_its_token_its_user_or_its_permission_goes_away(kind: StoreKind) {
    let server = TestServer::start(kind).await;
    assert_eq!(server.post("/api/v1/secrets", json!({"name": "before", "data": {"K": "v"}})).await.0, 201);
    let (revoked, revoked_id) = watcher(&server, "revoked", "viewer").await;
    let (unbound, _) = watcher(&server, "unbound", "viewer").await;
    let (deleted, _) = watcher(&server, "deleted", "viewer").await;
    let mut watches = Vec::new();
    for token in [&revoked, &unbound, &deleted] {
        let mut watch = Lines::open(&server, token, "").await;
        let first = watch.next(Duration::from_secs(10)).await.unwrap();
        assert_eq!(first["object"]["name"], "before", "{first}");
        watches.push(watch);
    }
    let [mut revoked_watch, mut unbound_watch, mut deleted_watch] = watches.try_into().ok().unwrap();

    assert_eq!(server.delete(&format!("/api/v1/tokens/{revoked_id}")).await.0, 204);
    assert_eq!(server.post("/api/v1/secrets", json!({"name": "after-revoke", "data": {"K": "v"}})).await.0, 201);
    ends_with(&mut revoked_watch, "Unauthenticated", "after-revoke", "revoked token").await;

    assert_eq!(server.delete("/api/v1/rolebindings/unbound-binding").await.0, 204);
    assert_eq!(server.post("/api/v1/secrets", json!({"name": "after-unbind", "data": {"K": "v"}})).await.0, 201);
    ends_with(&mut unbound_watch, "Forbidden", "after-unbind", "binding removed").await;

    assert_eq!(server.delete("/api/v1/users/deleted").await.0, 204);
    assert_eq!(server.post("/api/v1/secrets", json!({"name": "after-delete", "data": {"K": "v"}})).await.0, 201);
    ends_with(&mut deleted_watch, "Unauthenticated", "after-delete", "user deleted").await;

    // A revocation recorded on another replica ends the watch too, once this one follows it.
    if kind == StoreKind::Postgres {
        let other = server.replica().await;
        let (token, id) = watcher(&server, "elsewhere", "viewer").await;
        let mut watch = Lines::open(&server, &token, "&sendInitialEvents=false").await;
        assert_eq!(other.delete(&format!("/api/v1/tokens/{id}")).await.0, 204);
        ends_with(&mut watch, "Unauthenticated", "\"ADDED\"", "revoked on another replica").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcpctl_get_watch_prints_rows_as_they_change() {
    let server = TestServer::start(StoreKind::Sqlite).await;
    assert_eq!(server.post("/api/v1/secrets", json!({"name": "old", "data": {"K": "v"}})).await.0, 201);
    let ctl = Ctl::new(&server);
    let mut child = ctl
        .command(&["get", "secrets", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let header = next_line(&mut rx).await;
    assert!(header.starts_with("EVENT") && header.contains("NAME"), "{header}");
    let row = next_line(&mut rx).await;
    assert!(row.starts_with("ADDED") && row.contains("old"), "{row}");
    assert_eq!(server.post("/api/v1/secrets", json!({"name": "new", "data": {"K": "v"}})).await.0, 201);
    let row = next_line(&mut rx).await;
    assert!(row.starts_with("ADDED") && row.contains("new"), "{row}");
    assert_eq!(server.delete("/api/v1/secrets/old").await.0, 204);
    let row = next_line(&mut rx).await;
    assert!(row.starts_with("DELETED") && row.contains("old"), "the last row of the deleted secret: {row}");
    child.kill().unwrap();
    let _ = child.wait();
}

async fn next_line(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(20), rx.recv()).await.expect("mcpctl printed a line").unwrap()
}

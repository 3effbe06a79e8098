//! The second black-box probe's findings (issue 24) that need the real binary: memory a
//! caller can make mcpd hold. (The rest are API tests: `api/tests/probe.rs`; watches are in
//! `watch.rs`.)

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{StoreKind, TestServer};

/// A user with `rules` (none: no binding), and a token of theirs.
async fn user(server: &TestServer, name: &str, rules: Option<serde_json::Value>) -> String {
    assert_eq!(server.post("/api/v1/users", json!({"name": name})).await.0, 201);
    if let Some(rules) = rules {
        assert_eq!(server.post("/api/v1/roles", json!({"name": name, "rules": rules})).await.0, 201);
        let binding = json!({"name": name, "role": name, "users": [name]});
        assert_eq!(server.post("/api/v1/rolebindings", binding).await.0, 201);
    }
    let (status, issued) = server.post("/api/v1/tokens", json!({"user": name})).await;
    assert_eq!(status, 201, "{issued}");
    issued["token"].as_str().unwrap().to_owned()
}

/// A chat request of about `size` bytes: a conversation of a million short messages, the shape
/// that costs the most to hold as a parsed tree.
fn conversation(size: usize) -> Vec<u8> {
    let message = br#"{"role":"user","content":"x"},"#;
    let mut body = br#"{"model":"no-such-llm","messages":["#.to_vec();
    while body.len() + message.len() + 2 < size {
        body.extend_from_slice(message);
    }
    body.pop();
    body.extend_from_slice(b"]}");
    body
}

/// Finding 5: inference bodies up to 32 MiB were read and parsed into a tree before the
/// permission check: one request from a user with no binding took mcpd from 20 MB to 1.83 GB,
/// and it stayed there. Now a caller who may use no Llm is refused before the body is read
/// (the answer comes with none of it sent), and one who may is parsed without a tree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_caller_makes_mcpd_hold_a_large_body_as_a_tree() {
    let server = TestServer::start(StoreKind::Sqlite).await;
    let nobody = user(&server, "nobody", None).await;
    let inferrer = user(&server, "inferrer", Some(json!([{"operations": ["run:infer"]}]))).await;
    let body = conversation(30 * 1024 * 1024);

    // Without run:infer: the headers alone are answered, 403.
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    let head = format!(
        "POST /openai/v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {nobody}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(30), socket.read(&mut answer))
        .await
        .expect("answered without the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    drop(socket);

    // With it: the whole body read and parsed, peak memory well under what a tree would take
    // (a million parsed messages is several hundred MiB; the body itself is 30).
    let resident = server.memory_kib("VmRSS");
    let before = server.memory_kib("VmHWM");
    let response = server
        .http
        .post(server.url("/openai/v1/chat/completions"))
        .bearer_auth(&inferrer)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "parsed whole, then no such Llm: {}", response.text().await.unwrap());
    let peak = server.memory_kib("VmHWM");
    let grew = (peak.saturating_sub(before)) / 1024;
    eprintln!(
        "peak memory: {} MiB before, {} MiB after a 30 MiB conversation (+{grew} MiB)",
        before / 1024,
        peak / 1024
    );
    assert!(grew < 160, "a 30 MiB body took {grew} MiB more at its peak");
    // And it is given back: what the request held is freed, not kept by the process.
    let start = std::time::Instant::now();
    loop {
        let now = server.memory_kib("VmRSS");
        if now < resident + 32 * 1024 {
            eprintln!("resident: {} MiB before, {} MiB after", resident / 1024, now / 1024);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "still {} MiB resident, {} before",
            now / 1024,
            resident / 1024
        );
        // The allocator gives memory back as it works (its purge runs on later allocations).
        assert_eq!(server.get("/api/v1/llms").await.0, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Finding 13: on PostgreSQL the data directory (which holds the admin's token) was created
/// 0755, and on either store a token file made readable later stayed so. Now both stores
/// create it private and make it private again at every start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_and_the_admin_token_are_private_on_postgresql_too() {
    use std::os::unix::fs::PermissionsExt;
    for kind in [StoreKind::Postgres, StoreKind::Sqlite] {
        let mut server = TestServer::start(kind).await;
        let (dir, token) = (server.data_dir(), server.data_dir().join("admin-token"));
        assert_eq!((mode(&dir), mode(&token)), (0o700, 0o600), "{kind:?}: created private");
        server.terminate();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
        server.spawn().await;
        assert_eq!((mode(&dir), mode(&token)), (0o700, 0o600), "{kind:?}: made private again at start");
    }
}

/// Finding 15: the metrics label `llm` grew with every Llm an editor created, and stayed after
/// it was deleted. Now it holds at most 200 names at once; the rest count as `other`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_llm_label_of_the_metrics_takes_a_bounded_set_of_names() {
    let server = TestServer::start(StoreKind::Sqlite).await;
    let answer = json!({"id": "c", "object": "chat.completion", "created": 0, "model": "m",
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]});
    let url = crate::support::canned_provider("application/json", answer.to_string()).await;
    const LLMS: usize = 230;
    for i in 0..LLMS {
        let llm = json!({"name": format!("l-{i:03}"), "type": "vllm", "model": "m", "tier": "fast", "url": url});
        assert_eq!(server.post("/api/v1/llms", llm).await.0, 201);
        let chat = json!({"model": format!("l-{i:03}"), "messages": [{"role": "user", "content": "hi"}]});
        let (status, body) = server.post("/openai/v1/chat/completions", chat).await;
        assert_eq!(status, 200, "{body}");
    }
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .bearer_auth(server.admin_token())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut names = std::collections::BTreeSet::new();
    let mut requests = 0.0;
    for line in metrics.lines().filter(|l| l.starts_with("mcpd_inference_requests_total{")) {
        let name = line.split("llm=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap();
        names.insert(name.to_owned());
        requests += line.rsplit(' ').next().unwrap().parse::<f64>().unwrap();
    }
    assert!(names.len() <= 201, "{} names in the llm label", names.len());
    assert!(names.contains("other"), "the rest count as other: {names:?}");
    assert_eq!(requests as usize, LLMS, "every call is counted, under its name or as other");
}

/// Finding 10, its second half: 40 idle sockets against `--max-connections 20` held `/healthz`
/// for 18 s (each idle one keeps its place for the header-read timeout). Now a newcomer finding
/// every place taken closes the oldest connection that has sent no request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_do_not_hold_the_connections_others_need() {
    // A header-read timeout far beyond the client's own: only eviction can let it in.
    let env = [("MCPD_MAX_CONNECTIONS", "4"), ("MCPD_HEADER_READ_TIMEOUT_SECS", "300")];
    let server = TestServer::start_with_env(StoreKind::Sqlite, &env).await;
    let mut idle = Vec::new();
    for _ in 0..10 {
        idle.push(tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap());
    }
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    for _ in 0..3 {
        let response = client.get(server.url("/healthz")).send().await.expect("served despite the idle sockets");
        assert_eq!(response.status(), 200);
    }
    // The first idle sockets were closed to make room: reading them ends.
    let mut first = idle.remove(0);
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(60), first.read(&mut buf)).await.expect("closed").unwrap_or(0);
    assert_eq!(n, 0, "the oldest idle socket was closed");
}

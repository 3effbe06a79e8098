//! The probe's host- and network-level findings against the real binaries: the embedded store is
//! private from creation, slow clients neither starve others nor hold up SIGTERM, mcpctl talks
//! to an https:// mcpd through its CA (and refuses an untrusted one at once), and text a writer
//! controls cannot steer an admin's terminal.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::ctl::Ctl;
use crate::support::{StoreKind, TestServer, binary};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Starts `mcpd serve` on the embedded default under `umask 022` (the usual one, which made
/// everything world-readable), with extra arguments; the child and its port.
async fn serve_under_umask(data_dir: &std::path::Path, extra: &[&str]) -> (std::process::Child, u16) {
    let mut args = vec![
        "serve".to_owned(),
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--data-dir".to_owned(),
        data_dir.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let child = Command::new("sh")
        .arg("-c")
        .arg("umask 022; exec \"$0\" \"$@\"")
        .arg(binary("mcpd"))
        .args(&args)
        .env("MCPD_BOOTSTRAP_TOKEN", testkit::ADMIN_TOKEN)
        .env("MCPCTL_CONFIG", data_dir.with_extension("client.json"))
        .env_remove("MCPD_DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(data_dir.with_extension("log")).unwrap())
        .spawn()
        .unwrap();
    // mcpd binds port 0 and logs the port it got.
    let deadline = Instant::now() + Duration::from_secs(60);
    let port = loop {
        let log = std::fs::read_to_string(data_dir.with_extension("log")).unwrap_or_default();
        if let Some(port) = crate::support::serving_port(&log) {
            break port;
        }
        assert!(Instant::now() < deadline, "mcpd did not listen within 60 s:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    (child, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_is_private_from_creation_and_made_private_at_start() {
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("mcpd-data");
    let (mut child, port) = serve_under_umask(&data, &[]).await;
    // A write, so the WAL and shared-memory files exist and hold a value.
    let http = reqwest::Client::new();
    let r = http
        .post(format!("http://127.0.0.1:{port}/api/v1/secrets"))
        .bearer_auth(testkit::ADMIN_TOKEN)
        .json(&json!({"name": "s", "data": {"K": "a-value-others-must-not-read"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(mode(&data), 0o700, "the data directory");
    for file in ["mcpd.db", "mcpd.db-wal", "mcpd.db-shm", "admin-token"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // A store left readable by others (copied in, made by an older mcpd) is fixed at start.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    for file in ["mcpd.db", "mcpd.db-wal"] {
        std::fs::set_permissions(data.join(file), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let (mut child, _) = serve_under_umask(&data, &[]).await;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("mcpd.db")), 0o600);
    child.kill().unwrap();
    child.wait().unwrap();
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert!(log.contains("made a file readable by other users private"), "{log}");
}

/// Opens a connection and sends half a request's headers, then a byte now and then.
async fn slowloris(port: u16) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    stream.write_all(b"GET /api/v1/llms HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.ok()?;
    Some(stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_slow_clients_do_not_stop_others_being_served_nor_sigterm() {
    let env = [("MCPD_HEADER_READ_TIMEOUT_SECS", "2"), ("MCPD_SHUTDOWN_GRACE_SECS", "2")];
    let mut server = TestServer::start_with_env(StoreKind::Sqlite, &env).await;
    let mut slow = Vec::new();
    for _ in 0..300 {
        slow.extend(slowloris(server.port).await);
    }
    assert!(slow.len() >= 250, "only {} slow connections opened", slow.len());
    // Trickle one byte a second on each, as the probe did.
    let trickle = Arc::new(tokio::sync::Mutex::new(slow));
    let feeder = {
        let trickle = trickle.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                for stream in trickle.lock().await.iter_mut() {
                    let _ = stream.write_all(b"a").await;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    // A normal client is served meanwhile.
    let (status, body) = server.get("/api/v1/llms").await;
    assert_eq!(status, 200, "{body}");
    // A keep-alive connection that made its request and then idles is closed too.
    let mut idle = TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut answer = vec![0u8; 512];
    let n = idle.read(&mut answer).await.unwrap();
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer[..n])
    );
    let closed_idle = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut answer)).await;
    assert!(matches!(closed_idle, Ok(Ok(0)) | Ok(Err(_))), "an idle keep-alive connection stays open: {closed_idle:?}");
    // The slow ones are cut off: each sees its connection closed (each read waits for it).
    let mut closed = 0;
    for stream in trickle.lock().await.iter_mut() {
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(_)) | Ok(Err(_)) => closed += 1,
            Err(_) => {}
        }
    }
    feeder.abort();
    assert_eq!(closed, trickle.lock().await.len(), "every slow connection was closed by mcpd");

    // SIGTERM with slow clients connected: mcpd stops once the grace period is over.
    let mut lingering = Vec::new();
    for _ in 0..50 {
        lingering.extend(slowloris(server.port).await);
    }
    let status = server.terminate();
    assert!(status.success(), "mcpd exited with {status}");
    drop(lingering);
}

/// A TLS-terminating listener in front of mcpd, with a certificate for 127.0.0.1 signed by a CA
/// of the test's own: the CA's PEM, the https:// URL, and how many connections it has accepted.
async fn tls_front(mcpd_port: u16) -> (String, String, Arc<std::sync::atomic::AtomicUsize>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&leaf_key, &issuer).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(client).await else { return };
                if let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", mcpd_port)).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                }
            });
        }
    });
    (ca_cert.pem(), url, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcpctl_reaches_an_https_mcpd_through_its_ca_and_refuses_an_untrusted_one_at_once() {
    let server = TestServer::start(StoreKind::Sqlite).await;
    let (ca, url, accepted) = tls_front(server.port).await;
    let mut ctl = Ctl { token: Some(server.admin_token().to_owned()), ..Ctl::for_url(&url) };
    let ca_file = ctl.file("ca.pem", &ca);
    let ca_file = ca_file.to_str().unwrap();

    let refused = ctl.run(&["get", "llms"]);
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("does not trust") && refused.stderr.contains("--certificate-authority"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("attempts"), "an untrusted certificate is not retried: {}", refused.stderr);
    let attempts = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(attempts, 1, "an untrusted certificate is not retried: {attempts} connections");

    ctl.run(&["get", "llms", "--certificate-authority", ca_file]).ok();
    // login stores the CA with the server and token; later commands need no flag.
    let token = ctl.token.take().unwrap();
    let login = ctl.run(&["login", "--token", &token, "--certificate-authority", ca_file]).ok();
    assert!(login.stdout.contains("as admin"), "{}", login.stdout);
    let created = ctl.run(&["create", "secret", "over-tls", "--data", "K=v"]).ok();
    assert!(created.stdout.contains("over-tls"), "{}", created.stdout);
    assert_eq!(server.get("/api/v1/secrets/over-tls").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_a_writer_controls_cannot_steer_the_admins_terminal() {
    let server = TestServer::start(StoreKind::Sqlite).await;
    let hostile = "ok\u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}[31mred\u{9b}1A\u{202e}\nfake-row";
    let llm = json!({"name": "hostile", "type": "ollama", "model": "m", "tier": "fast",
                     "url": "http://127.0.0.1:11434", "description": hostile, "extra": {"note": hostile}});
    assert_eq!(server.post("/api/v1/llms", llm).await.0, 201);
    let chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                       "choices": [{"index": 0, "delta": {"content": hostile}}]});
    let streamed =
        crate::support::canned_provider("text/event-stream", format!("data: {chunk}\n\ndata: [DONE]\n\n")).await;
    let whole = json!({"id": "c", "object": "chat.completion", "created": 0, "model": "m",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": hostile}, "finish_reason": "stop"}]});
    let whole = crate::support::canned_provider("application/json", whole.to_string()).await;
    for (name, url) in [("streamed", streamed), ("whole", whole)] {
        let llm = json!({"name": name, "type": "vllm", "model": "m", "tier": "fast", "url": url});
        assert_eq!(server.post("/api/v1/llms", llm).await.0, 201);
    }
    let ctl = Ctl::new(&server);
    for args in [
        vec!["get", "llms", "-o", "wide"],
        vec!["describe", "llm", "hostile"],
        vec!["audit", "--kind", "llm"],
        vec!["get", "llm", "hostile", "-o", "json"],
        vec!["get", "llm", "hostile", "-o", "yaml"],
        vec!["infer", "streamed", "hi"],
        vec!["infer", "whole", "hi", "-o", "json"],
    ] {
        let run = ctl.run(&args).ok();
        // Bidirectional overrides too, in every format (YAML prints them raw, so a document
        // holding one is written as JSON, which is YAML), and in a model's answer.
        let obeyed: Vec<char> = run
            .stdout
            .chars()
            .filter(|c| (c.is_control() && *c != '\n') || ('\u{202a}'..='\u{202e}').contains(c))
            .collect();
        assert!(obeyed.is_empty(), "{args:?} printed {obeyed:?}:\n{}", run.stdout);
        // A model's answer is prose: its line breaks are its own (no rows to forge there).
        let rows = args[0] != "infer";
        assert!(
            !rows || !run.stdout.lines().any(|l| l.starts_with("fake-row")),
            "{args:?} forged a line:\n{}",
            run.stdout
        );
        if args[0] == "infer" {
            assert!(run.stdout.contains("ok"), "{args:?}: the answer is shown:\n{}", run.stdout);
        }
    }
    let run = ctl.run(&["get", "llm", "hostile", "-o", "yaml"]).ok();
    let back: serde_json::Value = yaml_serde::from_str(&run.stdout).unwrap();
    assert_eq!(back["description"], hostile, "the YAML reads back as the same document:\n{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_named_as_such_not_as_a_broken_pipe() {
    let server = TestServer::start(StoreKind::Sqlite).await;
    let ctl = Ctl::new(&server);
    let big = ctl.file("big.yaml", &format!("kind: secret\nname: big\ndata: {{K: {}}}\n", "x".repeat(1_500_000)));
    let run = ctl.run(&["apply", "-f", big.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stderr.contains("1 MiB") && !run.stderr.contains("Broken pipe"), "{}", run.stderr);
    assert_eq!(server.get("/api/v1/secrets/big").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_with_reveal_says_which_secrets_it_could_not_read_and_fails() {
    let server = TestServer::start(StoreKind::Sqlite).await;
    let mut bao = tokio::task::block_in_place(testkit::openbao::OpenBao::start);
    let token = bao.token_for_prefix("mcpd/").await;
    assert_eq!(server.post("/api/v1/secrets", json!({"name": "bao-token", "data": {"token": token}})).await.0, 201);
    let backend = json!({"name": "bao", "type": "openbao",
                         "config": {"url": bao.addr, "tokenSecretRef": {"name": "bao-token", "key": "token"}}});
    assert_eq!(server.post("/api/v1/secretbackends", backend).await.0, 201);
    assert_eq!(
        server.post("/api/v1/secrets", json!({"name": "far", "backend": "bao", "data": {"K": "v"}})).await.0,
        201
    );
    assert_eq!(server.post("/api/v1/secrets", json!({"name": "near", "data": {"K": "here"}})).await.0, 201);
    tokio::task::block_in_place(|| bao.stop());
    let ctl = Ctl::new(&server);
    let run = ctl.run(&["get", "secrets", "-o", "yaml", "--reveal"]);
    assert_eq!(run.code, 1, "an incomplete backup is a failure: {}", run.stderr);
    assert!(run.stdout.contains("here"), "what could be read is printed: {}", run.stdout);
    assert!(run.stderr.contains("secret far were not read") && run.stderr.contains("unreachable"), "{}", run.stderr);
    // The document without its values applies back as it is: revealError is read-only.
    let backup = ctl.file("backup.yaml", &run.stdout);
    ctl.run(&["apply", "-f", backup.to_str().unwrap()]).ok();
}

//! mcpctl on its own: retries against a stub that rate-limits, completions, configuration, and
//! the README's walkthrough run as written.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::ctl::Ctl;
use crate::support::{StoreKind, TestServer, binary};

/// A stub HTTP server for faults mcpd does not produce on demand: it answers request `n`
/// (from 0) with `answer(n)` and counts the requests.
async fn stub(answer: fn(usize) -> String) -> (String, Arc<AtomicUsize>) {
    let (url, count, _) = recording_stub(answer).await;
    (url, count)
}

/// [`stub`], also keeping each request's head (request line and headers).
async fn recording_stub(answer: fn(usize) -> String) -> (String, Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<String>>>) {
    let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = heads.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let mut request = Vec::new();
            let mut buffer = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => request.extend_from_slice(&buffer[..read]),
                }
            }
            kept.lock().unwrap().push(String::from_utf8_lossy(&request).to_lowercase());
            let _ = socket.write_all(answer(n).as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    (url, count, heads)
}

fn response(status: &str, headers: &str, body: &str) -> String {
    format!("HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_retried_honouring_retry_after() {
    let (url, count) = stub(|n| match n {
        0 | 1 => response("429 Too Many Requests", "Retry-After: 1\r\n", ""),
        _ => response("200 OK", "Content-Type: application/json\r\n", r#"{"items": []}"#),
    })
    .await;
    let ctl = Ctl::for_url(&url);
    let run = tokio::task::spawn_blocking(move || {
        let mut command = ctl.command(&["get", "llms"]);
        command.env("MCPCTL_RETRY_TIMEOUT", "20s");
        command.output().unwrap()
    })
    .await
    .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(String::from_utf8_lossy(&run.stderr), "No resources found.\n");
    assert_eq!(count.load(Ordering::SeqCst), 3, "two 429s, then the answer");
}

/// The `Idempotency-Key` header of a request head, if it has one.
fn idempotency_key(head: &str) -> Option<String> {
    head.lines().find_map(|l| l.strip_prefix("idempotency-key: ").map(|v| v.trim().to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_write_carries_one_idempotency_key_on_every_attempt() {
    let (url, count, heads) = recording_stub(|n| match n {
        0 => response("503 Service Unavailable", "Retry-After: 1\r\n", ""),
        _ => response(
            "201 Created",
            "Content-Type: application/json\r\n",
            r#"{"kind":"secret","name":"s","description":"","backend":"default","keys":["K"],"resourceVersion":1,"createdAt":"2026-12-01T00:00:00Z","updatedAt":"2026-12-01T00:00:00Z"}"#,
        ),
    })
    .await;
    let ctl = Ctl::for_url(&url);
    let run = tokio::task::spawn_blocking(move || {
        let mut command = ctl.command(&["create", "secret", "s", "--data", "K=v"]);
        command.env("MCPCTL_RETRY_TIMEOUT", "20s");
        let first = command.output().unwrap();
        let second = ctl.command(&["create", "secret", "s", "--data", "K=v"]).output().unwrap();
        (first, second)
    })
    .await
    .unwrap();
    assert!(run.0.status.success(), "{}", String::from_utf8_lossy(&run.0.stderr));
    assert_eq!(count.load(Ordering::SeqCst), 3);
    let keys: Vec<Option<String>> = heads.lock().unwrap().iter().map(|h| idempotency_key(h)).collect();
    let first = keys[0].clone().expect("a write carries an Idempotency-Key");
    assert_eq!(keys[1].as_deref(), Some(first.as_str()), "the retry carries the same key");
    assert_ne!(keys[2].as_deref(), Some(first.as_str()), "another command, another key");
    assert!(keys[2].is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_bounded_and_then_fail_clearly() {
    let (url, count) = stub(|_| response("503 Service Unavailable", "", "")).await;
    let ctl = Ctl::for_url(&url);
    let run = tokio::task::spawn_blocking(move || {
        let mut command = ctl.command(&["get", "llms"]);
        command.env("MCPCTL_RETRY_TIMEOUT", "1s");
        command.output().unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1));
    assert!(stderr.starts_with("Error: mcpd answered 503 Service Unavailable (gave up after"), "{stderr}");
    // However many attempts fit in the budget on this machine, the message counts them right,
    // and there was more than one.
    let attempts = count.load(Ordering::SeqCst);
    assert!(attempts >= 2, "{attempts} attempts");
    assert!(stderr.contains(&format!("gave up after {attempts} attempts in")), "{attempts} attempts: {stderr}");
}

#[test]
fn completion_scripts_generate_for_every_shell() {
    let ctl = Ctl::for_url("http://127.0.0.1:9");
    for shell in ["bash", "zsh", "fish"] {
        let run = ctl.run(&["completion", shell]).ok();
        assert!(run.stdout.contains("mcpctl") && run.stdout.contains("apply"), "{shell}");
        if shell == "bash" {
            let script = ctl.file("mcpctl.bash", &run.stdout);
            let check = std::process::Command::new("bash").arg("-n").arg(script).output().unwrap();
            assert!(check.status.success(), "bash -n: {}", String::from_utf8_lossy(&check.stderr));
        }
    }
    let bad = ctl.run(&["completion", "powerpoint"]);
    assert_eq!(bad.code, 2);
}

#[test]
fn the_config_file_is_private_and_names_the_server() {
    use std::os::unix::fs::PermissionsExt;
    let ctl = Ctl::for_url("unused");
    let mut set = ctl.command(&["config", "set-server", "http://mcpd.example:3100/"]);
    set.env_remove("MCPCTL_SERVER");
    assert!(set.output().unwrap().status.success());
    let mode = std::fs::metadata(&ctl.config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let mut view = ctl.command(&["config", "view"]);
    view.env_remove("MCPCTL_SERVER");
    let shown: serde_json::Value = serde_json::from_slice(&view.output().unwrap().stdout).unwrap();
    assert_eq!(shown["server"], "http://mcpd.example:3100");
    let bad = ctl.run(&["config", "set-server", "mcpd:3100"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("must start with http://"), "{}", bad.stderr);
}

#[test]
fn every_command_has_help_with_an_example() {
    let ctl = Ctl::for_url("unused");
    for command in [
        vec!["get"],
        vec!["describe"],
        vec!["delete"],
        vec!["apply"],
        vec!["diff"],
        vec!["completion"],
        vec!["create", "secret"],
        vec!["create", "llm"],
        vec!["create", "secretbackend"],
        vec!["config", "set-server"],
        vec!["migrate", "secrets"],
        vec!["version"],
    ] {
        let mut args = command.clone();
        args.push("--help");
        let help = ctl.run(&args).ok().stdout;
        assert!(help.contains("Examples:\n  "), "{command:?} has no example:\n{help}");
    }
}

/// The README's first-steps walkthrough, run as a newcomer would paste it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_runs_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let start = readme.find("<!-- walkthrough:start -->").expect("the README marks its walkthrough");
    let end = readme.find("<!-- walkthrough:end -->").expect("the walkthrough has an end");
    let script: String = readme[start..end]
        .lines()
        .skip_while(|l| !l.starts_with("```sh"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(script.contains("mcpctl apply"), "{script}");

    // `mcpctl infer local` asks the walkthrough's Ollama at 127.0.0.1:11434: a stub stands in.
    let stub = std::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/inference/stub.py"))
        .args(["11434", "ollama"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs the stub provider");
    let mut stub = KillOnDrop(stub);
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stub.0.stdout.take().unwrap()), &mut ready).unwrap();
    assert!(ready.contains("listening"), "the stub at 127.0.0.1:11434 did not start (is the port taken?): {ready:?}");

    let server = TestServer::start(StoreKind::Sqlite).await;
    let ctl = Ctl::new(&server);
    let config = server.client_config();
    assert!(config.exists(), "mcpd wrote a client config at its first start");
    let bin_dir = binary("mcpctl").parent().unwrap().to_owned();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let output = tokio::task::spawn_blocking(move || {
        let mut command = std::process::Command::new("bash");
        command.arg("-euo").arg("pipefail").arg("-c").arg(&script).env("PATH", path);
        // As on a fresh machine: mcpctl finds mcpd and its token in the config mcpd wrote.
        command
            .env_remove("MCPCTL_SERVER")
            .env_remove("MCPCTL_TOKEN")
            .env("MCPCTL_CONFIG", &config)
            .current_dir(ctl.dir())
            .stdin(std::process::Stdio::null());
        let output = command.output().unwrap();
        (output, ctl)
    })
    .await
    .unwrap()
    .0;
    assert!(
        output.status.success(),
        "the walkthrough failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let (_, llms) = server.get("/api/v1/llms").await;
    assert!(!llms["items"].as_array().unwrap().is_empty(), "the walkthrough creates llms");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Hello from ollama\n"), "mcpctl infer printed the stub's answer:\n{stdout}");
}

/// A child process killed when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

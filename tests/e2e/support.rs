//! `TestServer`: the real `mcpd` binary on a free port, a temp data dir, a real database; stopped
//! (SIGKILL) when dropped. Its stderr is kept in a file so tests can read the logs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use testkit::StoreKind;
use testkit::TestDb;

/// Where `cargo build` put the binaries: next to this test's `deps/` directory.
pub fn binary(name: &str) -> PathBuf {
    if let Ok(path) = std::env::var(format!("{}_BIN", name.to_uppercase())) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --bins` before the end-to-end tests", path.display());
    path
}

pub struct TestServer {
    /// The store; on SQLite only its temp dir is used, mcpd creates its embedded default there.
    db: TestDb,
    /// `None` for the embedded default (no --database-url at all).
    pub database_url: Option<String>,
    pub port: u16,
    child: Option<Child>,
    starts: usize,
    env: Vec<(String, String)>,
    /// `https` for a server given a TLS certificate; `http` otherwise.
    scheme: &'static str,
    pub http: reqwest::Client,
    /// The first admin's token, this server's own: no test can drive another test's mcpd.
    admin_token: String,
    /// How far this mcpd's wall clock is set off the machine's (`+10m`), through libfaketime
    /// (its monotonic clock is left alone, as NTP leaves it): a replica with a skewed clock.
    clock_offset: Option<String>,
}

/// libfaketime's preload library (Debian's package `faketime`), for thread-safe programs.
const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// The port mcpd reports in its "mcpd is serving" line (text or JSON logs).
pub fn serving_port(logs: &str) -> Option<u16> {
    let line = logs.lines().find(|l| l.contains("mcpd is serving"))?;
    // Without NO_COLOR the text format colours field names: drop the escape sequences.
    let mut plain = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            plain.push(c);
        }
    }
    let line = plain.as_str();
    let at =
        line.find("listen=").map(|i| i + "listen=".len()).or_else(|| line.find("\"listen\":\"").map(|i| i + 10))?;
    let address: String = line[at..].chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':').collect();
    address.rsplit_once(':')?.1.parse().ok()
}

impl TestServer {
    pub async fn start(kind: StoreKind) -> TestServer {
        Self::start_with_env(kind, &[]).await
    }

    pub async fn start_with_env(kind: StoreKind, env: &[(&str, &str)]) -> TestServer {
        Self::start_with(kind, env, None).await
    }

    /// A server serving TLS (its certificate and key given in `env`), reached through a client
    /// that trusts `ca_pem`.
    pub async fn start_tls(kind: StoreKind, env: &[(&str, &str)], ca_pem: &str) -> TestServer {
        Self::start_with(kind, env, Some(ca_pem)).await
    }

    /// For a test that holds a PostgreSQL transaction, a lock or a stalled statement open: it has
    /// the cluster to itself ([`TestDb::holding_the_cluster`]).
    pub async fn start_holding_the_cluster(kind: StoreKind, env: &[(&str, &str)]) -> TestServer {
        Self::start_on(TestDb::holding_the_cluster(kind).await, kind, env, None, |_| ()).await
    }

    async fn start_with(kind: StoreKind, env: &[(&str, &str)], ca_pem: Option<&str>) -> TestServer {
        Self::start_on(TestDb::new(kind).await, kind, env, ca_pem, |_| ()).await
    }

    /// A server on `db`, a database the test prepared (restored from a backup, say).
    pub async fn start_on_database(db: TestDb, kind: StoreKind, env: &[(&str, &str)]) -> TestServer {
        Self::start_on(db, kind, env, None, |_| ()).await
    }

    /// A server whose data directory `prepare` sets up before mcpd first starts there (mounts a
    /// small filesystem on it, say).
    pub async fn start_prepared(kind: StoreKind, env: &[(&str, &str)], prepare: impl FnOnce(&Path)) -> TestServer {
        Self::start_on(TestDb::new(kind).await, kind, env, None, prepare).await
    }

    async fn start_on(
        db: TestDb,
        kind: StoreKind,
        env: &[(&str, &str)],
        ca_pem: Option<&str>,
        prepare: impl FnOnce(&Path),
    ) -> TestServer {
        let mut http = reqwest::Client::builder().timeout(Duration::from_secs(30));
        if let Some(pem) = ca_pem {
            http = http.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
        }
        let database_url = (kind == StoreKind::Postgres).then(|| db.url.clone());
        // A store restored from another's backup keeps that one's admin: the test says which.
        let admin_token = env
            .iter()
            .find(|(k, _)| *k == "MCPD_BOOTSTRAP_TOKEN")
            .map_or_else(|| format!("mcpd-test-admin-{:032x}", fastrand::u128(..)), |(_, v)| v.to_string());
        let mut server = TestServer {
            db,
            database_url,
            // Chosen by mcpd at its first start (it binds port 0 and says which port it got).
            port: 0,
            child: None,
            starts: 0,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            scheme: if ca_pem.is_some() { "https" } else { "http" },
            http: http.build().unwrap(),
            admin_token,
            clock_offset: None,
        };
        prepare(&server.data_dir());
        server.spawn().await;
        server
    }

    /// A second mcpd on the same PostgreSQL database, as another replica would run.
    pub async fn replica(&self) -> TestServer {
        self.replica_at(self.database_url.clone().expect("replicas share a PostgreSQL database")).await
    }

    /// A replica whose wall clock runs `offset` (`+10m`, `-90s`) off the machine's.
    pub async fn replica_with_clock(&self, offset: &str) -> TestServer {
        assert!(
            Path::new(FAKETIME).exists(),
            "{FAKETIME} is missing: install Debian's faketime (scripts/test.sh does)"
        );
        let url = self.database_url.clone().expect("replicas share a PostgreSQL database");
        self.replica_on(url, Some(offset.to_owned())).await
    }

    /// A replica reaching the same database at `database_url` (through a proxy, say).
    pub async fn replica_at(&self, database_url: String) -> TestServer {
        self.replica_on(database_url, None).await
    }

    async fn replica_on(&self, database_url: String, clock_offset: Option<String>) -> TestServer {
        assert!(self.database_url.is_some(), "replicas share a PostgreSQL database");
        let mut server = TestServer {
            db: self.db.share(),
            database_url: Some(database_url),
            port: 0,
            child: None,
            starts: 0,
            env: self.env.clone(),
            scheme: self.scheme,
            http: self.http.clone(),
            admin_token: self.admin_token.clone(),
            clock_offset,
        };
        server.spawn().await;
        server
    }

    /// The client config mcpd writes at its first start on the embedded default (instead of
    /// `~/.mcpctl/config.json`, which tests leave alone).
    pub fn client_config(&self) -> PathBuf {
        self.db.dir.path().join("client-config.json")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.db.dir.path().join("data")
    }

    /// The URL tests use to look into the store directly.
    pub fn store_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir().join("mcpd.db").display()),
        }
    }

    pub fn log_path(&self, start: usize) -> PathBuf {
        self.db.dir.path().join(format!("mcpd-{start}.log"))
    }

    /// Where the running mcpd (the latest start) writes its stderr.
    pub fn current_log(&self) -> PathBuf {
        self.log_path(self.starts)
    }

    /// Everything every run of mcpd wrote to stderr.
    pub fn logs(&self) -> String {
        (1..=self.starts).map(|i| std::fs::read_to_string(self.log_path(i)).unwrap_or_default()).collect()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.port)
    }

    /// Starts mcpd (again) on the same data, and waits until it answers.
    pub async fn spawn(&mut self) {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path(self.starts)).unwrap();
        let mut command = Command::new(binary("mcpd"));
        command
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(self.data_dir())
            .env_remove("MCPD_DATABASE_URL")
            .env("MCPD_BOOTSTRAP_TOKEN", &self.admin_token)
            // The client config mcpd writes for the embedded default goes here, not to ~/.mcpctl.
            .env("MCPCTL_CONFIG", self.client_config())
            .env("NO_COLOR", "1")
            // Tests drive one token harder than the default per-token rate allows; the rate
            // limit's own test sets one.
            .env("MCPD_RATE_LIMIT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(url) = &self.database_url {
            command.arg("--database-url").arg(url);
        }
        if let Some(offset) = &self.clock_offset {
            command.env("LD_PRELOAD", FAKETIME).env("FAKETIME", offset).env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        for (k, v) in &self.env {
            // An empty value unsets a variable the harness sets by default.
            if v.is_empty() {
                command.env_remove(k);
            } else {
                command.env(k, v);
            }
        }
        self.child = Some(command.spawn().expect("mcpd starts"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.port == 0 {
                // The first start: mcpd binds port 0 and logs the port it got.
                let log = std::fs::read_to_string(self.log_path(self.starts)).unwrap_or_default();
                if let Some(port) = serving_port(&log) {
                    self.port = port;
                }
            }
            if self.port != 0
                && let Ok(r) = self.http.get(self.url("/healthz")).send().await
                && r.status().is_success()
            {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("mcpd exited with {status} at start:\n{}", self.logs());
            }
            assert!(Instant::now() < deadline, "mcpd did not answer within 60 s:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends `signal` (`HUP`, `TERM`, …) to the running mcpd.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("mcpd is running");
        let status = Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status().unwrap();
        assert!(status.success());
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then the exit status (waits up to 30 s).
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("mcpd is running");
        let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("mcpd did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Result<(u16, Value)> {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(&self.admin_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await.expect("mcpd answers")
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await.expect("mcpd answers")
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await.expect("mcpd answers")
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, None).await.expect("mcpd answers")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

impl TestServer {
    /// This server's first admin's token.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The running mcpd's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("mcpd is running").id()
    }

    /// A line of the running mcpd's `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in KiB.
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with(&format!("{field}:"))).unwrap_or_else(|| panic!("no {field}"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

/// A provider standing in for a model (an LLM cannot run here): every request is answered
/// with `content_type` and `body`.
pub async fn canned_provider(content_type: &'static str, body: String) -> String {
    provider(move |_| (content_type, body.clone())).await
}

/// A provider answering each request (its head: request line and headers, as sent) with what
/// `answer` makes of it: a content type and a body.
pub async fn provider(answer: impl Fn(&str) -> (&'static str, String) + Send + Sync + 'static) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let answer = std::sync::Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 8192];
                // The request's head and its body (content-length), then the answer.
                let head = loop {
                    let Ok(n) = socket.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).into_owned();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break text[..end].to_owned();
                        }
                    }
                };
                let (content_type, body) = answer(&head);
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body.as_bytes()).await;
            });
        }
    });
    url
}

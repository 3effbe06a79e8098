//! Benchmark: the inference proxy's overhead. One stub provider (OpenAI's wire format, in this
//! process) is called directly and through mcpd (the release binary, its own process, on SQLite)
//! by the same clients at the same concurrency, in the same run:
//! - requests/s, 64 clients, non-streamed and streamed (target through ÷ direct ≥ 0.8);
//! - latency p99 at 500 requests/s, open loop (target: mcpd adds ≤ 1 ms);
//! - time to the first streamed byte, p99, 64 clients (target: mcpd adds ≤ 1 ms);
//! - mcpd's resident memory while 64 streams are open (target < 60 MiB).
//!
//! The stub answers at once (no model behind it), so what is measured is the proxy's own cost.
//!
//! And the proxy beside the physical limit of one proxy hop on this machine: `wrk` (64
//! keep-alive connections) through mcpd and through an nginx reverse proxy (Debian's
//! `nginx-light`, keepalive upstream) to the same nginx upstream answering a fixed completion,
//! non-streamed and streamed, in the same run: requests/s as a ratio, and the CPU each proxy
//! spends per request (from /proc; targets for mcpd ≤ 20 µs and ≤ 40 µs).
//! Run: `cargo bench -p server --bench inference` (or `scripts/bench inference`); `BENCH_SECONDS`
//! sets each measurement's length (default 5).

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

// Each benchmark reads what it reports of a run.
#[allow(dead_code)]
#[path = "common/wrk.rs"]
mod wrk;

const TOKEN: &str = "bench-admin-token-0123456789abcdefghijklmnop";
const CLIENTS: usize = 64;

fn seconds() -> u64 {
    std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5)
}

/// The stub provider: a fixed answer with usage; streamed as 5 chunks and `[DONE]`. Model
/// `slow` streams a chunk every 100 ms for 4 s (to hold streams open).
async fn stub(axum::Json(body): axum::Json<Value>) -> Response {
    let model = body["model"].as_str().unwrap_or("").to_owned();
    if body["stream"] != json!(true) {
        return axum::Json(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the stub"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}}))
        .into_response();
    }
    let (count, gap) = if model == "slow" { (40, Duration::from_millis(100)) } else { (5, Duration::ZERO) };
    let chunks = futures::stream::unfold(0, move |i| async move {
        if i > count {
            return None;
        }
        if i > 0 && !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
        let data = if i == count {
            "data: [DONE]\n\n".to_owned()
        } else {
            format!(
                "data: {}\n\n",
                json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [{"index": 0, "delta": {"content": "word "}, "finish_reason": null}]})
            )
        };
        Some((Ok::<_, Infallible>(Bytes::from(data)), i + 1))
    });
    ([("content-type", "text/event-stream")], Body::from_stream(chunks)).into_response()
}

async fn start_stub() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(stub));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// mcpd as its own process (release binary, SQLite), with Llms `fast` and `slow` on the stub.
struct Mcpd {
    child: std::process::Child,
    base: String,
    _data: tempfile::TempDir,
}

impl Drop for Mcpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_mcpd(stub: &str, nginx: &str) -> Mcpd {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let data = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_mcpd"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--max-connections", "1024"])
        // One token drives 64 clients at full speed: no per-token rate, no stream cap.
        .args(["--rate-limit", "0", "--max-streams", "100000"])
        .arg("--data-dir")
        .arg(data.path())
        .env("MCPD_BOOTSTRAP_TOKEN", TOKEN)
        .env("MCPD_LOG", "warn")
        .env("MCPCTL_CONFIG", data.path().join("client.json"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("mcpd starts");
    let mcpd = Mcpd { child, base: format!("http://127.0.0.1:{port}"), _data: data };
    let http = reqwest::Client::new();
    let started = Instant::now();
    while http.get(format!("{}/readyz", mcpd.base)).send().await.map_or(true, |r| !r.status().is_success()) {
        assert!(started.elapsed() < Duration::from_secs(60), "mcpd did not get ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let post =
        |path: &str, body: Value| http.post(format!("{}{path}", mcpd.base)).bearer_auth(TOKEN).json(&body).send();
    let r = post("/api/v1/secrets", json!({"name": "stub-key", "data": {"API_KEY": "sk-bench"}})).await.unwrap();
    assert_eq!(r.status(), 201);
    let plain = format!("{nginx}/plain");
    let sse = format!("{nginx}/sse");
    for (name, model, url) in
        [("fast", "m", stub), ("slow", "slow", stub), ("nginx-plain", "m", &plain), ("nginx-sse", "m", &sse)]
    {
        let llm = json!({"name": name, "type": "openai", "model": model, "tier": "fast", "url": url,
                         "apiKeyRef": {"name": "stub-key", "key": "API_KEY"}});
        assert_eq!(post("/api/v1/llms", llm).await.unwrap().status(), 201);
    }
    mcpd
}

/// One target: where to send, with what key and which model name.
#[derive(Clone)]
struct Target {
    url: String,
    token: &'static str,
    model: &'static str,
}

impl Target {
    fn request(&self, http: &reqwest::Client, stream: bool) -> reqwest::RequestBuilder {
        http.post(&self.url).bearer_auth(self.token).json(&json!({
            "model": self.model, "stream": stream, "messages": [{"role": "user", "content": "Say hello"}]}))
    }
}

/// One call: its latency to the first body byte and to the end.
async fn call(http: &reqwest::Client, target: &Target, stream: bool) -> (Duration, Duration) {
    let started = Instant::now();
    let mut response = target.request(http, stream).send().await.expect("an answer");
    assert_eq!(response.status(), 200);
    let mut first = None;
    while let Some(chunk) = response.chunk().await.expect("the body") {
        if first.is_none() && !chunk.is_empty() {
            first = Some(started.elapsed());
        }
    }
    (first.unwrap_or_else(|| started.elapsed()), started.elapsed())
}

struct Load {
    rate: f64,
    first_p99: Duration,
    /// CPU time per request: of this process (clients and stub), and of mcpd.
    cpu_here: Duration,
    cpu_mcpd: Duration,
}

/// CPU time (user + system) a process has used so far, from /proc (in USER_HZ ticks of 10 ms).
fn cpu(pid: Option<u32>) -> Duration {
    let path = pid.map_or_else(|| "/proc/self/stat".to_owned(), |p| format!("/proc/{p}/stat"));
    let stat = std::fs::read_to_string(path).unwrap();
    // Fields after the command's closing parenthesis; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<u64> = rest.split_whitespace().skip(11).take(2).map(|f| f.parse().unwrap()).collect();
    Duration::from_millis((fields[0] + fields[1]) * 10)
}

fn p99(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[(samples.len() * 99 / 100).min(samples.len() - 1)]
}

/// `CLIENTS` closed loops for the measurement's length.
async fn closed_loop(target: &Target, stream: bool, mcpd: u32) -> Load {
    let (here_before, mcpd_before) = (cpu(None), cpu(Some(mcpd)));
    let http = reqwest::Client::builder().pool_max_idle_per_host(CLIENTS).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(seconds());
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (http, target) = (http.clone(), target.clone());
            tokio::spawn(async move {
                let mut firsts = Vec::new();
                while Instant::now() < deadline {
                    firsts.push(call(&http, &target, stream).await.0);
                }
                firsts
            })
        })
        .collect();
    let mut firsts = Vec::new();
    for task in tasks {
        firsts.extend(task.await.unwrap());
    }
    let n = firsts.len() as u32;
    Load {
        rate: firsts.len() as f64 / started.elapsed().as_secs_f64(),
        first_p99: p99(firsts),
        cpu_here: (cpu(None) - here_before) / n,
        cpu_mcpd: (cpu(Some(mcpd)) - mcpd_before) / n,
    }
}

/// Latency p99 at `rate` requests/s, open loop, each request timed from its scheduled start:
/// to its first body byte, and to its end.
async fn open_loop(target: &Target, rate: f64, stream: bool) -> (Duration, Duration) {
    let http = reqwest::Client::builder().pool_max_idle_per_host(CLIENTS).build().unwrap();
    let interval = Duration::from_secs_f64(CLIENTS as f64 / rate);
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_secs(seconds());
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (http, target) = (http.clone(), target.clone());
            let first = started + interval.mul_f64(client as f64 / CLIENTS as f64);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut scheduled = first;
                while scheduled < deadline {
                    tokio::time::sleep_until(scheduled).await;
                    let late = scheduled.elapsed();
                    let (first_byte, end) = call(&http, &target, stream).await;
                    latencies.push((late + first_byte, late + end));
                    scheduled += interval;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    (p99(latencies.iter().map(|l| l.0).collect()), p99(latencies.iter().map(|l| l.1).collect()))
}

/// mcpd's resident memory, from /proc.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc");
    kb / 1024.0
}

/// mcpd's RSS while `CLIENTS` slow streams are open through it (measured half-way through them).
async fn rss_during_streams(mcpd: &Mcpd) -> (f64, f64) {
    let idle = rss_mib(mcpd.child.id());
    let target = Target { url: format!("{}/openai/v1/chat/completions", mcpd.base), token: TOKEN, model: "slow" };
    let http = reqwest::Client::builder().pool_max_idle_per_host(CLIENTS).build().unwrap();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (http, target) = (http.clone(), target.clone());
            tokio::spawn(async move { call(&http, &target, true).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = rss_mib(mcpd.child.id());
    for task in tasks {
        let (_, total) = task.await.unwrap();
        assert!(total > Duration::from_secs(3), "the streams were open while measured");
    }
    (idle, during)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// An nginx of its own (Debian's nginx-light) on a free loopback port, serving `server` (the
/// inside of a `server` block, its `listen` added) and `upstreams` (`upstream` blocks); stopped
/// when dropped.
struct Nginx {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fixed completion the nginx upstream answers, and its streamed form.
const COMPLETION: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from nginx"},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":4,"total_tokens":15}}"#;
const CHUNK: &str = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"word "},"finish_reason":null}]}"#;

impl Nginx {
    fn start(upstreams: &str, server: &str) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let d = dir.path().display();
        let conf = format!(
            "daemon off;\nworker_processes auto;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  keepalive_requests 10000000;\n  client_body_temp_path {d}/body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
             scgi_temp_path {d}/scgi;\n  {upstreams}\n  server {{\n    listen 127.0.0.1:{port};\n    {server}\n  }}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let nginx =
            ["/usr/sbin/nginx", "nginx"].into_iter().find(|p| std::process::Command::new(p).arg("-v").output().is_ok());
        let child = std::process::Command::new(nginx.expect("nginx runs (Debian: apt-get install nginx-light)"))
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nginx starts");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nginx did not listen: {:?}",
                std::fs::read_to_string(dir.path().join("error.log"))
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx { child, port, _dir: dir }
    }

    /// The upstream: the fixed completion under `/plain/`, five chunks and `[DONE]` under `/sse/`.
    fn upstream() -> Nginx {
        let sse = format!("{}data: [DONE]\\n\\n", format!("data: {CHUNK}\\n\\n").repeat(5));
        Nginx::start(
            "",
            &format!(
                "location /plain/ {{ default_type application/json; return 200 '{COMPLETION}'; }}\n    \
                 location /sse/ {{ default_type text/event-stream; return 200 '{sse}'; }}"
            ),
        )
    }

    /// A reverse proxy to `upstream` with a keepalive pool, streaming `/sse/` unbuffered as mcpd
    /// does.
    fn proxy(upstream: &Nginx) -> Nginx {
        Nginx::start(
            &format!("upstream up {{ server 127.0.0.1:{}; keepalive 128; }}", upstream.port),
            "proxy_http_version 1.1;\n    proxy_set_header Connection \"\";\n    \
             location /plain/ { proxy_pass http://up; }\n    location /sse/ { proxy_pass http://up; proxy_buffering off; }",
        )
    }

    /// CPU time of nginx's master and workers so far.
    fn cpu(&self) -> Duration {
        let master = self.child.id();
        let mut total = cpu(Some(master));
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            let ppid = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().nth(1).and_then(|p| p.parse().ok());
            if ppid == Some(master) {
                total += cpu(Some(pid));
            }
        }
        total
    }
}

/// `wrk` POSTing `body` to `url` with `CLIENTS` connections for the measurement's length;
/// requests/s and how many were made.
async fn wrk_post(url: String, token: &str, body: String) -> (f64, u64) {
    let lua = format!(
        "wrk.method = \"POST\"\nwrk.body = [[{body}]]\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
         wrk.headers[\"Authorization\"] = \"Bearer {token}\"\n"
    );
    let measured = wrk::run(&url, 2, CLIENTS, seconds(), lua).await;
    (measured.rate, measured.requests)
}

/// mcpd and nginx, each proxying to the nginx upstream, under the same `wrk` load.
async fn against_nginx(mcpd: &Mcpd, upstream: &Nginx) {
    let proxy = Nginx::proxy(upstream);
    let pid = mcpd.child.id();
    let us = |d: Duration, n: u64| d.as_secs_f64() * 1e6 / n as f64;
    for (stream, path, target) in [(false, "plain", 20.0), (true, "sse", 40.0)] {
        let kind = if stream { "streamed" } else { "non-streamed" };
        let body = json!({"model": format!("nginx-{path}"), "stream": stream,
                          "messages": [{"role": "user", "content": "Say hello"}]})
        .to_string();
        let before = proxy.cpu();
        let (nginx, nginx_n) =
            wrk_post(format!("http://127.0.0.1:{}/{path}/v1/chat/completions", proxy.port), "sk-bench", body.clone())
                .await;
        let nginx_cpu = proxy.cpu() - before;
        let before = cpu(Some(pid));
        let (ours, ours_n) = wrk_post(format!("{}/openai/v1/chat/completions", mcpd.base), TOKEN, body).await;
        let ours_cpu = cpu(Some(pid)) - before;
        println!(
            "| requests/s, {kind}, {CLIENTS} connections (wrk), to an nginx upstream | {ours:.0} | nginx proxying: {nginx:.0} | **{:.2}** | ≥ 0.5 |",
            ours / nginx
        );
        println!(
            "| CPU per proxied request, {kind} | {:.0} µs | nginx: {:.0} µs | {:.1}× nginx's | ≤ {target:.0} µs |",
            us(ours_cpu, ours_n),
            us(nginx_cpu, nginx_n),
            us(ours_cpu, ours_n) / us(nginx_cpu, nginx_n)
        );
    }
}

#[tokio::main]
async fn main() {
    let stub = start_stub().await;
    let upstream = Nginx::upstream();
    let mcpd = start_mcpd(&stub, &format!("http://127.0.0.1:{}", upstream.port)).await;
    let direct = Target { url: format!("{stub}/v1/chat/completions"), token: "sk-bench", model: "m" };
    let through = Target { url: format!("{}/openai/v1/chat/completions", mcpd.base), token: TOKEN, model: "fast" };
    // Warm both paths (connections, caches).
    for target in [&direct, &through] {
        let http = reqwest::Client::new();
        for _ in 0..50 {
            call(&http, target, false).await;
            call(&http, target, true).await;
        }
    }
    println!("inference proxy, {} s per measurement, release build, {CLIENTS} clients", seconds());
    println!("| scenario | through mcpd | directly to the stub (same run) | ratio / added | target |");
    println!("|---|---|---|---|---|");
    for stream in [false, true] {
        let kind = if stream { "streamed" } else { "non-streamed" };
        let pid = mcpd.child.id();
        let d = closed_loop(&direct, stream, pid).await;
        let t = closed_loop(&through, stream, pid).await;
        println!(
            "| requests/s, {kind}, {CLIENTS} clients | {:.0} | {:.0} | **{:.2}** | ≥ 0.8 |",
            t.rate,
            d.rate,
            t.rate / d.rate
        );
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "| CPU per request, {kind}: mcpd / clients and stub | {:.0} µs / {:.0} µs | clients and stub {:.0} µs | mcpd's share of the work {:.0}% | (2 cores: the ceiling of the ratio above) |",
            us(t.cpu_mcpd),
            us(t.cpu_here),
            us(d.cpu_here),
            100.0 * us(t.cpu_mcpd) / (us(t.cpu_mcpd) + us(t.cpu_here))
        );
        if stream {
            println!(
                "| time to first streamed byte, p99, {CLIENTS} clients at full load | {:.2} ms | {:.2} ms | **+{:.2} ms** | ≤ +1 ms |",
                ms(t.first_p99),
                ms(d.first_p99),
                ms(t.first_p99) - ms(d.first_p99)
            );
        }
    }
    let (_, d) = open_loop(&direct, 500.0, false).await;
    let (_, t) = open_loop(&through, 500.0, false).await;
    println!(
        "| latency p99 at 500 requests/s, non-streamed | {:.2} ms | {:.2} ms | **+{:.2} ms** | ≤ +1 ms |",
        ms(t),
        ms(d),
        ms(t) - ms(d)
    );
    let (d, _) = open_loop(&direct, 500.0, true).await;
    let (t, _) = open_loop(&through, 500.0, true).await;
    println!(
        "| time to first streamed byte, p99, at 500 streams/s | {:.2} ms | {:.2} ms | **+{:.2} ms** | ≤ +1 ms |",
        ms(t),
        ms(d),
        ms(t) - ms(d)
    );
    against_nginx(&mcpd, &upstream).await;
    let (idle, during) = rss_during_streams(&mcpd).await;
    println!("| mcpd RSS idle / during {CLIENTS} open streams | {idle:.1} / {during:.1} MiB | — | — | < 60 MiB |");
}

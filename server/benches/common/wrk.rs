//! `wrk`, the C HTTP load generator the throughput rows are measured with (Debian's `wrk`;
//! `scripts/bench` installs it when missing), shared by the benchmarks that drive HTTP load.

use std::time::Duration;

/// What one `wrk` run measured.
pub struct Measured {
    pub rate: f64,
    pub requests: u64,
    pub p99: Duration,
}

/// Runs `wrk` with `threads` threads and `clients` keep-alive connections on `url` for
/// `seconds`, each request shaped by the Lua `script`, on a blocking thread (the runtime keeps
/// serving whatever runs in it). Every answer must be a success.
pub async fn run(url: &str, threads: usize, clients: usize, seconds: u64, script: String) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("request.lua");
    std::fs::write(&path, script).unwrap();
    let url = url.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("wrk")
            .args(["-t", &threads.to_string(), "-c", &clients.to_string(), "-d", &format!("{seconds}s"), "--latency"])
            .arg("-s")
            .arg(&path)
            .arg(&url)
            .output()
            .expect("wrk runs (Debian: apt-get install wrk)")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("Non-2xx"), "some answers were not successes: {text}");
    let field = |prefix: &str| text.lines().find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_owned()));
    let rate = field("Requests/sec:").and_then(|r| r.parse().ok()).unwrap_or_else(|| panic!("no rate: {text}"));
    let p99 = field("99%").and_then(|r| duration(&r)).unwrap_or_else(|| panic!("no p99: {text}"));
    let requests = text.lines().find_map(|l| l.split_once(" requests in ")).and_then(|(n, _)| n.trim().parse().ok());
    Measured { rate, requests: requests.unwrap_or_else(|| panic!("no count: {text}")), p99 }
}

/// A duration as wrk prints it: `812.00us`, `2.36ms`, `1.02s`.
fn duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

//! mcpd's HTTP API as the CLI uses it. Requests that meet a restarting server (connection
//! refused), a rate limit (429) or an unavailable one (503) are retried with exponential
//! backoff and jitter, honouring `Retry-After`, within a bounded time. Every write carries an
//! `Idempotency-Key`, the same on each of its attempts, so a retried write happens once.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::Method;
use reqwest::blocking::{Client as Http, Response};
use serde_json::Value;

const MAX_ATTEMPTS: u32 = 8;
const FIRST_DELAY: Duration = Duration::from_millis(200);
const MAX_DELAY: Duration = Duration::from_secs(5);
/// The largest request body mcpd accepts (its `BODY_LIMIT`).
const BODY_LIMIT: usize = 1024 * 1024;

pub struct Client {
    pub base: String,
    http: Http,
    retry_timeout: Duration,
}

/// A status and a JSON body (`Null` when the body is empty or not JSON).
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The server's own words for a failure.
    pub fn error_message(&self) -> String {
        match self.body["error"]["message"].as_str() {
            Some(message) => crate::output::inert(message),
            None => format!("mcpd answered HTTP {}", self.status),
        }
    }

    /// The body of a successful reply, or the server's message as the error.
    pub fn into_success(self) -> anyhow::Result<Value> {
        if self.is_success() { Ok(self.body) } else { bail!(self.error_message()) }
    }
}

impl Client {
    pub fn new(
        base: String,
        retry_timeout: Duration,
        token: Option<&str>,
        certificate_authority: Option<&std::path::Path>,
    ) -> anyhow::Result<Client> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                .map_err(|_| anyhow::anyhow!("the token holds characters an HTTP header cannot carry"))?;
            // Never printed by the HTTP library's debug output.
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let mut http = Http::builder();
        if let Some(path) = certificate_authority {
            let pem =
                std::fs::read(path).with_context(|| format!("reading the certificate authority {}", path.display()))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("{} is not PEM certificates", path.display()))?;
            if certificates.is_empty() {
                bail!("{} holds no certificate", path.display());
            }
            for certificate in certificates {
                http = http.add_root_certificate(certificate);
            }
        }
        let http = http
            .default_headers(headers)
            // The token goes to the server named, never where a redirect points.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("mcpctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("setting up the HTTP client")?;
        Ok(Client { base, http, retry_timeout })
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Reply> {
        self.send(Method::GET, path, None)
    }

    pub fn send(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Reply> {
        let started = Instant::now();
        let url = format!("{}{path}", self.base);
        let body = body.map(serde_json::to_vec).transpose().context("writing the request body")?;
        if let Some(body) = &body
            && body.len() > BODY_LIMIT
        {
            // mcpd answers 413 and closes the connection before reading such a body, which
            // the client would only see as a broken pipe.
            bail!(
                "the request body is {} bytes; mcpd accepts at most {BODY_LIMIT} (1 MiB): split the documents",
                body.len()
            );
        }
        // One key for every attempt of this write: a retry after a lost answer (a restart, a
        // dropped connection) gets the first answer back instead of changing anything twice.
        let idempotency_key = matches!(method, Method::POST | Method::PUT | Method::DELETE)
            .then(|| format!("mcpctl-{:032x}", fastrand::u128(..)));
        for attempt in 1.. {
            let mut request = self.http.request(method.clone(), &url);
            if let Some(key) = &idempotency_key {
                request = request.header("Idempotency-Key", key);
            }
            if let Some(body) = &body {
                request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone());
            }
            let (problem, retry_after) = match request.send() {
                Ok(response) if matches!(response.status().as_u16(), 429 | 503) => {
                    let retry_after = retry_after(&response);
                    (format!("mcpd answered {}", response.status()), retry_after)
                }
                Ok(response) => return read(response),
                // Not retried: an untrusted certificate stays untrusted.
                Err(e) if let Some(tls) = tls_failure(&e) => bail!(untrusted(&self.base, &tls)),
                Err(e) if e.is_connect() => (format!("cannot reach mcpd at {}: {}", self.base, root_cause(&e)), None),
                Err(e) if e.is_timeout() => bail!("mcpd at {} did not answer {method} {path} in time", self.base),
                Err(e) => bail!("cannot reach mcpd at {}: {}", self.base, root_cause(&e)),
            };
            let delay = retry_after.unwrap_or_else(|| backoff(attempt));
            if attempt >= MAX_ATTEMPTS || started.elapsed() + delay > self.retry_timeout {
                if attempt == 1 {
                    bail!(problem);
                }
                bail!("{problem} (gave up after {attempt} attempts in {:.1}s)", started.elapsed().as_secs_f64());
            }
            std::thread::sleep(delay);
        }
        unreachable!("the retry loop returns or fails")
    }
}

impl Client {
    /// POSTs `body` and returns the answer as a stream to read as it arrives. Only a server that
    /// cannot be reached yet is retried: a request that got through may have started something.
    pub fn stream(&self, path: &str, body: &Value) -> anyhow::Result<Response> {
        self.open_stream(Method::POST, path, Some(body))
    }

    /// GETs `path` as a stream (a watch), retried like [`Client::stream`].
    pub fn watch(&self, path: &str) -> anyhow::Result<Response> {
        self.open_stream(Method::GET, path, None)
    }

    fn open_stream(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Response> {
        let started = Instant::now();
        let url = format!("{}{path}", self.base);
        for attempt in 1.. {
            // No overall timeout: the answer lasts as long as the work it reports on.
            let mut request = self.http.request(method.clone(), &url).timeout(Duration::from_secs(24 * 3600));
            if let Some(body) = body {
                request = request.json(body);
            }
            match request.send() {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => bail!(read(response)?.error_message()),
                Err(e) if let Some(tls) = tls_failure(&e) => bail!(untrusted(&self.base, &tls)),
                Err(e) if e.is_connect() => {
                    let problem = format!("cannot reach mcpd at {}: {}", self.base, root_cause(&e));
                    let delay = backoff(attempt);
                    if attempt >= MAX_ATTEMPTS || started.elapsed() + delay > self.retry_timeout {
                        bail!(problem);
                    }
                    std::thread::sleep(delay);
                }
                Err(e) => bail!("cannot reach mcpd at {}: {}", self.base, root_cause(&e)),
            }
        }
        unreachable!("the retry loop returns or fails")
    }
}

fn read(response: Response) -> anyhow::Result<Reply> {
    let status = response.status().as_u16();
    let text = response.text().context("reading mcpd's answer")?;
    Ok(Reply { status, body: serde_json::from_str(&text).unwrap_or(Value::Null) })
}

/// `Retry-After` in seconds (the HTTP-date form is not used by mcpd or common proxies).
fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// 200 ms, 400 ms, 800 ms, … capped at 5 s, each scaled by a random factor in [0.5, 1.5) so
/// that many clients do not retry in step.
fn backoff(attempt: u32) -> Duration {
    let base = FIRST_DELAY.saturating_mul(1 << (attempt - 1).min(10)).min(MAX_DELAY);
    base.mul_f64(0.5 + fastrand::f64())
}

/// The TLS failure behind `error`, if that is what it is (a certificate not trusted, a name
/// that does not match).
fn tls_failure(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        // An I/O error's `source` skips the error it wraps (which may be another I/O error).
        source = match current.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    None
}

fn untrusted(base: &str, cause: &str) -> String {
    format!(
        "mcpd at {base} presented a TLS certificate this client does not trust ({cause}); \
         pass the CA that signed it with --certificate-authority"
    )
}

/// The innermost cause, which is where the useful words are ("connection refused").
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut source: &(dyn std::error::Error + 'static) = error;
    while let Some(next) = source.source() {
        if let Some(io) = next.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return "connection refused".into();
        }
        source = next;
    }
    source.to_string()
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_grows_and_stays_bounded() {
        for attempt in 1..20 {
            let delay = backoff(attempt);
            assert!(delay >= Duration::from_millis(100) && delay < Duration::from_millis(7500), "{delay:?}");
        }
        assert!(backoff(1) < Duration::from_millis(300));
    }
}

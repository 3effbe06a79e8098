//! The `openbao` backend: values in an OpenBao (or HashiCorp Vault) KV v2 mount, over plain
//! HTTP. A secret lives at `{mount}/data/{pathPrefix}{name}`; each write is a new KV version,
//! written with check-and-set on the version read just before, and the version number is the
//! `value_ref` reads pin.
//!
//! mcpd never overwrites data it did not write, yet takes back a path it wrote and never
//! recorded (a crash between the write and the event). Which paths are mcpd's is kept in mcpd's
//! own database (`openbao_claims`): a path is claimed once it was seen empty and before the
//! first write to it, so writing a new version of a claimed path is one call (check-and-set).
//! A migration claims a whole batch of paths at once, from a LIST of the prefix (one serves a
//! minute of batches); a path claimed that way as empty but written by someone else since is
//! refused at the check-and-set, never overwritten. Paths that
//! carry the `managed-by: mcpd` marker (written by earlier versions) count as mcpd's too.
//!
//! The token is a key of a secret on a plaintext backend. It is cached, read again when that
//! secret's values change, and once more when OpenBao answers 403 (it may have been rotated
//! out of band). It is sent only in the `X-Vault-Token` header: never logged, never in an error.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use domain::secret::SecretData;
use domain::secret_backend::OpenBaoConfig;
use futures::FutureExt;
use futures::future::BoxFuture;
use projections::Database;
use projections::read_models::secrets;
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::{BackendError, BackendResult, Health, SecretBackendDriver, Written, plaintext};

mod claims;
mod token;

use token::CachedToken;

const MANAGED_BY: &str = "managed-by";
const MCPD: &str = "mcpd";
/// How long after `prepare` the token is used without reading its secret again.
const BATCH_TOKEN_TRUST: Duration = Duration::from_secs(5);

pub struct OpenBaoDriver {
    backend: String,
    config: OpenBaoConfig,
    http: reqwest::Client,
    db: Database,
    /// The token and the `value_ref` of the token secret it was read from.
    token: Mutex<Option<CachedToken>>,
    /// Set by `prepare`: until then the cached token is used without looking at its secret
    /// again (a migration's batch; a token OpenBao refuses is still read again at once).
    token_trusted_until: std::sync::Mutex<Option<Instant>>,
    /// What the last `prepare` found out, so the batch's `put`s skip looking claims up.
    prepared: std::sync::Mutex<Prepared>,
}

/// Claims as the last `prepare` left them.
#[derive(Default)]
struct Prepared {
    /// Claimed before that `prepare`: a version there nobody recorded is mcpd's (a crash).
    known: BTreeSet<String>,
    /// Claimed by it, as empty in the listing: data found there now was written by someone else
    /// since the listing, and is refused, never overwritten.
    fresh: BTreeSet<String>,
    /// The prefix's listing and when it was taken; reused for a while (see [`LISTING_REUSE`]).
    listing: Option<(Instant, BTreeSet<String>)>,
}

/// How long one LIST of the prefix serves a run's batches. A stale listing cannot make mcpd
/// overwrite anything: a path it shows empty that is not is refused at the check-and-set.
const LISTING_REUSE: Duration = Duration::from_secs(60);

/// One answer from OpenBao.
struct Answer {
    status: StatusCode,
    body: Value,
}

/// The HTTP client for a backend's `config`: `shared` unless the backend names its own CA
/// (`caCert`, trusted besides the system's roots) or the name its certificate carries
/// (`tlsServerName`, resolved to the url's IP address). Redirects are never followed: the token
/// goes to the configured server and nowhere else.
pub fn client_for(config: &OpenBaoConfig, shared: &reqwest::Client) -> Result<reqwest::Client, String> {
    if config.ca_cert.is_none() && config.tls_server_name.is_none() {
        return Ok(shared.clone());
    }
    let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = &config.ca_cert {
        let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| format!("caCert is not usable PEM: {e}"))?;
        if certificates.is_empty() {
            return Err("caCert holds no certificate".into());
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    if let Some(name) = &config.tls_server_name {
        let addr = domain::secret_backend::url_ip(&config.url)
            .ok_or_else(|| "tlsServerName needs a url that names the server by IP address".to_owned())?;
        builder = builder.resolve(name, addr);
    }
    builder.build().map_err(|e| format!("caCert cannot be used: {e}"))
}

impl OpenBaoDriver {
    pub fn new(backend: &str, config: OpenBaoConfig, http: reqwest::Client, db: Database) -> Self {
        Self {
            backend: backend.to_owned(),
            config,
            http,
            db,
            token: Mutex::new(None),
            token_trusted_until: Default::default(),
            prepared: Default::default(),
        }
    }

    /// `{mount}/{kind}/{pathPrefix}{secret}`, as shown in messages and `externalRef`.
    pub fn location(&self, kind: &str, secret: &str) -> String {
        format!("{}/{kind}/{}{secret}", self.config.mount, self.config.path_prefix)
    }

    fn url(&self, kind: &str, secret: Option<&str>) -> BackendResult<Url> {
        let mut url = Url::parse(&self.config.url).map_err(|e| BackendError::Unreachable {
            backend: self.backend.clone(),
            cause: format!("invalid url: {e}"),
        })?;
        if let Some(name) = &self.config.tls_server_name {
            // The client resolves this name to the url's address (see `client_for`), so the
            // certificate is checked against the name while the connection goes to the address.
            url.set_host(Some(name)).map_err(|e| BackendError::Unreachable {
                backend: self.backend.clone(),
                cause: format!("tlsServerName {name:?}: {e}"),
            })?;
        }
        {
            let mut segments = url.path_segments_mut().map_err(|_| BackendError::Unreachable {
                backend: self.backend.clone(),
                cause: "the url cannot have a path".into(),
            })?;
            segments.pop_if_empty().push("v1");
            if let Some(secret) = secret {
                segments.extend(self.config.mount.split('/').filter(|s| !s.is_empty()));
                segments.push(kind);
                segments.extend(self.config.path_prefix.split('/').filter(|s| !s.is_empty()));
                segments.push(secret);
            } else {
                segments.extend(kind.split('/'));
            }
        }
        Ok(url)
    }

    /// One call, bounded by the backend's timeout. A 403 is retried once with the token read
    /// afresh; other failures become [`BackendError`]s naming the backend and `path`.
    async fn call(&self, method: Method, url: Url, body: Option<&Value>, path: &str) -> BackendResult<Answer> {
        for attempt in 0..2 {
            let token = self.token(attempt > 0).await?;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .timeout(Duration::from_secs(self.config.timeout_seconds))
                .header("X-Vault-Token", sensitive(&token)?);
            if let Some(namespace) = &self.config.namespace {
                request = request.header("X-Vault-Namespace", namespace);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let answer = self.send(request).await?;
            match answer.status {
                StatusCode::FORBIDDEN if attempt == 0 => continue,
                StatusCode::FORBIDDEN => {
                    return Err(BackendError::PermissionDenied {
                        backend: self.backend.clone(),
                        path: path.to_owned(),
                    });
                }
                status if status == StatusCode::SERVICE_UNAVAILABLE && errors(&answer.body).contains("sealed") => {
                    return Err(BackendError::Sealed { backend: self.backend.clone() });
                }
                status if status.is_server_error() => {
                    return Err(BackendError::Failed {
                        backend: self.backend.clone(),
                        path: path.to_owned(),
                        status: status.as_u16(),
                        message: errors(&answer.body),
                    });
                }
                _ => return Ok(answer),
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> BackendResult<Answer> {
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| self.transport_error(&e))?;
        Ok(Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::Null) })
    }

    fn transport_error(&self, error: &reqwest::Error) -> BackendError {
        if error.is_timeout() {
            return BackendError::TimedOut { backend: self.backend.clone(), seconds: self.config.timeout_seconds };
        }
        BackendError::Unreachable { backend: self.backend.clone(), cause: root_cause(error) }
    }

    fn unexpected(&self, path: &str, answer: &Answer) -> BackendError {
        BackendError::Failed {
            backend: self.backend.clone(),
            path: path.to_owned(),
            status: answer.status.as_u16(),
            message: errors(&answer.body),
        }
    }

    /// The path's current version and whether mcpd wrote it; `None` when nothing is there.
    async fn metadata(&self, secret: &str) -> BackendResult<Option<(u64, bool)>> {
        let path = self.location("metadata", secret);
        let answer = self.call(Method::GET, self.url("metadata", Some(secret))?, None, &path).await?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => {
                let data = &answer.body["data"];
                let version = data["current_version"].as_u64().unwrap_or(0);
                let ours = data["custom_metadata"][MANAGED_BY] == MCPD;
                Ok(Some((version, ours)))
            }
            _ => Err(self.unexpected(&path, &answer)),
        }
    }

    /// Writes `data` with check-and-set on `cas`; the new version.
    pub async fn write(&self, secret: &str, data: &SecretData, cas: u64) -> BackendResult<u64> {
        let path = self.location("data", secret);
        let values: BTreeMap<&str, &str> = data.iter().map(|(k, v)| (k.as_str(), v.expose_secret())).collect();
        let body = json!({"data": values, "options": {"cas": cas}});
        let answer = self.call(Method::POST, self.url("data", Some(secret))?, Some(&body), &path).await?;
        if answer.status == StatusCode::BAD_REQUEST && errors(&answer.body).contains("check-and-set") {
            return Err(BackendError::Conflict { backend: self.backend.clone(), path });
        }
        if !answer.status.is_success() {
            return Err(self.unexpected(&path, &answer));
        }
        answer.body["data"]["version"].as_u64().ok_or_else(|| self.unexpected(&path, &answer))
    }
}

impl SecretBackendDriver for OpenBaoDriver {
    fn put<'a>(
        &'a self,
        secret: &'a str,
        data: &'a SecretData,
        current: Option<&'a str>,
    ) -> BoxFuture<'a, BackendResult<Written>> {
        async move {
            let foreign =
                || BackendError::Foreign { backend: self.backend.clone(), path: self.location("data", secret) };
            let (known, fresh) = {
                let mut prepared = self.prepared.lock().expect("claims lock");
                (prepared.known.remove(secret), prepared.fresh.remove(secret))
            };
            let version = if fresh {
                // Claimed as empty by the last listing: anything there now is someone else's.
                match self.write(secret, data, 0).await {
                    Err(BackendError::Conflict { .. }) => {
                        self.unclaim(secret).await?;
                        return Err(foreign());
                    }
                    written => written?,
                }
            } else if !known && self.claimed(&[secret]).await?.is_empty() {
                match self.metadata(secret).await? {
                    None => {
                        // The claim goes first: a crash right after it leaves a path that is
                        // mcpd's (and empty), never data that looks like someone else's.
                        self.claim(&[secret]).await?;
                        match self.write(secret, data, 0).await {
                            Err(BackendError::Conflict { .. }) => {
                                // Someone else wrote there between the look and the write.
                                self.unclaim(secret).await?;
                                return Err(foreign());
                            }
                            written => written?,
                        }
                    }
                    Some((version, true)) => {
                        self.claim(&[secret]).await?;
                        self.write_owned(secret, data, version).await?
                    }
                    Some((_, false)) => return Err(foreign()),
                }
            } else {
                self.write_owned(secret, data, current.and_then(|v| v.parse().ok()).unwrap_or(0)).await?
            };
            Ok(Written { value_ref: version.to_string(), external_ref: Some(self.location("data", secret)) })
        }
        .boxed()
    }

    fn prepare<'a>(&'a self, secrets: &'a [String]) -> BoxFuture<'a, BackendResult<()>> {
        async move {
            // The token is looked at once here, not before each of the batch's writes.
            *self.token_trusted_until.lock().expect("token lock") = None;
            self.token(false).await?;
            *self.token_trusted_until.lock().expect("token lock") = Some(Instant::now() + BATCH_TOKEN_TRUST);
            let names: Vec<&str> = secrets.iter().map(String::as_str).collect();
            let claimed = self.claimed(&names).await?;
            let unclaimed: Vec<&str> = names.into_iter().filter(|s| !claimed.contains(*s)).collect();
            let listing = {
                let mut prepared = self.prepared.lock().expect("claims lock");
                prepared.known = claimed;
                prepared.fresh.clear();
                prepared.listing.as_ref().filter(|(at, _)| at.elapsed() < LISTING_REUSE).map(|(_, l)| l.clone())
            };
            if unclaimed.is_empty() {
                return Ok(());
            }
            // One LIST tells which paths are empty; those are claimed in one commit. The others
            // (and all of them, when the token may not list) are looked at one by one in `put`.
            let existing = match listing {
                Some(listing) => listing,
                None => match self.listed().await? {
                    Some(listing) => {
                        self.prepared.lock().expect("claims lock").listing = Some((Instant::now(), listing.clone()));
                        listing
                    }
                    None => return Ok(()),
                },
            };
            let empty: Vec<&str> = unclaimed.into_iter().filter(|s| !existing.contains(*s)).collect();
            self.claim(&empty).await?;
            self.prepared.lock().expect("claims lock").fresh.extend(empty.iter().map(|s| (*s).to_owned()));
            Ok(())
        }
        .boxed()
    }

    /// Paths claimed as empty by `prepare` and never written are unclaimed: a claim kept there
    /// would let a later write of mcpd's go over data someone else puts at that path.
    fn release<'a>(&'a self, secrets: &'a [String]) -> BoxFuture<'a, BackendResult<()>> {
        async move {
            let unused: Vec<&String> = {
                let mut prepared = self.prepared.lock().expect("claims lock");
                secrets.iter().filter(|s| prepared.fresh.remove(s.as_str())).collect()
            };
            for secret in unused {
                self.unclaim(secret).await?;
            }
            Ok(())
        }
        .boxed()
    }

    fn get<'a>(&'a self, secret: &'a str, value_ref: &'a str) -> BoxFuture<'a, BackendResult<Option<SecretData>>> {
        async move {
            let path = self.location("data", secret);
            let mut url = self.url("data", Some(secret))?;
            url.query_pairs_mut().append_pair("version", value_ref);
            let answer = self.call(Method::GET, url, None, &path).await?;
            if answer.status == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !answer.status.is_success() {
                return Err(self.unexpected(&path, &answer));
            }
            let Some(values) = answer.body["data"]["data"].as_object() else {
                return Ok(None);
            };
            let mut data = SecretData::new();
            for (key, value) in values {
                // A value that is not a string was not written by mcpd; its content is not shown.
                let value = value.as_str().ok_or_else(|| BackendError::Failed {
                    backend: self.backend.clone(),
                    path: path.clone(),
                    status: answer.status.as_u16(),
                    message: format!("the value of key {key:?} is not a string"),
                })?;
                data.insert(key.clone(), SecretString::from(value.to_owned()));
            }
            Ok(Some(data))
        }
        .boxed()
    }

    fn discard<'a>(&'a self, secret: &'a str, value_ref: &'a str) -> BoxFuture<'a, BackendResult<()>> {
        async move {
            if self.config.soft_delete {
                return Ok(());
            }
            let Ok(version) = value_ref.parse::<u64>() else {
                return Ok(());
            };
            let path = self.location("destroy", secret);
            let body = json!({"versions": [version]});
            let answer = self.call(Method::POST, self.url("destroy", Some(secret))?, Some(&body), &path).await?;
            if answer.status.is_success() || answer.status == StatusCode::NOT_FOUND {
                Ok(())
            } else {
                Err(self.unexpected(&path, &answer))
            }
        }
        .boxed()
    }

    fn delete<'a>(&'a self, secret: &'a str, _: &'a str) -> BoxFuture<'a, BackendResult<()>> {
        async move {
            // Soft delete marks the latest version deleted and keeps the history; otherwise the
            // metadata goes, and every version with it.
            let kind = if self.config.soft_delete { "data" } else { "metadata" };
            let path = self.location(kind, secret);
            let answer = self.call(Method::DELETE, self.url(kind, Some(secret))?, None, &path).await?;
            if !(answer.status.is_success() || answer.status == StatusCode::NOT_FOUND) {
                return Err(self.unexpected(&path, &answer));
            }
            if !self.config.soft_delete {
                // The path is gone: whatever is written there next is someone's new data.
                self.unclaim(secret).await?;
            }
            Ok(())
        }
        .boxed()
    }

    fn health(&self) -> BoxFuture<'_, Health> {
        async move {
            // sys/health needs no token: it tells reachability and sealing.
            let url = match self.url("sys/health", None) {
                Ok(url) => url,
                Err(e) => return Health::from_error(&e),
            };
            let request = self.http.get(url).timeout(Duration::from_secs(self.config.timeout_seconds));
            match self.send(request).await {
                Err(e) => return Health::from_error(&e),
                Ok(answer) if answer.body["sealed"] == true => {
                    return Health::from_error(&BackendError::Sealed { backend: self.backend.clone() });
                }
                Ok(_) => {}
            }
            // The token: is it accepted at all?
            let lookup = match self.url("auth/token/lookup-self", None) {
                Ok(url) => url,
                Err(e) => return Health::from_error(&e),
            };
            match self.call(Method::GET, lookup, None, "auth/token/lookup-self").await {
                Ok(answer) if answer.status.is_success() => {
                    Health::ok(format!("reachable at {}, token accepted", self.config.url))
                }
                Ok(answer) => Health::from_error(&self.unexpected("auth/token/lookup-self", &answer)),
                Err(e) => Health::from_error(&e),
            }
        }
        .boxed()
    }
}

/// The token as a header value marked sensitive, so HTTP libraries never print it.
fn sensitive(token: &SecretString) -> BackendResult<reqwest::header::HeaderValue> {
    let mut value = reqwest::header::HeaderValue::from_str(token.expose_secret())
        .map_err(|_| anyhow::anyhow!("the token holds characters a header cannot carry"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// OpenBao's `errors` list, joined; never includes request data.
fn errors(body: &Value) -> String {
    body["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "no error message".into())
}

/// The innermost cause of a transport error ("connection refused").
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

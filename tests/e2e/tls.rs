//! TLS on mcpd's own listener: mcpctl through a test CA, an untrusted CA refused, plain HTTP
//! refused cleanly, SIGHUP swapping the certificate for the next connection while an open one
//! keeps working, and client certificates authenticating their common name's user.

use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ctl::Ctl;
use crate::support::{StoreKind, TestServer};

/// A certificate authority of the test's own.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { issuer: Issuer::new(params, key), pem }
    }

    /// A server certificate for 127.0.0.1: (certificate PEM, key PEM).
    fn server(&self) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        (params.signed_by(&key, &self.issuer).unwrap().pem(), key.serialize_pem())
    }

    /// A client certificate naming `user`, as one PEM holding certificate and key.
    fn client(&self, user: &str) -> reqwest::Identity {
        self.client_with(|params| params.distinguished_name.push(DnType::CommonName, user))
    }

    /// A client certificate with its parameters as `shape` leaves them.
    fn client_with(&self, shape: impl FnOnce(&mut CertificateParams)) -> reqwest::Identity {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        shape(&mut params);
        let certificate = params.signed_by(&key, &self.issuer).unwrap().pem();
        reqwest::Identity::from_pem(format!("{certificate}{}", key.serialize_pem()).as_bytes()).unwrap()
    }
}

fn client_trusting(ca: &Ca) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn health(client: &reqwest::Client, server: &TestServer) -> Result<u16, reqwest::Error> {
    Ok(client.get(server.url("/healthz")).send().await?.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcpd_serves_tls_refuses_plain_http_and_reloads_its_certificate_on_sighup() {
    let files = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (files.path().join("tls.crt"), files.path().join("tls.key"));
    let first = Ca::new("first test CA");
    let (cert, key) = first.server();
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let env = [("MCPD_TLS_CERT", cert_path.to_str().unwrap()), ("MCPD_TLS_KEY", key_path.to_str().unwrap())];
    let server = TestServer::start_tls(StoreKind::Sqlite, &env, &first.pem).await;
    assert!(server.url("").starts_with("https://"));

    // mcpctl with the CA works; without it, it is refused at once and says what to do.
    let ctl = Ctl::new(&server);
    let ca_file = ctl.file("ca.pem", &first.pem);
    let ca_file = ca_file.to_str().unwrap();
    let created = ctl.run(&["create", "secret", "over-tls", "--data", "K=v", "--certificate-authority", ca_file]).ok();
    assert!(created.stdout.contains("over-tls"), "{}", created.stdout);
    let listed = ctl.run(&["get", "secrets", "--certificate-authority", ca_file]).ok();
    assert!(listed.stdout.contains("over-tls"), "{}", listed.stdout);
    let refused = ctl.run(&["get", "secrets"]);
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert!(refused.stderr.contains("does not trust"), "{}", refused.stderr);

    // Plain HTTP to the TLS port: no HTTP answer, the connection is closed promptly.
    let started = Instant::now();
    let mut plain = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    plain.write_all(b"GET /api/v1/secrets HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "mcpd closes a plain-HTTP connection to its TLS port");
    assert!(!answer.starts_with(b"HTTP/"), "no HTTP answer over plain HTTP: {:?}", String::from_utf8_lossy(&answer));
    assert!(started.elapsed() < Duration::from_secs(10));
    let plain_client = reqwest::Client::new();
    let error = plain_client.get(format!("http://127.0.0.1:{}/healthz", server.port)).send().await;
    assert!(error.is_err(), "{error:?}");

    // A client with a connection open before the reload keeps it.
    let kept = client_trusting(&first);
    assert_eq!(health(&kept, &server).await.unwrap(), 200);

    // A certificate from another CA, then SIGHUP: the next connection gets it.
    let second = Ca::new("second test CA");
    let (cert, key) = second.server();
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while health(&client_trusting(&second), &server).await.is_err() {
        assert!(Instant::now() < deadline, "the new certificate was not served:\n{}", server.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(health(&client_trusting(&first), &server).await.is_err(), "new connections get the new certificate");
    assert_eq!(health(&kept, &server).await.unwrap(), 200, "the connection open before SIGHUP still works");
    assert!(server.logs().contains("reloaded the TLS certificate"), "{}", server.logs());

    // A broken key file: the reload fails loudly and the certificate in use stays.
    std::fs::write(&key_path, "not a key").unwrap();
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.logs().contains("could not be reloaded") {
        assert!(Instant::now() < deadline, "{}", server.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(health(&client_trusting(&second), &server).await.unwrap(), 200);
}

testkit::on_both_stores!(a_client_certificate_from_the_client_ca_authenticates_its_common_name);

async fn a_client_certificate_from_the_client_ca_authenticates_its_common_name(kind: StoreKind) {
    let files = tempfile::tempdir().unwrap();
    let serving = Ca::new("server CA");
    let clients = Ca::new("client CA");
    let (cert, key) = serving.server();
    let paths = ["tls.crt", "tls.key", "clients.pem"].map(|name| files.path().join(name));
    std::fs::write(&paths[0], cert).unwrap();
    std::fs::write(&paths[1], key).unwrap();
    std::fs::write(&paths[2], &clients.pem).unwrap();
    let env = [
        ("MCPD_TLS_CERT", paths[0].to_str().unwrap()),
        ("MCPD_TLS_KEY", paths[1].to_str().unwrap()),
        ("MCPD_CLIENT_CA", paths[2].to_str().unwrap()),
    ];
    let server = TestServer::start_tls(kind, &env, &serving.pem).await;
    let (status, body) = server.post("/api/v1/users", json!({"name": "carol"})).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) =
        server.post("/api/v1/rolebindings", json!({"name": "carol-views", "role": "viewer", "users": ["carol"]})).await;
    assert_eq!(status, 201, "{body}");

    let with_identity = |ca: &Ca, user: &str| {
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(serving.pem.as_bytes()).unwrap())
            .identity(ca.client(user))
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    };
    // The certificate's common name is the user, with that user's permissions.
    let carol = with_identity(&clients, "carol");
    let listed = carol.get(server.url("/api/v1/llms")).send().await.unwrap();
    assert_eq!(listed.status(), 200);
    let created =
        carol.post(server.url("/api/v1/secrets")).json(&json!({"name": "x", "data": {"K": "v"}})).send().await;
    let created = created.unwrap();
    assert_eq!(created.status(), 403, "carol is a viewer");
    let refused: serde_json::Value = created.json().await.unwrap();
    assert!(refused["error"]["message"].as_str().unwrap().contains("\"carol\""), "{refused}");
    let admin = with_identity(&clients, "admin");
    let created =
        admin.post(server.url("/api/v1/secrets")).json(&json!({"name": "x", "data": {"K": "v"}})).send().await;
    assert_eq!(created.unwrap().status(), 201);
    let (_, events) = server.get("/api/v1/audit?kind=secret&name=x").await;
    let event = &events["items"][0];
    assert_eq!(event["actor"], "admin", "{events}");
    assert_eq!(event["tokenId"], "client-certificate", "{events}");

    // A common name that is no user: 401. A certificate from another CA: no connection.
    let stranger = with_identity(&clients, "mallory");
    assert_eq!(stranger.get(server.url("/api/v1/llms")).send().await.unwrap().status(), 401);
    let forged = with_identity(&Ca::new("another CA"), "admin");
    assert!(forged.get(server.url("/api/v1/llms")).send().await.is_err(), "a certificate from another CA is refused");

    // A common name holding NUL was a 500 (PostgreSQL refuses the byte): it names nobody. So
    // does a certificate with two common names (which one would it be?).
    let identity = |shape: Box<dyn FnOnce(&mut CertificateParams)>| {
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(serving.pem.as_bytes()).unwrap())
            .identity(clients.client_with(shape))
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    };
    let nul = identity(Box::new(|p| p.distinguished_name.push(DnType::CommonName, "car\u{0}ol")));
    assert_eq!(nul.get(server.url("/api/v1/llms")).send().await.unwrap().status(), 401);
    let two = identity(Box::new(|p| {
        p.distinguished_name.push(DnType::CommonName, "carol");
        p.distinguished_name.push(DnType::CustomDnType(vec![2, 5, 4, 3]), "admin");
    }));
    assert_eq!(two.get(server.url("/api/v1/llms")).send().await.unwrap().status(), 401, "two common names");
    // A user deleted and created again is not the one the old certificate was made for; a
    // certificate made since is hers.
    assert_eq!(server.delete("/api/v1/users/carol").await.0, 204);
    assert_eq!(server.post("/api/v1/users", json!({"name": "carol"})).await.0, 201);
    let binding = json!({"name": "carol-views", "role": "viewer", "users": ["carol"]});
    assert_eq!(server.post("/api/v1/rolebindings", binding).await.0, 201);
    let old = with_identity(&clients, "carol");
    assert_eq!(old.get(server.url("/api/v1/llms")).send().await.unwrap().status(), 401, "the old carol's certificate");
    let new = identity(Box::new(|p| {
        p.distinguished_name.push(DnType::CommonName, "carol");
        p.not_before = time::OffsetDateTime::now_utc();
    }));
    assert_eq!(new.get(server.url("/api/v1/llms")).send().await.unwrap().status(), 200, "a certificate made since");

    // Without a certificate a bearer token still works, and nothing is 401 as before.
    assert_eq!(server.get("/api/v1/llms").await.0, 200);
    let anonymous = client_trusting(&serving);
    assert_eq!(anonymous.get(server.url("/api/v1/llms")).send().await.unwrap().status(), 401);
}

//! Secret values never reach the logs or the event log, even with debug logging on.

use serde_json::json;
use sqlx::{AnyConnection, Connection, Row};

use crate::support::{StoreKind, TestServer};

testkit::on_both_stores!(
    secret_values_never_reach_logs_or_events,
    openbao_tokens_and_values_never_reach_the_logs,
    no_value_or_token_reaches_any_log_table_stream_record_or_stderr_on_any_path,
);

/// The text of the columns of mcpd's tables that could carry a value by mistake.
async fn table_text(conn: &mut AnyConnection) -> String {
    let mut text = String::new();
    for query in [
        "SELECT id || '|' || from_backend || '|' || to_backend || '|' || COALESCE(names, '') || '|' || status || '|' || COALESCE(last_error, '') AS t FROM migrations",
        "SELECT id || '|' || last_used_at AS t FROM token_usage",
        "SELECT location || '|' || backend || '|' || secret AS t FROM openbao_claims",
        "SELECT id || '|' || user_name || '|' || hash || '|' || description AS t FROM tokens",
        // Stored answers of writes sent with an Idempotency-Key (mcpctl sends one with each).
        "SELECT actor || '|' || idempotency_key || '|' || aggregate_id || '|' || COALESCE(body, '') AS t FROM idempotency_keys",
    ] {
        for row in sqlx::query(query).fetch_all(&mut *conn).await.unwrap() {
            text.push_str(&row.get::<String, _>("t"));
            text.push('\n');
        }
    }
    text
}

async fn no_value_or_token_reaches_any_log_table_stream_record_or_stderr_on_any_path(kind: StoreKind) {
    let bao = tokio::task::block_in_place(testkit::openbao::shared);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let prefix = format!("scan{nanos}/");
    let good = bao.token_for_prefix(&prefix).await;
    let denied = bao.token_with_policy("path \"sys/nothing\" { capabilities = [\"read\"] }").await;
    let wrong = format!("mcpd_tok-0123456789abcdef_{}", "f00d".repeat(16));
    let values = [
        "sk-plain-TRACE-7731",
        "sk-plain-rotated-TRACE-7732",
        "sk-bao-TRACE-9924",
        "sk-denied-TRACE-3141",
        "sk-foreign-TRACE-2718",
        "sk-migrated-TRACE-5512",
        "sk-ctl-TRACE-1618",
        "sk-ctl-denied-TRACE-1619",
        "sk-sealed-TRACE-4669",
    ];
    let server = TestServer::start_with_env(kind, &[("MCPD_LOG", "trace")]).await;
    let backend = |name: &str, token_secret: &str| {
        json!({"name": name, "type": "openbao", "config": {"url": bao.addr, "pathPrefix": prefix,
               "tokenSecretRef": {"name": token_secret, "key": "token"}}})
    };
    assert_eq!(server.post("/api/v1/secrets", json!({"name": "bao-token", "data": {"token": good}})).await.0, 201);
    assert_eq!(server.post("/api/v1/secrets", json!({"name": "denied-token", "data": {"token": denied}})).await.0, 201);
    assert_eq!(server.post("/api/v1/secretbackends", backend("bao", "bao-token")).await.0, 201);
    assert_eq!(server.post("/api/v1/secretbackends", backend("denied", "denied-token")).await.0, 201);
    // Plaintext: written, rotated, revealed.
    assert_eq!(server.post("/api/v1/secrets", json!({"name": "p", "data": {"K": values[0]}})).await.0, 201);
    assert_eq!(server.put("/api/v1/secrets/p", json!({"data": {"K": values[1]}})).await.0, 200);
    assert_eq!(server.get("/api/v1/secrets/p?reveal=true").await.1["data"]["K"], values[1]);
    // OpenBao: a good write, a denied one, foreign data in the way.
    assert_eq!(
        server.post("/api/v1/secrets", json!({"name": "b", "backend": "bao", "data": {"K": values[2]}})).await.0,
        201
    );
    let (status, body) =
        server.post("/api/v1/secrets", json!({"name": "d", "backend": "denied", "data": {"K": values[3]}})).await;
    assert_eq!(status, 502, "{body}");
    let mut responses = body.to_string();
    bao.root(reqwest::Method::POST, &format!("secret/data/{prefix}foreign"), Some(json!({"data": {"X": "theirs"}})))
        .await;
    let (status, body) =
        server.post("/api/v1/secrets", json!({"name": "foreign", "backend": "bao", "data": {"K": values[4]}})).await;
    assert_eq!(status, 409, "{body}");
    responses.push_str(&body.to_string());
    // A sealed server of its own.
    let sealed = tokio::task::block_in_place(testkit::openbao::OpenBao::start);
    let sealed_token = sealed.token_for_prefix("mcpd/").await;
    assert_eq!(
        server.post("/api/v1/secrets", json!({"name": "sealed-token", "data": {"token": sealed_token}})).await.0,
        201
    );
    let sealed_backend = json!({"name": "sealed", "type": "openbao", "config": {"url": sealed.addr,
                                "tokenSecretRef": {"name": "sealed-token", "key": "token"}}});
    assert_eq!(server.post("/api/v1/secretbackends", sealed_backend).await.0, 201);
    assert_eq!(sealed.root(reqwest::Method::PUT, "sys/seal", None).await.0, 204);
    let (status, body) =
        server.post("/api/v1/secrets", json!({"name": "s", "backend": "sealed", "data": {"K": values[8]}})).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.to_string().contains("sealed"), "{body}");
    responses.push_str(&body.to_string());
    // A migration that fails on the denied backend: its stream, run record and history.
    assert_eq!(server.post("/api/v1/secrets", json!({"name": "m", "data": {"K": values[5]}})).await.0, 201);
    let stream = server
        .http
        .post(server.url("/api/v1/secrets/migrate"))
        .bearer_auth(server.admin_token())
        .json(&json!({"from": "default", "to": "denied", "names": ["m"]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(stream.contains("denied"), "the run failed on the denied backend: {stream}");
    responses.push_str(&stream);
    let (_, runs) = server.get("/api/v1/migrations").await;
    let run = runs["items"][0]["name"].as_str().unwrap().to_owned();
    responses.push_str(&server.get(&format!("/api/v1/migrations/{run}")).await.1.to_string());
    for path in ["/api/v1/secrets/m/history", "/api/v1/secrets/p/history", "/api/v1/audit?limit=100"] {
        responses.push_str(&server.get(path).await.1.to_string());
    }
    // A wrong token presented to a 401.
    let refused = server.http.get(server.url("/api/v1/llms")).bearer_auth(&wrong).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    // mcpctl: a write that works and one that fails; its stderr.
    let ctl = crate::ctl::Ctl::new(&server);
    ctl.run(&["create", "secret", "viactl", "--data", &format!("K={}", values[6])]).ok();
    let failed =
        ctl.run(&["create", "secret", "viactl2", "--backend", "denied", "--data", &format!("K={}", values[7])]);
    assert_eq!(failed.code, 1, "{}", failed.stdout);
    let stderr = failed.stderr;

    let logs = server.logs();
    assert!(logs.contains("hyper_util::client") && logs.contains("TRACE"), "trace logs were captured: {logs}");
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(&server.store_url()).await.unwrap();
    let tables = table_text(&mut conn).await;
    assert!(tables.contains(&run) && tables.contains("|bao|b"), "the scan sees the tables: {tables}");
    assert!(tables.contains("|viactl|{"), "the scan sees mcpctl's stored answer: {tables}");
    let query = match kind {
        StoreKind::Sqlite => "SELECT payload || metadata AS t FROM events",
        StoreKind::Postgres => "SELECT payload::text || metadata::text AS t FROM events",
    };
    let events: String =
        sqlx::query(query).fetch_all(&mut conn).await.unwrap().iter().map(|r| r.get::<String, _>("t")).collect();
    for (what, text) in [
        ("logs", &logs),
        ("responses", &responses),
        ("tables", &tables),
        ("events", &events),
        ("mcpctl stderr", &stderr),
    ] {
        for value in values {
            assert!(!text.contains(value), "{value} leaked into the {what}");
        }
        for (name, token) in
            [("the OpenBao token", &good), ("the denied token", &denied), ("a wrong mcpd token", &wrong)]
        {
            assert!(!text.contains(token.as_str()), "{name} leaked into the {what}");
        }
    }
}

async fn openbao_tokens_and_values_never_reach_the_logs(kind: StoreKind) {
    let bao = tokio::task::block_in_place(testkit::openbao::shared);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let prefix = format!("leak{nanos}/");
    let token = bao.token_for_prefix(&prefix).await;
    let server = TestServer::start_with_env(kind, &[("MCPD_LOG", "trace")]).await;
    server.post("/api/v1/secrets", json!({"name": "bao-token", "data": {"token": token}})).await;
    let backend = json!({"name": "bao", "type": "openbao", "config": {"url": bao.addr, "pathPrefix": prefix,
                         "tokenSecretRef": {"name": "bao-token", "key": "token"}}});
    assert_eq!(server.post("/api/v1/secretbackends", backend).await.0, 201);
    let value = "sk-only-in-openbao-4242";
    assert_eq!(
        server.post("/api/v1/secrets", json!({"name": "k", "backend": "bao", "data": {"K": value}})).await.0,
        201
    );
    assert_eq!(server.get("/api/v1/secrets/k?reveal=true").await.1["data"]["K"], value);
    server.get("/api/v1/secretbackends/bao/health").await;
    let logs = server.logs();
    assert!(logs.contains("hyper_util::client"), "trace logs cover the HTTP client's work: {logs}");
    assert!(!logs.contains(&token), "the OpenBao token leaked into the logs");
    assert!(!logs.contains(value), "a value leaked into the logs");
}

async fn secret_values_never_reach_logs_or_events(kind: StoreKind) {
    let server = TestServer::start_with_env(kind, &[("MCPD_LOG", "debug")]).await;
    let values = ["sk-proj-Zq81LmX04", "org-9f8e7d6c5b", "sk-rotated-AA11BB22", "48151623"];

    let (status, _) = server
        .post("/api/v1/secrets", json!({"name": "openai", "data": {"API_KEY": values[0], "ORG": values[1]}}))
        .await;
    assert_eq!(status, 201);
    let llm = json!({"name": "gpt", "type": "openai", "model": "gpt-5", "tier": "heavy",
                     "apiKeyRef": {"name": "openai", "key": "API_KEY"}});
    assert_eq!(server.post("/api/v1/llms", llm).await.0, 201);
    assert_eq!(
        server.put("/api/v1/secrets/openai", json!({"data": {"API_KEY": values[2], "ORG": values[1]}})).await.0,
        200
    );
    // Refused writes carry values too: a duplicate, a dropped key in use, a non-string value.
    assert_eq!(server.post("/api/v1/secrets", json!({"name": "openai", "data": {"API_KEY": values[0]}})).await.0, 409);
    assert_eq!(server.put("/api/v1/secrets/openai", json!({"data": {"X": values[0]}})).await.0, 409);
    let (status, body) = server.post("/api/v1/secrets", json!({"name": "pin", "data": {"PIN": 48151623}})).await;
    assert_eq!(status, 422);
    assert!(!body.to_string().contains(values[3]));
    let (_, revealed) = server.get("/api/v1/secrets/openai?reveal=true").await;
    assert_eq!(revealed["data"]["API_KEY"], values[2]);

    let logs = server.logs();
    assert!(logs.contains("POST"), "debug logs were captured: {logs}");
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(&server.store_url()).await.unwrap();
    let query = match kind {
        StoreKind::Sqlite => "SELECT payload || metadata AS t FROM events",
        StoreKind::Postgres => "SELECT payload::text || metadata::text AS t FROM events",
    };
    let events: String =
        sqlx::query(query).fetch_all(&mut conn).await.unwrap().iter().map(|r| r.get::<String, _>("t")).collect();
    assert!(events.contains("SecretUpdated"), "the scan sees the events: {events}");
    for value in values {
        assert!(!logs.contains(value), "{value} leaked into the logs");
        assert!(!events.contains(value), "{value} leaked into the event log");
    }
}

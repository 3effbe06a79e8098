//! Regression tests for the second black-box probe (issue 24): a token for another user is
//! impersonation; a provider cannot carry the key past redaction in any representation; an
//! Llm sends its callers' requests only where its author may; a dry run issues no token;
//! idempotent replays are authorised and belong to one incarnation of a user. (Watches that
//! outlive revocation, and memory, are end-to-end tests: `tests/e2e`.)

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method, StatusCode};
use base64::Engine;
use serde_json::{Value, json};

use crate::rbac::user_with;
use crate::security::role;
use crate::support::{StoreKind, TestApp, bootstrap};

testkit::on_both_stores!(
    a_token_for_another_user_needs_impersonation_and_tells_nothing_of_who_exists,
    a_dry_run_issues_no_token,
    an_idempotent_replay_is_authorised_and_belongs_to_one_incarnation_of_its_user,
    no_answer_of_a_provider_carries_the_key_in_any_representation,
    an_llm_sends_its_callers_requests_only_where_its_author_may_read_them,
    invented_tokens_are_looked_up_at_a_bounded_rate_per_peer,
    streams_are_shared_per_user_and_a_streamed_answer_has_a_longest_length,
    refused_requests_are_audited_bounded_in_rate_and_never_with_a_token,
    a_stream_its_client_leaves_is_counted_with_the_providers_own_usage,
);

/// Finding 1: a user who may only create tokens issued one for a brand-new user (who held
/// nothing, so "covers every permission the target holds" passed), then acted with every
/// grant that user received later.
async fn a_token_for_another_user_needs_impersonation_and_tells_nothing_of_who_exists(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    t.seed_llm().await;
    role(&t, "token-issuer", json!([{"resources": ["tokens"], "verbs": ["create"]}])).await;
    let issuer = user_with(&t, "issuer", Some("token-issuer")).await;
    assert_eq!(t.post("/api/v1/users", json!({"name": "newhire"})).await.status, StatusCode::CREATED);
    let issue = async |token: &str, user: &str| {
        t.call_as(Some(token), Method::POST, "/api/v1/tokens", Some(json!({"user": user, "expires": "3650d"}))).await
    };
    let r = issue(&issuer, "newhire").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a token for a user holding nothing (yet): {:?}", r.body);
    assert!(r.body.get("token").is_none());
    assert!(r.message().contains("impersonate:users"), "{}", r.message());
    // Which users exist is not the issuer's to learn: the same answer for every other name.
    let missing = issue(&issuer, "nosuchuser").await;
    let admin = issue(&issuer, "admin").await;
    assert_eq!((missing.status, admin.status), (StatusCode::FORBIDDEN, StatusCode::FORBIDDEN));
    assert_eq!(missing.message().replace("nosuchuser", "X"), admin.message().replace("admin", "X"));
    // Granting newhire later hands the issuer nothing: there is no token of theirs.
    let binding = json!({"name": "newhire-editor", "role": "editor", "users": ["newhire"]});
    assert_eq!(t.post("/api/v1/rolebindings", binding).await.status, StatusCode::CREATED);
    assert_eq!(issue(&issuer, "newhire").await.status, StatusCode::FORBIDDEN);
    let tokens = t.get("/api/v1/tokens").await.body["items"].clone();
    assert!(!tokens.to_string().contains("\"newhire\""), "no token of newhire exists: {tokens}");
    // One's own token needs only `create` on tokens.
    let own = issue(&issuer, "issuer").await;
    assert_eq!(own.status, StatusCode::CREATED, "{:?}", own.body);

    // Impersonation is a permission of its own, scoped by name: a CI role may act as ci-bot
    // and nobody else, whatever ci-bot holds.
    assert_eq!(t.post("/api/v1/users", json!({"name": "ci-bot"})).await.status, StatusCode::CREATED);
    let binding = json!({"name": "ci-bot-editor", "role": "editor", "users": ["ci-bot"]});
    assert_eq!(t.post("/api/v1/rolebindings", binding).await.status, StatusCode::CREATED);
    role(
        &t,
        "ci",
        json!([{"resources": ["tokens"], "verbs": ["create"]},
               {"operations": ["impersonate:users"], "names": ["ci-bot"]}]),
    )
    .await;
    let ci = user_with(&t, "ci", Some("ci")).await;
    let bot = issue(&ci, "ci-bot").await;
    assert_eq!(bot.status, StatusCode::CREATED, "{:?}", bot.body);
    let bot = bot.body["token"].as_str().unwrap().to_owned();
    assert_eq!(t.call_as(Some(&bot), Method::GET, "/api/v1/whoami", None).await.body["user"], "ci-bot");
    assert_eq!(t.call_as(Some(&bot), Method::GET, "/api/v1/secrets", None).await.status, StatusCode::OK);
    for other in ["admin", "newhire", "issuer"] {
        assert_eq!(issue(&ci, other).await.status, StatusCode::FORBIDDEN, "ci may not act as {other}");
    }
    // Admin holds it for everyone.
    assert_eq!(t.post("/api/v1/tokens", json!({"user": "newhire"})).await.status, StatusCode::CREATED);
    let r = t.call_as(Some(&issuer), Method::GET, "/api/v1/auth/can-i?verb=impersonate:users&name=newhire", None).await;
    assert_eq!(r.body["allowed"], false, "{:?}", r.body);
}

/// Finding 6: `POST /api/v1/tokens?dryRun=true` answered 201 with a real, working token.
async fn a_dry_run_issues_no_token(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let before = t.get("/api/v1/tokens").await.body["items"].as_array().unwrap().len();
    let events_before = t.get("/api/v1/audit?limit=500").await.body["items"].as_array().unwrap().len();
    let r = t.post("/api/v1/tokens?dryRun=true", json!({"user": "admin", "expires": "30d", "description": "d"})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(r.body.get("token").is_none(), "a dry run issues no token: {:?}", r.body);
    assert_eq!((r.body["kind"].as_str(), r.body["user"].as_str()), (Some("token"), Some("admin")), "{:?}", r.body);
    assert_eq!(r.body["description"], "d");
    assert!(r.body["expiresAt"].is_string(), "{:?}", r.body);
    assert_eq!(t.get("/api/v1/tokens").await.body["items"].as_array().unwrap().len(), before);
    assert_eq!(t.get("/api/v1/audit?limit=500").await.body["items"].as_array().unwrap().len(), events_before);
    // Every rule is checked as for a real issue.
    let r = t.post("/api/v1/tokens?dryRun=true", json!({"user": "nosuchuser"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    let r = t.post("/api/v1/tokens?dryRun=true", json!({"user": "admin", "expires": "0d"})).await;
    assert_eq!((r.status, r.fields()), (StatusCode::BAD_REQUEST, vec!["expires".to_owned()]));
    let _ = user_with(&t, "plain", None).await;
    role(&t, "token-issuer", json!([{"resources": ["tokens"], "verbs": ["create"]}])).await;
    let issuer = user_with(&t, "issuer", Some("token-issuer")).await;
    let r = t.call_as(Some(&issuer), Method::POST, "/api/v1/tokens?dryRun=true", Some(json!({"user": "plain"}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
}

/// An `Idempotency-Key` write as `token`.
async fn keyed(t: &TestApp, token: &str, key: &str, body: Value) -> crate::support::Reply {
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/api/v1/secrets")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    t.send_raw(request).await
}

/// Finding 7: a replay was answered before authorisation (a user whose binding was deleted
/// still got the stored 201 document), and keys belonged to a user's name (a user deleted and
/// created again under it got the first one's answers).
async fn an_idempotent_replay_is_authorised_and_belongs_to_one_incarnation_of_its_user(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let alice = user_with(&t, "alice", Some("editor")).await;
    let body = json!({"name": "alice-secret", "data": {"K": "v"}});
    let first = keyed(&t, &alice, "k-1", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let again = keyed(&t, &alice, "k-1", body.clone()).await;
    assert_eq!((again.status, again.headers.get("idempotent-replayed").is_some()), (StatusCode::CREATED, true));

    assert_eq!(t.delete("/api/v1/rolebindings/alice-binding").await.status, StatusCode::NO_CONTENT);
    let unbound = keyed(&t, &alice, "k-1", body.clone()).await;
    assert_eq!(unbound.status, StatusCode::FORBIDDEN, "replayed to a user who may no longer: {:?}", unbound.body);
    assert!(unbound.headers.get("idempotent-replayed").is_none());
    assert!(!unbound.body.to_string().contains("alice-secret\",\"kind"), "{:?}", unbound.body);

    // Another alice: none of the first one's keys are hers.
    assert_eq!(t.delete("/api/v1/users/alice").await.status, StatusCode::NO_CONTENT);
    assert_eq!(t.delete("/api/v1/secrets/alice-secret").await.status, StatusCode::NO_CONTENT);
    let alice = user_with(&t, "alice", Some("editor")).await;
    let fresh = keyed(&t, &alice, "k-1", body.clone()).await;
    assert_eq!(fresh.status, StatusCode::CREATED, "the key is new to this alice: {:?}", fresh.body);
    assert!(fresh.headers.get("idempotent-replayed").is_none(), "nothing replayed: {:?}", fresh.headers);
    let replayed = keyed(&t, &alice, "k-1", body).await;
    assert_eq!(replayed.headers.get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    // A different request under her key is still refused, naming the key she sent.
    let other = keyed(&t, &alice, "k-1", json!({"name": "other", "data": {"K": "v"}})).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", other.body);
    assert!(other.message().contains("\"k-1\""), "{}", other.message());
}

/// The key the probe hid, and the provider answers that tried to carry it out.
const KEY: &str = "sk-HIDDEN-SECRET-0003";

/// One canned answer of the stand-in provider.
#[derive(Clone)]
struct Canned {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

/// A stand-in for a provider (an LLM cannot run here) that answers every call with what the
/// test set, on every path mcpd calls.
#[derive(Clone)]
struct Provider {
    url: String,
    answer: Arc<Mutex<Canned>>,
}

impl Provider {
    async fn start() -> Provider {
        let answer = Arc::new(Mutex::new(Canned { status: 200, headers: vec![], body: "{}".into() }));
        let shared = answer.clone();
        let reply = move || {
            let canned = shared.lock().unwrap().clone();
            async move {
                let mut headers = HeaderMap::new();
                for (name, value) in canned.headers {
                    headers.insert(name, value.parse().unwrap());
                }
                (StatusCode::from_u16(canned.status).unwrap(), headers, canned.body)
            }
        };
        let app = axum::Router::new().fallback(reply);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Provider { url, answer }
    }

    fn set(&self, status: u16, headers: Vec<(&'static str, String)>, body: impl Into<String>) {
        *self.answer.lock().unwrap() = Canned { status, headers, body: body.into() };
    }
}

/// Every way the key could be read out of `text` by whoever receives it: literally, after JSON
/// decoding (of the text, and of each server-sent event's data), after percent-decoding, and
/// after base64-decoding any run that looks like base64.
fn leaks(text: &str) -> Option<String> {
    let mut decoded = vec![text.to_owned()];
    let strings = |value: &Value, out: &mut Vec<String>| {
        fn walk(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::String(s) => out.push(s.clone()),
                Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
                Value::Object(o) => o.iter().for_each(|(k, v)| {
                    out.push(k.clone());
                    walk(v, out)
                }),
                _ => {}
            }
        }
        walk(value, out);
    };
    let mut more = Vec::new();
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        strings(&v, &mut more);
    }
    for line in text.lines() {
        if let Some(data) = line.strip_prefix("data:")
            && let Ok(v) = serde_json::from_str::<Value>(data.trim())
        {
            strings(&v, &mut more);
        }
    }
    decoded.extend(more);
    let percent: Vec<String> = decoded
        .iter()
        .map(|d| {
            form_urlencoded::parse(format!("x={}", d.replace('&', "%26")).as_bytes())
                .map(|(_, v)| v.into_owned())
                .collect()
        })
        .collect();
    decoded.extend(percent);
    let b64 = regex::Regex::new("[A-Za-z0-9+/_-]{12,}={0,2}").unwrap();
    let mut encoded = Vec::new();
    for d in &decoded {
        for m in b64.find_iter(d) {
            for engine in [base64::engine::general_purpose::STANDARD, base64::engine::general_purpose::URL_SAFE] {
                let run = m.as_str().trim_end_matches('=');
                for cut in 0..4.min(run.len()) {
                    let part = &run[cut..];
                    let padded = format!("{part}{}", "=".repeat((4 - part.len() % 4) % 4));
                    if let Ok(bytes) = engine.decode(padded) {
                        encoded.push(String::from_utf8_lossy(&bytes).into_owned());
                    }
                }
            }
        }
    }
    decoded.extend(encoded);
    decoded.into_iter().find(|d| d.contains(KEY))
}

/// A reply's status line, headers and body, as a client would see them.
fn seen(r: &crate::support::Reply) -> String {
    let headers: Vec<String> = r.headers.iter().map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or(""))).collect();
    let body = match &r.body {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    format!("{}\n{}\n\n{body}", r.status, headers.join("\n"))
}

/// Finding 2: a provider answering with the key JSON-escaped (`sk\u002d…`) had it decoded and
/// passed on: in the 502, in the Llm's health that any viewer reads, in warmup answers, in
/// the translated error of an anthropic Llm; a 200 body, a stream and a passed-on header
/// carried it too. An editor without reveal read the key that way.
async fn no_answer_of_a_provider_carries_the_key_in_any_representation(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let provider = Provider::start().await;
    assert_eq!(
        t.post("/api/v1/secrets", json!({"name": "hidden", "data": {"API_KEY": KEY}})).await.status,
        StatusCode::CREATED
    );
    for (name, provider_type) in [("x401", "openai"), ("a401", "anthropic")] {
        let llm = json!({"name": name, "type": provider_type, "model": "m", "tier": "fast", "url": provider.url,
                         "apiKeyRef": {"name": "hidden", "key": "API_KEY"}});
        assert_eq!(t.post("/api/v1/llms", llm).await.status, StatusCode::CREATED);
    }
    let editor = user_with(&t, "ed", Some("editor")).await;
    let as_editor =
        async |method: Method, path: &str, body: Option<Value>| t.call_as(Some(&editor), method, path, body).await;
    let chat = |model: &str, stream: bool| json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
    let message = json!({"model": "a401", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let escaped: String = KEY.replace('-', "\\u002d");
    let percent = KEY.replace('-', "%2D");
    let every_char: String = KEY.chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("user:{KEY}"));
    let mut checked = 0;
    let mut check = |what: &str, r: &crate::support::Reply| {
        checked += 1;
        if let Some(found) = leaks(&seen(r)) {
            panic!("{what}: the key reached the caller in {found:?}:\n{}", seen(r));
        }
    };

    // Errors: JSON-escaped, escaped character by character, percent-encoded, base64.
    for (i, form) in [&escaped, &every_char, &percent, &b64].into_iter().enumerate() {
        let body = json!({"error": {"message": "placeholder", "type": "invalid_request_error"}}).to_string();
        let body = body.replace("placeholder", &format!("invalid key {form}"));
        for status in [401, 429, 500, 400] {
            provider.set(status, vec![("x-ratelimit-debug", format!("key={form}"))], body.clone());
            for model in ["x401", "a401"] {
                let r = as_editor(Method::POST, "/openai/v1/chat/completions", Some(chat(model, false))).await;
                assert!(!r.status.is_success(), "{r:?}", r = r.body);
                check(&format!("form {i}, {status} from {model}, OpenAI surface"), &r);
                let health = as_editor(Method::GET, &format!("/api/v1/llms/{model}"), None).await;
                check(&format!("form {i}, {model}'s health after a {status}"), &health);
            }
            let r = as_editor(Method::POST, "/anthropic/v1/messages", Some(message.clone())).await;
            check(&format!("form {i}, {status}, Anthropic surface"), &r);
            let r = as_editor(Method::POST, "/api/v1/llms/x401/warmup", None).await;
            check(&format!("form {i}, {status}, warmup"), &r);
        }
    }
    // The probe's own finding, before anything else: it reached the health message decoded.
    provider.set(401, vec![], format!(r#"{{"error":{{"message":"invalid key {escaped}"}}}}"#));
    let r = as_editor(Method::POST, "/openai/v1/chat/completions", Some(chat("x401", false))).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{:?}", r.body);
    let health = as_editor(Method::GET, "/api/v1/llms/x401", None).await.body["health"]["message"].clone();
    assert!(health.as_str().unwrap().contains("invalid key [redacted]"), "{health}");

    // Answers that succeed: a body, a header, streams of each surface and the translated one.
    let completion = |content: &str| {
        json!({"id": "c", "object": "chat.completion", "created": 0, "model": "m",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
        .to_string()
    };
    let anthropic = |content: &str| {
        json!({"id": "m", "type": "message", "role": "assistant", "model": "m",
               "content": [{"type": "text", "text": content}], "stop_reason": "end_turn",
               "usage": {"input_tokens": 1, "output_tokens": 1}})
        .to_string()
    };
    for form in [KEY, &escaped, &percent, &b64] {
        let header = vec![("x-ratelimit-debug", form.to_owned()), ("content-type", "application/json".into())];
        provider.set(200, header.clone(), completion(&format!("your key is {form}")));
        let r = as_editor(Method::POST, "/openai/v1/chat/completions", Some(chat("x401", false))).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        check("a 200 chat completion", &r);
        provider.set(200, header.clone(), anthropic(&format!("your key is {form}")));
        for (path, body) in
            [("/openai/v1/chat/completions", chat("a401", false)), ("/anthropic/v1/messages", message.clone())]
        {
            let r = as_editor(Method::POST, path, Some(body)).await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            check(&format!("a 200 from an anthropic Llm on {path}"), &r);
        }
        let delta = json!({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                           "choices": [{"index": 0, "delta": {"content": "PLACEHOLDER"}}]})
        .to_string()
        .replace("PLACEHOLDER", form);
        let sse = vec![("content-type", "text/event-stream".to_owned()), ("x-ratelimit-debug", form.to_owned())];
        provider.set(200, sse.clone(), format!("data: {delta}\n\ndata: [DONE]\n\n"));
        let r = as_editor(Method::POST, "/openai/v1/chat/completions", Some(chat("x401", true))).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        check("an OpenAI stream", &r);
        let text =
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "PLACEHOLDER"}})
                .to_string()
                .replace("PLACEHOLDER", form);
        let events = format!(
            "event: message_start\ndata: {}\n\nevent: content_block_start\ndata: {}\n\nevent: content_block_delta\ndata: {text}\n\nevent: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n",
            json!({"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant", "model": "m", "content": [], "usage": {"input_tokens": 1, "output_tokens": 0}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        );
        provider.set(200, sse, events);
        let mut streamed = message.clone();
        streamed["stream"] = json!(true);
        for (path, body) in [("/openai/v1/chat/completions", chat("a401", true)), ("/anthropic/v1/messages", streamed)]
        {
            let r = as_editor(Method::POST, path, Some(body)).await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            check(&format!("an anthropic stream on {path}"), &r);
        }
    }
    assert!(checked > 90, "every answer was looked at ({checked})");
}

/// Finding 3: Llms without a key went through no guard, so an editor could add one to a tier
/// (`aaa-evil`, tried first by name) at a server of theirs and read every `tier:fast` prompt,
/// the admin's included; and the allowlist counted the origin only, so `?` and `#` picked any
/// path at an allowed origin.
async fn an_llm_sends_its_callers_requests_only_where_its_author_may_read_them(kind: StoreKind) {
    let allowed = Provider::start().await;
    let attacker = Provider::start().await;
    let db = testkit::TestDb::new(kind).await;
    let upstreams = app::service::guard::Upstreams::new(&[format!("{}/v1", allowed.url)]).unwrap();
    let app =
        server::App::open_with(&db.url, std::time::Duration::from_secs(10), &bootstrap(), upstreams).await.unwrap();
    let t = TestApp { app, db };
    let keyless =
        |name: &str, url: &str| json!({"name": name, "type": "vllm", "model": "m", "tier": "fast", "url": url});
    assert_eq!(
        t.post("/api/v1/llms", keyless("zzz-good", &format!("{}/v1", allowed.url))).await.status,
        StatusCode::CREATED
    );
    let editor = user_with(&t, "ed", Some("editor")).await;
    let as_editor =
        async |method: Method, path: &str, body: Value| t.call_as(Some(&editor), method, path, Some(body)).await;

    let refused = [
        attacker.url.clone(),
        format!("{}/hijack", attacker.url),
        format!("{}/hijack", allowed.url),
        format!("{}/v10", allowed.url),
        format!("{}/v1/../hijack", allowed.url),
        format!("{}/hijack?x=/v1", allowed.url),
        format!("{}/hijack#/v1", allowed.url),
        format!("{}/v1?x=", allowed.url),
        format!("{}/v1#", allowed.url),
    ];
    for url in &refused {
        for dry_run in ["?dryRun=true", ""] {
            let r = as_editor(Method::POST, &format!("/api/v1/llms{dry_run}"), keyless("aaa-evil", url)).await;
            assert!(
                r.status == StatusCode::FORBIDDEN || r.status == StatusCode::BAD_REQUEST,
                "an editor's keyless Llm at {url}{dry_run}: {:?}",
                r.body
            );
        }
        let r = as_editor(Method::PUT, "/api/v1/llms/zzz-good", keyless("zzz-good", url)).await;
        assert!(
            r.status == StatusCode::FORBIDDEN || r.status == StatusCode::BAD_REQUEST,
            "repointed to {url}: {:?}",
            r.body
        );
    }
    // The admin's tier call reaches the admin's Llm, and nothing reaches the attacker.
    allowed.set(200, vec![("content-type", "application/json".into())], json!({"id": "c", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "from the allowed upstream"}, "finish_reason": "stop"}]}).to_string());
    attacker.set(200, vec![("content-type", "application/json".into())], json!({"id": "c", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "from the attacker"}, "finish_reason": "stop"}]}).to_string());
    let r = t
        .post(
            "/openai/v1/chat/completions",
            json!({"model": "tier:fast", "messages": [{"role": "user", "content": "the admin's prompt"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["choices"][0]["message"]["content"], "from the allowed upstream", "{:?}", r.body);
    assert_eq!(r.headers["x-mcpd-llm"], "zzz-good");

    // At or below the allowed path, an editor may.
    for (name, url) in [("team-a", format!("{}/v1", allowed.url)), ("team-b", format!("{}/v1/team-b", allowed.url))] {
        let r = as_editor(Method::POST, "/api/v1/llms", keyless(name, &url)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{url}: {:?}", r.body);
    }
    // And who may read every secret may send anywhere (the admin).
    let r = t.post("/api/v1/llms", keyless("admins-own", &attacker.url)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}

/// `GET path` with `token`, as if from `peer`.
async fn from_peer(t: &TestApp, peer: &str, token: &str, path: &str) -> crate::support::Reply {
    let mut request = axum::http::Request::get(path)
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let peer: std::net::SocketAddr = peer.parse().unwrap();
    request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
    t.send_raw(request).await
}

/// Finding 10: 401s were not limited: 30,000 random well-formed tokens, each a database
/// look-up, slowed every other client. Now a peer may cause only so many look-ups that find
/// nothing (20 a second, a burst of 100); past it, tokens mcpd does not hold are refused 429
/// before the database is asked, while tokens mcpd holds keep working from that address, and
/// other addresses are untouched.
async fn invented_tokens_are_looked_up_at_a_bounded_rate_per_peer(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let seed = fastrand::u64(..);
    eprintln!("seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut invent = || format!("mcpd_tok-{:016x}_{:064x}", rng.u64(..), rng.u128(..));
    // The access cache follows every event so far (as its background task does), so that the
    // admin's token, read next, is held from then on.
    t.app.services.access.follow(&t.app.services.store).await.unwrap();
    assert_eq!(from_peer(&t, "10.0.0.1:1", testkit::ADMIN_TOKEN, "/api/v1/whoami").await.status, StatusCode::OK);
    let (mut refused, mut limited) = (0, None);
    for sent in 1..=1000 {
        let r = from_peer(&t, "10.0.0.1:1", &invent(), "/api/v1/whoami").await;
        match r.status {
            StatusCode::UNAUTHORIZED => refused += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                limited = Some((sent, r));
                break;
            }
            other => panic!("an invented token answered {other}: {:?}", r.body),
        }
    }
    let (sent, r) = limited.expect("a flood of invented tokens is limited");
    assert!(refused >= 100, "the burst is looked up ({refused} of {sent})");
    assert!(r.headers.get("retry-after").is_some(), "{:?}", r.headers);
    assert_eq!(r.body["error"]["code"], "RateLimited", "{:?}", r.body);
    // A token mcpd holds costs no look-up: it works from the flooding address too.
    assert_eq!(from_peer(&t, "10.0.0.1:2", testkit::ADMIN_TOKEN, "/api/v1/whoami").await.status, StatusCode::OK);
    // Another address has its own allowance.
    assert_eq!(from_peer(&t, "10.0.0.2:1", &invent(), "/api/v1/whoami").await.status, StatusCode::UNAUTHORIZED);
}

/// Finding 8: one pool of streams for everyone, and no cap on a stream's length: a user with
/// only run:infer held every stream to a never-ending upstream, and every admin watch and
/// stream was refused (503). Now each user holds a share, and a streamed answer ends with an
/// error event once it has gone on as long as one may.
async fn streams_are_shared_per_user_and_a_streamed_answer_has_a_longest_length(kind: StoreKind) {
    use tower::ServiceExt;
    let db = testkit::TestDb::new(kind).await;
    let tuning = app::limits::Tuning {
        max_streams: 4,
        max_streams_per_user: 2,
        max_stream_duration: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let wait = std::time::Duration::from_secs(10);
    let app = server::App::open_tuned(&db.url, wait, &bootstrap(), Default::default(), tuning).await.unwrap();
    let t = TestApp { app, db };
    let viewer = user_with(&t, "streamer", Some("viewer")).await;
    let watch = async |token: &str| {
        let request = axum::http::Request::get("/api/v1/secrets?watch=true")
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .unwrap();
        t.app.router().oneshot(request).await.unwrap()
    };
    let first = watch(&viewer).await;
    let second = watch(&viewer).await;
    assert_eq!((first.status(), second.status()), (StatusCode::OK, StatusCode::OK));
    let third = watch(&viewer).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS, "a user's share is two");
    let admin = watch(testkit::ADMIN_TOKEN).await;
    assert_eq!(admin.status(), StatusCode::OK, "the rest is there for others");
    drop(first);
    assert_eq!(watch(&viewer).await.status(), StatusCode::OK, "a closed stream gives its place back");

    // A provider that sends one chunk and then nothing, for ever (but for the idle timeout,
    // which the Llm sets far away).
    let app = axum::Router::new().fallback(|| async {
        let chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                           "choices": [{"index": 0, "delta": {"content": "never ending"}}]});
        let first = futures::stream::once(async move { Ok::<_, std::io::Error>(format!("data: {chunk}\n\n")) });
        let body = axum::body::Body::from_stream(futures::StreamExt::chain(first, futures::stream::pending()));
        ([("content-type", "text/event-stream")], body)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let llm = json!({"name": "endless", "type": "vllm", "model": "m", "tier": "fast", "url": url,
                     "extra": {"timeoutSeconds": "600"}});
    assert_eq!(t.post("/api/v1/llms", llm).await.status, StatusCode::CREATED);
    let chat = json!({"model": "endless", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let r = t.post("/openai/v1/chat/completions", chat).await;
    assert_eq!(r.status, StatusCode::OK);
    let text = r.body.as_str().unwrap_or_default().to_owned();
    assert!(text.contains("never ending"), "{text}");
    assert!(text.contains("--max-stream-secs"), "the answer ends with an error event: {text}");
}

/// Finding 14: after a user's 403s, `mcpctl audit --actor alice` said "No events found": the
/// event log records changes only. Refused requests now have an audit stream of their own:
/// who (or which token id), which peer, what, when, why; never a token; at a bounded rate, the
/// rest counted in rows that say how many.
async fn refused_requests_are_audited_bounded_in_rate_and_never_with_a_token(kind: StoreKind) {
    let t = TestApp::start(kind).await;
    let alice = user_with(&t, "alice", Some("viewer")).await;
    let alice_id = t.get("/api/v1/tokens").await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["user"] == "alice")
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .unwrap();
    let r =
        t.call_as(Some(&alice), Method::POST, "/api/v1/secrets", Some(json!({"name": "x", "data": {"K": "v"}}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let invented_secret = "0123456789abcdef".repeat(4);
    let invented = format!("mcpd_tok-00000000deadbeef_{invented_secret}");
    assert_eq!(t.call_as(Some(&invented), Method::GET, "/api/v1/llms", None).await.status, StatusCode::UNAUTHORIZED);
    let everything = async || t.get("/api/v1/audit/denials?limit=1000").await;
    let mut page = everything().await;
    let start = std::time::Instant::now();
    while page.body["items"].as_array().map_or(0, Vec::len) < 2 {
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "not recorded: {:?}", page.body);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        page = everything().await;
    }
    let forbidden = t.get("/api/v1/audit/denials?actor=alice").await.body["items"][0].clone();
    assert_eq!((forbidden["status"].as_u64(), forbidden["method"].as_str()), (Some(403), Some("POST")), "{forbidden}");
    assert_eq!(forbidden["path"], "/api/v1/secrets");
    assert_eq!(forbidden["tokenId"], json!(alice_id));
    assert!(forbidden["reason"].as_str().unwrap().contains("alice"), "{forbidden}");
    let refused = t.get("/api/v1/audit/denials?status=401").await.body["items"][0].clone();
    assert_eq!(
        (refused["actor"].clone(), refused["tokenId"].clone()),
        (Value::Null, json!("tok-00000000deadbeef")),
        "{refused}"
    );
    assert_eq!(refused["reason"], "unknown token", "the precise reason, which the client is not told");
    assert!(!page.body.to_string().contains(&invented_secret), "never the token: {:?}", page.body);
    assert!(!page.body.to_string().contains(&alice[alice.len() - 40..]), "never the token: {:?}", page.body);
    assert_eq!(t.get("/api/v1/audit/denials?status=500").await.status, StatusCode::BAD_REQUEST);

    // A flood: every refusal is accounted for, one by one up to the rate, the rest in rows
    // saying how many (no row of its own each, so it cannot fill the disk).
    const FLOOD: u64 = 1000;
    for _ in 0..FLOOD {
        assert_eq!(t.call_as(Some(&alice), Method::GET, "/api/v1/users", None).await.status, StatusCode::FORBIDDEN);
    }
    let accounted = |body: &Value| -> (u64, u64) {
        let items = body["items"].as_array().unwrap();
        let one_by_one = items.iter().filter(|i| i["suppressed"] == 0).count() as u64;
        (one_by_one, items.iter().map(|i| i["suppressed"].as_u64().unwrap()).sum())
    };
    let start = std::time::Instant::now();
    loop {
        let body = t.get("/api/v1/audit/denials?limit=1000").await.body;
        let (one_by_one, counted) = accounted(&body);
        if one_by_one + counted == FLOOD + 2 {
            assert!(counted > 0, "a flood this fast is counted, not recorded row by row ({one_by_one} rows)");
            eprintln!("{one_by_one} refusals recorded one by one, {counted} counted");
            break;
        }
        assert!(one_by_one + counted < FLOOD + 2, "more than were refused: {one_by_one} + {counted}");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "not all accounted for: {one_by_one} + {counted}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A provider answering every call with `parts` of a server-sent-event stream, each sent after
/// its delay; then nothing more for ever when `endless`, else the end.
async fn sse_provider(parts: Vec<(u64, String)>, endless: bool) -> String {
    use futures::StreamExt;
    let app = axum::Router::new().fallback(move || {
        let parts = parts.clone();
        async move {
            let sent = futures::stream::iter(parts).then(|(delay, text)| async move {
                tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                Ok::<_, std::io::Error>(text)
            });
            let body = if endless {
                axum::body::Body::from_stream(sent.chain(futures::stream::pending()))
            } else {
                axum::body::Body::from_stream(sent)
            };
            ([("content-type", "text/event-stream")], body)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// Finding 9: a client that hung up before the final usage chunk was counted with no tokens and
/// no error, and the Anthropic surface counted the first output count it saw. Now the rest of
/// a stream whose client left is read for the provider's own usage (for a few seconds: it
/// follows the last words at once), and a stream still going then is counted as an error with
/// what was seen.
async fn a_stream_its_client_leaves_is_counted_with_the_providers_own_usage(kind: StoreKind) {
    use futures::StreamExt;
    use tower::ServiceExt;
    let t = TestApp::start(kind).await;
    let chunk = |content: Value, usage: Value| {
        let choices = if content.is_null() { json!([]) } else { json!([{"index": 0, "delta": {"content": content}}]) };
        format!(
            "data: {}\n\n",
            json!({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": choices, "usage": usage})
        )
    };
    let openai = sse_provider(
        vec![
            (0, chunk(json!("hello"), Value::Null)),
            (300, chunk(Value::Null, json!({"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}))),
            (0, "data: [DONE]\n\n".into()),
        ],
        false,
    )
    .await;
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let start = event(
        "message_start",
        json!({"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant",
        "model": "m", "content": [], "usage": {"input_tokens": 11, "output_tokens": 1}}}),
    );
    let delta = event(
        "content_block_delta",
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}),
    );
    let end = event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}}),
    ) + &event("message_stop", json!({"type": "message_stop"}));
    let anthropic = sse_provider(vec![(0, start.clone()), (0, delta.clone()), (300, end)], false).await;
    let endless = sse_provider(vec![(0, chunk(json!("going on"), Value::Null))], true).await;
    for (name, provider_type, url) in [("o", "vllm", &openai), ("a", "anthropic", &anthropic), ("e", "vllm", &endless)]
    {
        let mut llm = json!({"name": name, "type": provider_type, "model": "m", "tier": "fast", "url": url});
        if provider_type == "anthropic" {
            assert_eq!(
                t.post("/api/v1/secrets", json!({"name": "k", "data": {"API_KEY": "sk-a"}})).await.status,
                StatusCode::CREATED
            );
            llm["apiKeyRef"] = json!({"name": "k", "key": "API_KEY"});
        }
        assert_eq!(t.post("/api/v1/llms", llm).await.status, StatusCode::CREATED);
    }
    // Each client reads the first part of its answer, then hangs up.
    let leave = async |path: &str, body: Value| {
        let request = axum::http::Request::post(path)
            .header("authorization", format!("Bearer {}", testkit::ADMIN_TOKEN))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .unwrap();
        let response = t.app.router().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut stream = response.into_body().into_data_stream();
        let first = stream.next().await.unwrap().unwrap();
        assert!(!first.is_empty());
    };
    let messages = json!([{"role": "user", "content": "hi"}]);
    leave("/openai/v1/chat/completions", json!({"model": "o", "stream": true, "messages": messages})).await;
    leave("/anthropic/v1/messages", json!({"model": "a", "stream": true, "max_tokens": 9, "messages": messages})).await;
    leave("/openai/v1/chat/completions", json!({"model": "e", "stream": true, "messages": messages})).await;
    // One Anthropic stream read to its end, too.
    let whole = t
        .post("/anthropic/v1/messages", json!({"model": "a", "stream": true, "max_tokens": 9, "messages": messages}))
        .await;
    assert_eq!(whole.status, StatusCode::OK);

    let usage = async |llm: &str| {
        let rows = t.get(&format!("/api/v1/usage?llm={llm}")).await.body["items"].clone();
        let row = &rows[0];
        (row["requests"].as_i64(), row["errors"].as_i64(), row["inputTokens"].as_i64(), row["outputTokens"].as_i64())
    };
    let begun = std::time::Instant::now();
    for (llm, want) in [("o", (1, 0, 7, 5)), ("a", (2, 0, 22, 10)), ("e", (1, 1, 0, 0))] {
        let want = (Some(want.0), Some(want.1), Some(want.2), Some(want.3));
        loop {
            let seen = usage(llm).await;
            if seen == want {
                break;
            }
            assert!(begun.elapsed() < std::time::Duration::from_secs(60), "llm {llm}: {seen:?}, not {want:?}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

//! Each Llm's health as this replica last saw it: from warmups (`POST
//! /api/v1/llms/{name}/warmup`, `mcpd serve --warmup`) and from every proxied call. Shown as
//! the STATUS column of `mcpctl get llms -o wide`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use domain::llm::{LlmSpec, LlmType};
use projections::read_models::Record;
use secrecy::SecretString;
use serde_json::{Value, json};
pub use wire::llm::LlmHealth;

use super::upstream::{self, Failure};

/// The states shown.
pub const READY: &str = "Ready";
pub const UNREACHABLE: &str = "Unreachable";
pub const TIMED_OUT: &str = "TimedOut";
pub const KEY_REJECTED: &str = "KeyRejected";
pub const FAILING: &str = "Failing";
pub const CLIENT_SIDE: &str = "ClientSide";

#[derive(Clone, Default)]
pub struct Board {
    inner: Arc<Mutex<HashMap<String, LlmHealth>>>,
}

impl Board {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LlmHealth>> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn get(&self, llm: &str) -> Option<LlmHealth> {
        self.lock().get(llm).cloned()
    }

    pub fn set(&self, llm: &str, status: &str, message: impl Into<String>) {
        let health = LlmHealth {
            status: status.to_owned(),
            message: message.into(),
            checked_at: jiff::Timestamp::now().to_string(),
        };
        self.lock().insert(llm.to_owned(), health);
    }

    /// Whether the last look at `llm` found it failing (tiers try such Llms last).
    pub fn failing(&self, llm: &str) -> bool {
        self.lock().get(llm).is_some_and(|h| h.status != READY)
    }

    /// What a provider's HTTP status says about the Llm.
    pub fn answered(&self, llm: &str, status: u16, message: &str) {
        match status {
            200..=299 | 400 | 404 | 413 | 422 => self.set(llm, READY, ""),
            401 | 403 => self.set(llm, KEY_REJECTED, format!("the provider refused the key ({status}): {message}")),
            _ => self.set(llm, FAILING, format!("the provider answered {status}: {message}")),
        }
    }

    pub fn failed(&self, llm: &str, failure: &Failure) {
        match failure {
            Failure::Unreachable(why) => self.set(llm, UNREACHABLE, why.clone()),
            Failure::TimedOut(after) => self.set(llm, TIMED_OUT, format!("no answer within {}s", after.as_secs_f64())),
        }
    }
}

/// Warms `llm` up and records what it found: loads the model on ollama, checks that vllm
/// serves it, and checks reachability and the key on the hosted types with a cheap call (the
/// model list). Answers the health found.
pub async fn warm(
    client: &reqwest::Client,
    board: &Board,
    llm: &Record<LlmSpec>,
    key: Option<&SecretString>,
) -> LlmHealth {
    let spec = &llm.spec;
    let started = Instant::now();
    let request = match spec.provider {
        LlmType::GeminiCli => {
            board.set(&llm.name, CLIENT_SIDE, "gemini-cli Llms run on the client; mcpd does not call them");
            return board.get(&llm.name).expect("just set");
        }
        LlmType::Ollama => {
            // An empty prompt loads the model and keeps it loaded.
            let base = upstream::base(spec).map(|b| b.trim_end_matches("/v1").to_owned());
            base.map(|b| {
                client.post(format!("{b}/api/generate")).json(&json!({"model": spec.model, "keep_alive": "30m"}))
            })
        }
        _ => upstream::endpoint(spec, "models").map(|url| client.get(url)),
    };
    let request = match request {
        Ok(request) => request.headers(upstream::auth_headers(spec.provider, key, &Default::default())),
        Err(e) => {
            board.set(&llm.name, FAILING, e.to_string());
            return board.get(&llm.name).expect("just set");
        }
    };
    let timeout = upstream::timeout(spec);
    match upstream::send(request, timeout).await {
        Err(failure) => board.failed(&llm.name, &failure),
        Ok(response) => {
            let status = response.status().as_u16();
            let body = tokio::time::timeout(timeout, response.bytes()).await.ok().and_then(Result::ok);
            let redactor = upstream::redactor(key);
            let body = upstream::redact(redactor.as_ref(), body.unwrap_or_default());
            let served = |b: &[u8]| {
                let list: Value = serde_json::from_slice(b).unwrap_or_default();
                let data = list.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
                data.iter().any(|m| m.get("id").and_then(Value::as_str) == Some(&spec.model))
            };
            if (200..300).contains(&status) && spec.provider == LlmType::Vllm && !served(&body) {
                board.set(&llm.name, FAILING, format!("the server does not serve model {:?}", spec.model));
            } else {
                let message = upstream::redact_text(redactor.as_ref(), super::provider_message(&body));
                board.answered(&llm.name, status, &message);
                if status < 300 {
                    let took = started.elapsed().as_millis();
                    board.set(&llm.name, READY, format!("warmed up in {took} ms"));
                }
            }
        }
    }
    board.get(&llm.name).expect("just set")
}

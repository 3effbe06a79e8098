//! Warming an Llm up: a cheap call that loads the model or checks the endpoint and the key, its
//! finding put on the health board (`app::observed::health`).

use std::time::Instant;

use app::observed::health::{Board, LlmHealth, LlmStatus};
use domain::llm::{LlmSpec, LlmType};
use projections::read_models::Record;
use secrecy::SecretString;
use serde_json::{Value, json};

use super::upstream::{self, Failure};

/// Puts what a failed call to `llm` found on the board.
pub fn note_failure(board: &Board, llm: &str, failure: &Failure) {
    match failure {
        Failure::Unreachable(why) => board.unreachable(llm, why),
        Failure::TimedOut(after) => board.timed_out(llm, *after),
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
            board.set(&llm.name, LlmStatus::ClientSide, "gemini-cli Llms run on the client; mcpd does not call them");
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
            board.set(&llm.name, LlmStatus::Failing, e.to_string());
            return board.get(&llm.name).expect("just set");
        }
    };
    let timeout = upstream::timeout(spec);
    match upstream::send(request, timeout).await {
        Err(failure) => note_failure(board, &llm.name, &failure),
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
                board.set(&llm.name, LlmStatus::Failing, format!("the server does not serve model {:?}", spec.model));
            } else {
                let message = upstream::redact_text(redactor.as_ref(), super::provider_message(&body));
                board.answered(&llm.name, status, &message);
                if status < 300 {
                    let took = started.elapsed().as_millis();
                    board.set(&llm.name, LlmStatus::Ready, format!("warmed up in {took} ms"));
                }
            }
        }
    }
    board.get(&llm.name).expect("just set")
}

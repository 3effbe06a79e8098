//! Warming an Llm up: a cheap call that loads the model or checks the endpoint and the key, its
//! finding put on the health board (`app::observed::health`).

use std::time::Instant;

use app::observed::health::{Board, LlmHealth, LlmStatus};
use domain::llm::{LlmSpec, LlmType};
use projections::read_models::Record;
use secrecy::SecretString;
use serde_json::{Value, json};

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use domain::llm::Tier;

use super::upstream::{self, Failure};
use app::context::RequestContext;
use app::error::ApiError;
use app::service::Services;

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

/// `POST /api/v1/llms/{name}/warmup`: loads the model (ollama), checks the endpoint and the key
/// (the others); answers the Llm's health. Needs `run:infer` on the Llm: it sends the key.
pub(super) async fn warmup(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !ctx.permissions.may_infer(&name) {
        return Err(ApiError::Forbidden(format!("user {:?} may not run:infer on llm {name:?}", ctx.actor)));
    }
    let llm = <app::service::Llms as app::service::ResourceKind>::get(&s, &name, false).await?;
    let health = warm_one(&s, &llm).await?;
    Ok(Json(json!({"name": name, "health": health})))
}

/// Warms `llm` up with its key (see [`warm`]); a key that cannot be resolved marks it failing.
pub async fn warm_one(s: &Services, llm: &Record<LlmSpec>) -> Result<LlmHealth, ApiError> {
    let key = match s.api_key_of(llm).await {
        Ok(key) => key,
        Err(e) => {
            s.inference.health.set(&llm.name, LlmStatus::Failing, format!("resolving the key: {e}"));
            return Err(e);
        }
    };
    Ok(warm(&s.inference.client, &s.inference.health, llm, key.as_deref()).await)
}

/// Warms up the Llms of `tier` (every Llm when `None`) in the background.
pub fn warm_in_background(s: &Services, tier: Option<Tier>) {
    let s = s.clone();
    tokio::spawn(async move {
        let all = match s.llm_records().await {
            Ok(all) => all,
            Err(e) => return tracing::warn!(error = %e, "warmup: listing the Llms failed"),
        };
        let chosen = all.iter().filter(|l| tier.is_none_or(|t| l.spec.tier == t));
        let warmed = futures::future::join_all(chosen.map(|l| async {
            let outcome = warm_one(&s, l).await;
            (l.name.clone(), outcome)
        }))
        .await;
        for (name, outcome) in warmed {
            match outcome {
                Ok(h) => tracing::info!(llm = %name, status = %h.status, message = %h.message, "warmup"),
                Err(e) => tracing::warn!(llm = %name, error = %e, "warmup failed"),
            }
        }
    });
}

//! The inference proxy: OpenAI-compatible (`/openai/v1`) and Anthropic-compatible
//! (`/anthropic/v1`) endpoints. A client names an Llm (or a tier), authenticates with its mcpd
//! token, and mcpd calls the provider with the key it resolves itself: provider keys never
//! leave the server. See docs/inference.md.
//!
//! Who may: `run:infer`, scoped by a rule's `names` to the Llms it names. Where a key goes is
//! decided when the Llm is written (the guard of `service::guard`), never by the caller here:
//! the request body's `model` only picks among Llms, and redirects are never followed.

mod body;
mod call;
mod candidates;
pub mod labels;
mod meter;
pub mod redact;
mod relay;
mod report;
mod sse;
mod translate;
pub mod upstream;
mod warm;

pub use warm::{warm_in_background, warm_one};

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::{Extension, http::Method};
use domain::llm::{LlmSpec, Tier};
use futures::StreamExt;
use projections::read_models::Record;
use serde_json::{Value, json};

use self::body::{field, fields, read_body};
use self::call::{Attempt, try_llm};
use self::candidates::candidates;
use app::context::RequestContext;
use app::error::ApiError;
use app::service::Services;

/// The response header naming the Llm that answered.
pub const LLM_HEADER: &str = "x-mcpd-llm";

/// The largest inference request body accepted (long conversations, images).
pub const BODY_LIMIT: usize = 32 * 1024 * 1024;

/// The largest non-streamed answer passed on.
const ANSWER_LIMIT: usize = 64 * 1024 * 1024;

/// The API a client speaks to mcpd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    OpenAi,
    Anthropic,
}

impl Surface {
    fn path(self) -> &'static str {
        match self {
            Surface::OpenAi => "/openai/v1",
            Surface::Anthropic => "/anthropic/v1",
        }
    }
}

/// The provider's own message in an error body (OpenAI's and Anthropic's shapes), else the
/// body's start.
pub(crate) fn provider_message(body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let message = parsed.as_ref().and_then(|b| {
        let error = b.get("error")?;
        error.get("message").and_then(Value::as_str).map(str::to_owned).or_else(|| error.as_str().map(str::to_owned))
    });
    message.unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(500).collect())
}

/// `POST /openai/v1/chat/completions`
async fn chat_completions(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    request: Request,
) -> Response {
    proxy(&s, &ctx, Surface::OpenAi, request).await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /anthropic/v1/messages`
async fn messages(State(s): State<Services>, Extension(ctx): Extension<RequestContext>, request: Request) -> Response {
    proxy(&s, &ctx, Surface::Anthropic, request).await.unwrap_or_else(IntoResponse::into_response)
}

async fn proxy(s: &Services, ctx: &RequestContext, surface: Surface, request: Request) -> Result<Response, ApiError> {
    // Before the body is read: a caller who may use no Llm sends mcpd nothing to hold.
    if !ctx.permissions.may_infer_some() {
        return Err(ApiError::Forbidden(format!("user {:?} may not run:infer on any Llm", ctx.actor)));
    }
    let (headers, bytes) = read_body(request).await?;
    let body = fields(&bytes)?;
    let model: String = field(&body, "model").ok_or_else(|| {
        ApiError::BadRequest("`model` is required: the name of an Llm, or tier:fast or tier:heavy".into())
    })?;
    let candidates = candidates(s, ctx, &model, surface).await?;
    // A stream holds one of the --max-streams permits until it ends.
    let permit = match field::<bool>(&body, "stream") {
        Some(true) => Some(s.limits.stream(&ctx.actor)?),
        _ => None,
    };
    let count = candidates.len();
    for (i, llm) in candidates.iter().enumerate() {
        let (mut response, failover) = match try_llm(s, ctx, surface, llm, &body, &headers).await {
            Ok(Attempt::Answer(response)) => (response, false),
            Ok(Attempt::Failover(response)) => (response, true),
            Err((error, failover)) => (error.into_response(), failover),
        };
        if let Ok(name) = HeaderValue::from_str(&llm.name) {
            response.headers_mut().insert(LLM_HEADER, name);
        }
        if !failover || i + 1 == count {
            return Ok(match permit {
                Some(permit) => response.map(|body| {
                    Body::from_stream(body.into_data_stream().map(move |chunk| {
                        let _held = &permit;
                        chunk
                    }))
                }),
                None => response,
            });
        }
        tracing::info!(llm = %llm.name, status = response.status().as_u16(), "trying the next Llm of the tier");
    }
    unreachable!("candidates are never empty")
}

/// `GET /openai/v1/models`: the Llms the caller may use, and the tiers they make up.
async fn models(State(s): State<Services>, Extension(ctx): Extension<RequestContext>) -> Result<Json<Value>, ApiError> {
    let all = s.cached_llms().await?;
    let usable: Vec<&Record<LlmSpec>> = all
        .iter()
        .filter(|l| ctx.permissions.may_infer(&l.name) && upstream::wire_of(l.spec.provider).is_some())
        .collect();
    let created = |at: &str| at.parse::<jiff::Timestamp>().map_or(0, |t| t.as_second());
    let mut data: Vec<Value> = usable
        .iter()
        .map(|l| json!({"id": l.name, "object": "model", "created": created(&l.created_at), "owned_by": l.spec.provider.as_str()}))
        .collect();
    for tier in [Tier::Fast, Tier::Heavy] {
        if usable.iter().any(|l| l.spec.tier == tier) {
            data.push(
                json!({"id": format!("tier:{}", tier.as_str()), "object": "model", "created": 0, "owned_by": "mcpd"}),
            );
        }
    }
    Ok(Json(json!({"object": "list", "data": data})))
}

/// The inference routes, and the usage and warmup routes of the REST API.
pub fn routes() -> crate::routes::Routes {
    crate::routes::Routes::default()
        .on(Method::POST, "/openai/v1/chat/completions", chat_completions)
        .streamed()
        .on(Method::GET, "/openai/v1/models", models)
        .on(Method::POST, "/anthropic/v1/messages", messages)
        .streamed()
        .api_key_header()
        .on(Method::POST, "/api/v1/llms/{name}/warmup", warm::warmup)
        .streamed()
        .on(Method::GET, "/api/v1/usage", report::usage_report)
}

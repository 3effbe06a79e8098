//! Which Llms a request's `model` names for its caller and surface, in the order to try them.

use domain::llm::{LlmSpec, Tier};
use projections::read_models::Record;

use super::Surface;
use super::upstream::{self, Wire};
use app::context::RequestContext;
use app::error::ApiError;
use app::service::Services;

/// The Llms `model` names for this caller and surface, in the order to try them: one Llm,
/// or every Llm of a tier (`tier:fast`) the caller may use, those last seen failing last.
pub(super) async fn candidates(
    s: &Services,
    ctx: &RequestContext,
    model: &str,
    surface: Surface,
) -> Result<Vec<Record<LlmSpec>>, ApiError> {
    let who = &ctx.actor;
    if !ctx.permissions.may_infer_some() {
        return Err(ApiError::Forbidden(format!("user {who:?} may not run:infer on any Llm")));
    }
    let all = s.cached_llms().await?;
    let served = |l: &&Record<LlmSpec>| {
        matches!(
            (surface, upstream::wire_of(l.spec.provider)),
            (Surface::OpenAi, Some(_)) | (Surface::Anthropic, Some(Wire::Anthropic))
        )
    };
    if let Some(tier) = model.strip_prefix("tier:") {
        let tier = Tier::parse(tier)
            .ok_or_else(|| ApiError::BadRequest(format!("unknown tier {tier:?}: tier:fast or tier:heavy")))?;
        let mut list: Vec<Record<LlmSpec>> = all
            .iter()
            .filter(|l| l.spec.tier == tier && ctx.permissions.may_infer(&l.name))
            .filter(served)
            .cloned()
            .collect();
        list.sort_by_key(|l| s.inference.health.failing(&l.name));
        if list.is_empty() {
            return Err(ApiError::Missing(format!(
                "no Llm of tier {} that user {who:?} may use is served on {}",
                tier.as_str(),
                surface.path()
            )));
        }
        return Ok(list);
    }
    if !ctx.permissions.may_infer(model) {
        return Err(ApiError::Forbidden(format!("user {who:?} may not run:infer on llm {model:?}")));
    }
    let Some(llm) = all.iter().find(|l| l.name == model) else {
        if s.access.is_unshown(domain::llm::AGGREGATE_TYPE, model) {
            return Err(ApiError::Changing(format!(
                "llm {model:?} was changed and the change is not visible yet: it is not served until it is; retry shortly"
            )));
        }
        return Err(ApiError::not_found(domain::document::Kind::Llm, model));
    };
    match (surface, upstream::wire_of(llm.spec.provider)) {
        (_, None) => Err(ApiError::BadRequest(format!(
            "llm {model:?} is of type {}, which runs on the client: mcpd does not call it",
            llm.spec.provider.as_str()
        ))),
        (Surface::Anthropic, Some(Wire::OpenAi)) => Err(ApiError::BadRequest(format!(
            "llm {model:?} is of type {}: /anthropic/v1 serves anthropic Llms only; use /openai/v1",
            llm.spec.provider.as_str()
        ))),
        _ => Ok(vec![llm.clone()]),
    }
}

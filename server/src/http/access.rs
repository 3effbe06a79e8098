//! Issuing tokens (the answer carries the token), `whoami` and `can-i`; users and tokens are
//! otherwise served by the generic resource routes.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::extract::{DryRun, JsonBody};
use app::context::RequestContext;
use app::error::{ApiError, accepted_body};
use app::service::Applied;
use app::service::Services;

type Answer<T> = Result<T, ApiError>;

use super::resources::document;
use domain::rbac::Verb;

/// The only answer that ever carries a token: shown once.
async fn issue_token(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    DryRun(dry_run): DryRun,
    JsonBody(body): JsonBody,
) -> Answer<Response> {
    ctx.require("tokens", Verb::Create, None)?;
    let (applied, issued) = s.issue_token(&ctx, body, dry_run).await?;
    let Some(issued) = issued else {
        // A dry run: what would be issued, without a token (there is none).
        let Applied::Done(record) = applied else { unreachable!("a dry run records nothing") };
        return Ok((StatusCode::OK, Json(document(wire::Kind::Token, &record))).into_response());
    };
    let (status, mut doc) = match applied {
        Applied::Done(record) => (StatusCode::CREATED, document(wire::Kind::Token, &record)),
        // Recorded, not readable yet: the token is still shown, now or never.
        Applied::Accepted(message) => {
            let mut doc = accepted_body(&message);
            doc["kind"] = json!("token");
            doc["name"] = json!(issued.id);
            (StatusCode::ACCEPTED, doc)
        }
    };
    doc["token"] = json!(issued.token.expose_secret());
    Ok((status, Json(doc)).into_response())
}

/// Who the token authenticates.
async fn whoami(Extension(ctx): Extension<RequestContext>) -> Json<Value> {
    Json(json!({"user": ctx.actor, "tokenId": ctx.token_id}))
}

/// `whoami`, and issuing a token (its answer carries the token, shown once); users and tokens
/// are otherwise served by the generic resource routes.
pub fn routes() -> super::Routes {
    super::Routes::default().on(Method::GET, "/api/v1/whoami", whoami).on(Method::POST, "/api/v1/tokens", issue_token)
}

#[derive(serde::Deserialize)]
struct CanI {
    verb: String,
    resource: Option<String>,
    name: Option<String>,
}

/// `GET /api/v1/auth/can-i?verb=edit&resource=llms&name=x` (or `?verb=reveal:secrets`): may the
/// caller do it? Always 200; the answer is `allowed`.
async fn can_i(
    Extension(ctx): Extension<RequestContext>,
    super::extract::Query(q): super::extract::Query<CanI>,
) -> Json<Value> {
    let allowed = app::service::rbac::can(&ctx.permissions, &q.verb, q.resource.as_deref(), q.name.as_deref());
    Json(json!({"allowed": allowed, "user": ctx.actor}))
}

/// `can-i`; roles and role bindings go through the generic resource routes.
pub fn rbac_routes() -> super::Routes {
    super::Routes::default().on(Method::GET, "/api/v1/auth/can-i", can_i)
}

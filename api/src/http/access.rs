//! Users and tokens over HTTP, and `whoami`.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use projections::read_models::Record;
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::{Value, json};

use super::extract::JsonBody;
use crate::context::RequestContext;
use crate::error::{ApiError, accepted, accepted_body};
use crate::service::Applied;
use crate::service::Services;

type Answer<T> = Result<T, ApiError>;

use super::resources::document_of as document;

/// The records of a list the caller may view, as documents.
fn visible<S: Serialize>(ctx: &RequestContext, resource: &str, kind: &str, records: &[Record<S>]) -> Json<Value> {
    let items: Vec<Value> =
        records.iter().filter(|r| ctx.may(resource, "view", Some(&r.name))).map(|r| document(kind, r)).collect();
    Json(json!({"items": items}))
}

async fn list_users(State(s): State<Services>, Extension(ctx): Extension<RequestContext>) -> Answer<Json<Value>> {
    ctx.require_some("users", "view")?;
    Ok(visible(&ctx, "users", "user", &s.list_users().await?))
}

async fn get_user(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    Path(name): Path<String>,
) -> Answer<Json<Value>> {
    ctx.require("users", "view", Some(&name))?;
    Ok(Json(document("user", &s.get_user(&name).await?)))
}

async fn create_user(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    JsonBody(body): JsonBody,
) -> Answer<Response> {
    ctx.require("users", "create", body.get("name").and_then(Value::as_str))?;
    Ok(match s.create_user(&ctx, body).await? {
        Applied::Done(record) => (StatusCode::CREATED, Json(document("user", &record))).into_response(),
        Applied::Accepted(message) => accepted(&message),
    })
}

async fn delete_user(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    Path(name): Path<String>,
) -> Answer<Response> {
    ctx.require("users", "delete", Some(&name))?;
    Ok(super::resources::no_content_or_accepted(s.delete_user(&ctx, &name).await?))
}

async fn list_tokens(State(s): State<Services>, Extension(ctx): Extension<RequestContext>) -> Answer<Json<Value>> {
    ctx.require_some("tokens", "view")?;
    Ok(visible(&ctx, "tokens", "token", &s.list_tokens().await?))
}

async fn get_token(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    Path(id): Path<String>,
) -> Answer<Json<Value>> {
    ctx.require("tokens", "view", Some(&id))?;
    Ok(Json(document("token", &s.get_token(&id).await?)))
}

/// The only answer that ever carries a token: shown once.
async fn issue_token(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    JsonBody(body): JsonBody,
) -> Answer<Response> {
    ctx.require("tokens", "create", None)?;
    let (applied, issued) = s.issue_token(&ctx, body).await?;
    let (status, mut doc) = match applied {
        Applied::Done(record) => (StatusCode::CREATED, document("token", &record)),
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

async fn revoke_token(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    Path(id): Path<String>,
) -> Answer<Response> {
    ctx.require("tokens", "delete", Some(&id))?;
    Ok(super::resources::no_content_or_accepted(s.revoke_token(&ctx, &id).await?))
}

/// Who the token authenticates.
async fn whoami(Extension(ctx): Extension<RequestContext>) -> Json<Value> {
    Json(json!({"user": ctx.actor, "tokenId": ctx.token_id}))
}

pub fn routes() -> super::Routes {
    use Method as M;
    super::Routes::default()
        .on(M::GET, "/api/v1/whoami", whoami)
        .on(M::GET, "/api/v1/users", list_users)
        .on(M::POST, "/api/v1/users", create_user)
        .on(M::GET, "/api/v1/users/{name}", get_user)
        .on(M::DELETE, "/api/v1/users/{name}", delete_user)
        .on(M::GET, "/api/v1/tokens", list_tokens)
        .on(M::POST, "/api/v1/tokens", issue_token)
        .on(M::GET, "/api/v1/tokens/{id}", get_token)
        .on(M::DELETE, "/api/v1/tokens/{id}", revoke_token)
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
    axum::extract::Query(q): axum::extract::Query<CanI>,
) -> Json<Value> {
    let allowed = crate::service::rbac::can(&ctx.permissions, &q.verb, q.resource.as_deref(), q.name.as_deref());
    Json(json!({"allowed": allowed, "user": ctx.actor}))
}

/// `can-i`; roles and role bindings go through the generic resource routes.
pub fn rbac_routes() -> super::Routes {
    super::Routes::default().on(Method::GET, "/api/v1/auth/can-i", can_i)
}

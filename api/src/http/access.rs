//! Users and tokens over HTTP, and `whoami`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use projections::read_models::Record;
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::{Value, json};

use super::extract::JsonBody;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::service::Services;

type Answer<T> = Result<T, ApiError>;

fn document<S: Serialize>(kind: &str, record: &Record<S>) -> Value {
    let mut doc = json!({"kind": kind, "name": record.name});
    if let (Some(doc), Ok(Value::Object(spec))) = (doc.as_object_mut(), serde_json::to_value(&record.spec)) {
        doc.extend(spec);
        doc.insert("resourceVersion".into(), json!(record.resource_version));
        doc.insert("createdAt".into(), json!(record.created_at));
        doc.insert("updatedAt".into(), json!(record.updated_at));
    }
    doc
}

async fn list_users(State(s): State<Services>) -> Answer<Json<Value>> {
    let items: Vec<Value> = s.list_users().await?.iter().map(|r| document("user", r)).collect();
    Ok(Json(json!({"items": items})))
}

async fn get_user(State(s): State<Services>, Path(name): Path<String>) -> Answer<Json<Value>> {
    Ok(Json(document("user", &s.get_user(&name).await?)))
}

async fn create_user(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    JsonBody(body): JsonBody,
) -> Answer<Response> {
    let record = s.create_user(&ctx, body).await?;
    Ok((StatusCode::CREATED, Json(document("user", &record))).into_response())
}

async fn delete_user(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    Path(name): Path<String>,
) -> Answer<StatusCode> {
    s.delete_user(&ctx, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_tokens(State(s): State<Services>) -> Answer<Json<Value>> {
    let items: Vec<Value> = s.list_tokens().await?.iter().map(|r| document("token", r)).collect();
    Ok(Json(json!({"items": items})))
}

async fn get_token(State(s): State<Services>, Path(id): Path<String>) -> Answer<Json<Value>> {
    Ok(Json(document("token", &s.get_token(&id).await?)))
}

/// The only answer that ever carries a token: shown once.
async fn issue_token(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    JsonBody(body): JsonBody,
) -> Answer<Response> {
    let (record, token) = s.issue_token(&ctx, body).await?;
    let mut doc = document("token", &record);
    doc["token"] = json!(token.expose_secret());
    Ok((StatusCode::CREATED, Json(doc)).into_response())
}

async fn revoke_token(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    Path(id): Path<String>,
) -> Answer<StatusCode> {
    s.revoke_token(&ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who the token authenticates.
async fn whoami(Extension(ctx): Extension<RequestContext>) -> Json<Value> {
    Json(json!({"user": ctx.actor, "tokenId": ctx.token_id}))
}

pub fn routes() -> Router<Services> {
    Router::new()
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/users", get(list_users).post(create_user))
        .route("/api/v1/users/{name}", get(get_user).delete(delete_user))
        .route("/api/v1/tokens", get(list_tokens).post(issue_token))
        .route("/api/v1/tokens/{id}", get(get_token).delete(revoke_token))
}

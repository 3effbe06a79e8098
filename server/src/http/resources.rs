//! The CRUD routes, written once for every resource kind: each kind says how its service calls
//! map onto list / get / create / replace / delete, and what its document looks like.

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::Method;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::document::Kind;
use projections::read_models::Record;
use serde::Serialize;
use serde_json::{Value, json};

use super::extract::{DryRun, IfMatch, JsonBody, ListPage, Reveal};
use app::context::RequestContext;
use app::error::ApiError;
use app::error::accepted;
use app::service::{Applied, ResourceKind, Services};
use domain::rbac::{Operation, Verb};

/// The wire form of a record of any kind: `kind`, `name`, the spec fields, then the read-only
/// fields ([`wire::Document`], which mcpctl reads back).
pub fn document<S: Serialize>(kind: Kind, record: &Record<S>) -> Value {
    serde_json::to_value(wire_document(kind, record, None)).expect("documents serialise")
}

/// The wire form of a record, borrowing its spec.
fn wire_document<S>(kind: Kind, record: &Record<S>, health: Option<wire::llm::LlmHealth>) -> wire::Document<&S> {
    wire::Document {
        health,
        kind,
        name: record.name.clone(),
        spec: &record.spec,
        resource_version: record.resource_version,
        created_at: record.created_at.clone(),
        updated_at: record.updated_at.clone(),
    }
}

type Answer<T> = Result<T, ApiError>;

fn one<K: ResourceKind>(s: &Services, status: StatusCode, record: &Record<K::Spec>) -> Response {
    let doc = wire_document(K::KIND, record, K::health(s, &record.name));
    let mut response = (status, Json(doc)).into_response();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", record.resource_version)) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// Values are shown only to a caller holding `reveal:secrets`.
fn check_reveal<K: ResourceKind>(ctx: &RequestContext, reveal: bool) -> Answer<()> {
    if reveal && K::KIND == Kind::Secret { ctx.require_operation(Operation::RevealSecrets) } else { Ok(()) }
}

/// A list shows what the caller may view: the whole collection, or the names a rule scopes.
/// With `watch=true`, the kind's changes as they happen instead ([`super::watch`]).
async fn list<K: ResourceKind>(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    Reveal(reveal): Reveal,
    page: ListPage,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Answer<Response> {
    if let Some(from) = super::watch::requested(query.as_deref())? {
        if reveal {
            return Err(ApiError::BadRequest("a watch never shows secret values: drop reveal".into()));
        }
        return super::watch::serve::<K>(s, ctx, from).await;
    }
    ctx.require_some(K::RESOURCE, Verb::View)?;
    check_reveal::<K>(&ctx, reveal)?;
    let fetch = |page| K::list(&s, reveal, page);
    let visible = |r: &Record<K::Spec>| ctx.may(K::RESOURCE, Verb::View, Some(&r.name));
    let (records, next) = super::paging::page_of(K::KIND, K::ORDER, page, fetch, visible).await?;
    // Serialised straight from the records, with no `Value` per document in between.
    let items: Vec<_> = records.iter().map(|r| wire_document(K::KIND, r, K::health(&s, &r.name))).collect();
    let metadata = next.map(|token| wire::ListMeta { continue_token: Some(token) });
    Ok(Json(wire::List { items, metadata }).into_response())
}

async fn read<K: ResourceKind>(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    Path(name): Path<String>,
    Reveal(reveal): Reveal,
) -> Answer<Response> {
    ctx.require(K::RESOURCE, Verb::View, Some(&name))?;
    check_reveal::<K>(&ctx, reveal)?;
    Ok(one::<K>(&s, StatusCode::OK, &K::get(&s, &name, reveal).await?))
}

async fn create<K: ResourceKind>(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    DryRun(dry_run): DryRun,
    JsonBody(body): JsonBody,
) -> Answer<Response> {
    ctx.require(K::RESOURCE, Verb::Create, body.get("name").and_then(Value::as_str))?;
    let record = match K::create(&s, &ctx, body, dry_run).await? {
        Applied::Done(record) => record,
        Applied::Accepted(message) => return Ok(accepted(&message)),
    };
    if dry_run {
        // What would be created; nothing was, so 200 and no Location.
        return Ok(one::<K>(&s, StatusCode::OK, &record));
    }
    let mut response = one::<K>(&s, StatusCode::CREATED, &record);
    let location = format!("{}/{}", K::KIND.path(), record.name);
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn replace<K: ResourceKind>(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    Path(name): Path<String>,
    IfMatch(expected): IfMatch,
    DryRun(dry_run): DryRun,
    JsonBody(body): JsonBody,
) -> Answer<Response> {
    ctx.require(K::RESOURCE, Verb::Edit, Some(&name))?;
    Ok(match K::replace(&s, &ctx, &name, body, expected, dry_run).await? {
        Applied::Done(record) => one::<K>(&s, StatusCode::OK, &record),
        Applied::Accepted(message) => accepted(&message),
    })
}

async fn delete<K: ResourceKind>(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    Path(name): Path<String>,
    IfMatch(expected): IfMatch,
    DryRun(dry_run): DryRun,
) -> Answer<Response> {
    ctx.require(K::RESOURCE, Verb::Delete, Some(&name))?;
    Ok(no_content_or_accepted(K::delete(&s, &ctx, &name, expected, dry_run).await?))
}

/// 204 for a delete the read models show, 202 for one they do not show yet.
pub(super) fn no_content_or_accepted(applied: Applied<()>) -> Response {
    match applied {
        Applied::Done(()) => StatusCode::NO_CONTENT.into_response(),
        Applied::Accepted(message) => accepted(&message),
    }
}

/// `GET /api/v1/{kind}s/{name}/history`: the resource's events, oldest first (who, when, what).
/// Like the resource, it is gone once the resource is deleted; the audit log keeps the events.
async fn history<K: ResourceKind>(
    State(s): State<Services>,
    Extension(ctx): Extension<RequestContext>,
    Path(name): Path<String>,
) -> Answer<Response> {
    ctx.require(K::RESOURCE, Verb::View, Some(&name))?;
    if current::<K>(&s, &name).await?.is_none() {
        let info = K::KIND.info();
        return Err(ApiError::Missing(format!(
            "{} {name:?} not found; the events of a deleted {} are in the audit log (GET /api/v1/audit?kind={}&name={name})",
            info.singular, info.singular, info.singular
        )));
    }
    let events = s.writer.history(K::KIND, &name).await?;
    Ok(Json(json!({ "items": events })).into_response())
}

/// The resource `name` of `kind` as GET shows it now (without secret values), if it exists.
pub(crate) async fn current<K: ResourceKind>(s: &Services, name: &str) -> Answer<Option<Response>> {
    match K::get(s, name, false).await {
        Ok(record) => Ok(Some(one::<K>(s, StatusCode::OK, &record))),
        Err(ApiError::NotFound { .. } | ApiError::Missing(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// [`current`], for a kind known at run time.
pub(crate) async fn current_of(s: &Services, kind: Kind, name: &str) -> Answer<Option<Response>> {
    use app::service as k;
    match kind {
        Kind::Llm => current::<k::Llms>(s, name).await,
        Kind::Secret => current::<k::Secrets>(s, name).await,
        Kind::SecretBackend => current::<k::SecretBackends>(s, name).await,
        Kind::Role => current::<k::Roles>(s, name).await,
        Kind::RoleBinding => current::<k::RoleBindings>(s, name).await,
        Kind::User => current::<k::Users>(s, name).await,
        Kind::Token | Kind::Migration => Ok(None),
    }
}

/// `GET|POST /api/v1/{kind}s`, `GET|PUT|DELETE /api/v1/{kind}s/{name}` and its history; POST
/// and PUT only where the kind takes them.
pub fn routes<K: ResourceKind>() -> super::Routes {
    let collection = K::KIND.path();
    let one = format!("{collection}/{{name}}");
    let mut routes = super::Routes::default()
        .on(Method::GET, &collection, list::<K>)
        .on(Method::GET, &one, read::<K>)
        .on(Method::DELETE, &one, delete::<K>)
        .on(Method::GET, &format!("{one}/history"), history::<K>);
    if K::GENERIC_CREATE {
        routes = routes.on(Method::POST, &collection, create::<K>);
    }
    if K::REPLACEABLE {
        routes = routes.on(Method::PUT, &one, replace::<K>);
    }
    routes
}

//! One resource kind's operations, as the generic resource routes (`http::resources`) call them:
//! each kind implements [`ResourceKind`] in its own service module, next to its validation and
//! rules, so the HTTP binding is written once for every kind.

use std::future::Future;

use domain::document::Kind;
use projections::read_models::Record;
use projections::read_models::page::{Order, Page};
use serde_json::Value;

use super::Services;
use crate::context::RequestContext;
use crate::error::ApiError;

pub type Answer<T> = Result<T, ApiError>;

/// A write's outcome; both are successes.
#[derive(Debug)]
pub enum Applied<T> {
    /// Done: the resource as it now is.
    Done(T),
    /// Accepted (202): recorded, but not readable yet; the message says why.
    Accepted(String),
}

/// How one kind's routes reach its services.
pub trait ResourceKind: Send + Sync + 'static {
    /// What its documents carry besides the envelope: the type mcpctl reads them back as.
    type Spec: wire::Spec + Send + Sync;
    /// The kind, as its document type says.
    const KIND: Kind = <Self::Spec as wire::Spec>::KIND;
    /// The resource RBAC rules name (`llms`, …), from the kind registry.
    const RESOURCE: &'static str = Self::KIND.info().rbac_resource;
    /// Whether PUT replaces one (users and tokens are created and deleted, never replaced).
    const REPLACEABLE: bool = true;
    /// Whether the generic POST creates one (tokens have their own: the answer carries the
    /// token, shown once).
    const GENERIC_CREATE: bool = true;
    /// The order its lists come in (and pages follow).
    const ORDER: Order = Order::Key;
    /// One keyset page of the list (the whole list for `Page::default()`).
    /// What this replica observes of the resource (an Llm's health), shown as `health`.
    fn health(_s: &Services, _name: &str) -> Option<wire::llm::LlmHealth> {
        None
    }

    fn list(s: &Services, reveal: bool, page: Page) -> impl Future<Output = Answer<Vec<Record<Self::Spec>>>> + Send;
    fn get(s: &Services, name: &str, reveal: bool) -> impl Future<Output = Answer<Record<Self::Spec>>> + Send;
    /// Only called when [`ResourceKind::GENERIC_CREATE`].
    fn create(
        _s: &Services,
        _ctx: &RequestContext,
        _body: Value,
        _dry_run: bool,
    ) -> impl Future<Output = Answer<Applied<Record<Self::Spec>>>> + Send {
        // The collection's route serves GET alone when the kind has no generic create.
        async { Err(ApiError::MethodNotAllowed("GET, HEAD".into())) }
    }
    /// Only called when [`ResourceKind::REPLACEABLE`].
    fn replace(
        _s: &Services,
        _ctx: &RequestContext,
        _name: &str,
        _body: Value,
        _expected_version: Option<u64>,
        _dry_run: bool,
    ) -> impl Future<Output = Answer<Applied<Record<Self::Spec>>>> + Send {
        // One resource's route serves GET and DELETE when the kind is not replaceable.
        async { Err(ApiError::MethodNotAllowed("DELETE, GET, HEAD".into())) }
    }
    fn delete(
        s: &Services,
        ctx: &RequestContext,
        name: &str,
        expected_version: Option<u64>,
        dry_run: bool,
    ) -> impl Future<Output = Answer<Applied<()>>> + Send;
}

//! One resource kind's operations, as the generic resource routes (`http::resources`) call them:
//! each kind implements [`ResourceKind`] in its own service module, next to its validation and
//! rules, so the HTTP binding is written once for every kind.

use std::future::Future;

use domain::document::Kind;
use projections::read_models::Record;
use serde::Serialize;
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
    const KIND: Kind;
    /// The resource RBAC rules name (`llms`, …), from the kind registry.
    const RESOURCE: &'static str = Self::KIND.info().rbac_resource;
    type Spec: Serialize + Send;
    fn list(s: &Services, reveal: bool) -> impl Future<Output = Answer<Vec<Record<Self::Spec>>>> + Send;
    fn get(s: &Services, name: &str, reveal: bool) -> impl Future<Output = Answer<Record<Self::Spec>>> + Send;
    fn create(
        s: &Services,
        ctx: &RequestContext,
        body: Value,
        dry_run: bool,
    ) -> impl Future<Output = Answer<Applied<Record<Self::Spec>>>> + Send;
    fn replace(
        s: &Services,
        ctx: &RequestContext,
        name: &str,
        body: Value,
        expected_version: Option<u64>,
        dry_run: bool,
    ) -> impl Future<Output = Answer<Applied<Record<Self::Spec>>>> + Send;
    fn delete(
        s: &Services,
        ctx: &RequestContext,
        name: &str,
        expected_version: Option<u64>,
        dry_run: bool,
    ) -> impl Future<Output = Answer<Applied<()>>> + Send;
}

//! Application services: each turns one API call into a command (after gathering the facts the
//! aggregate needs from the read models), executes it with metadata, and waits until the read
//! models show the change so the caller reads its own write.

mod llms;
mod secret_backends;
mod secrets;

use std::time::Duration;

use cqrs_es::Aggregate;
use domain::ResourceName;
use domain::document::{Kind, SpecInput, parse_valid};
use domain::error::Classified;
use serde_json::Value;

use crate::context::RequestContext;
use crate::error::ApiError;
use crate::store::{Cqrs, Store};

pub use secrets::SecretView;

#[derive(Clone)]
pub struct Services {
    pub store: Store,
    /// How long a write waits for the read models before answering 503.
    pub projection_wait: Duration,
}

impl Services {
    pub fn new(store: Store, projection_wait: Duration) -> Self {
        Self { store, projection_wait }
    }

    /// Executes `command` on aggregate `name`, then waits until the read models include it.
    async fn execute<A>(
        &self,
        cqrs: &Cqrs<A>,
        ctx: &RequestContext,
        name: &ResourceName,
        command: A::Command,
    ) -> Result<(), ApiError>
    where
        A: Aggregate,
        A::Error: Classified + Send + Sync + 'static,
    {
        cqrs.execute_with_metadata(name.as_str(), command, ctx.metadata().into_map())
            .await
            .map_err(|e| ApiError::from_command(A::TYPE, name.as_str(), e))?;
        self.await_projection(A::TYPE, name).await
    }

    async fn await_projection(&self, aggregate_type: &'static str, name: &ResourceName) -> Result<(), ApiError> {
        let Some(position) = self.store.log.latest_position_of(aggregate_type, name.as_str()).await? else {
            return Ok(());
        };
        self.store
            .projector
            .wait_for(position, self.projection_wait)
            .await
            .map_err(|e| {
                ApiError::Unavailable(format!("the change to {aggregate_type} {name:?} was recorded, but {e}"))
            })
    }
}

/// Parses and validates a request body as a document of `I`'s kind.
pub fn parse_document<I: SpecInput>(body: Value, url_name: Option<&str>) -> Result<(ResourceName, I::Spec), ApiError> {
    match parse_valid::<I>(body, url_name) {
        Ok(Ok(parsed)) => Ok(parsed),
        Ok(Err(errors)) => Err(ApiError::Invalid {
            kind: I::KIND.as_str(),
            errors,
        }),
        Err(shape) => Err(ApiError::MalformedBody(shape.to_string())),
    }
}

/// A name from a URL: anything that is not a valid name cannot exist.
fn url_name(kind: Kind, raw: &str) -> Result<ResourceName, ApiError> {
    ResourceName::parse(raw).map_err(|_| ApiError::NotFound(format!("{kind} {raw:?} not found")))
}

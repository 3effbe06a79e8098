//! Who is asking and which request this is: the server attaches one to every request; the
//! services carry it into event metadata, permission checks and error answers.

use domain::metadata::EventMetadata;
use domain::rbac::{Operation, Verb};

pub use crate::request_scope::{current_request_id, mark_recorded};

/// The caller of one request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The authenticated user (`mcpd` for its own actions, `anonymous` before authentication).
    pub actor: String,
    pub request_id: String,
    pub source: &'static str,
    /// The id of the token the actor authenticated with.
    pub token_id: String,
    pub source_address: String,
    pub user_agent: String,
    /// What the actor may do; everything for mcpd's own actions, nothing before authentication.
    pub permissions: std::sync::Arc<domain::rbac::Permissions>,
    /// The request's `Idempotency-Key` and request hash (set by the idempotency middleware).
    pub idempotency: Option<(String, String)>,
}

impl RequestContext {
    /// Actions mcpd takes on its own behalf (seeding the default backend).
    pub fn system(source: &'static str) -> Self {
        Self {
            actor: "mcpd".into(),
            request_id: uuid::Uuid::new_v4().to_string(),
            source,
            token_id: String::new(),
            source_address: String::new(),
            user_agent: String::new(),
            permissions: std::sync::Arc::new(domain::rbac::Permissions::new(domain::rbac::built_in(
                domain::rbac::ADMIN,
            ))),
            idempotency: None,
        }
    }

    /// May the actor `verb` the `resource` named `name` (`None`: the whole collection)?
    pub fn may(&self, resource: &str, verb: Verb, name: Option<&str>) -> bool {
        self.permissions.allows(resource, verb, name)
    }

    /// 403 unless the actor may `verb` the `resource` named `name`.
    pub fn require(&self, resource: &str, verb: Verb, name: Option<&str>) -> Result<(), crate::error::ApiError> {
        if self.may(resource, verb, name) {
            return Ok(());
        }
        let target = match name {
            Some(name) => format!("{resource} {name:?}"),
            None => resource.to_owned(),
        };
        Err(crate::error::ApiError::Forbidden(format!("user {:?} may not {verb} {target}", self.actor)))
    }

    /// 403 unless the actor may see some of `resource` (a list is then filtered).
    pub fn require_some(&self, resource: &str, verb: Verb) -> Result<(), crate::error::ApiError> {
        if self.permissions.allows_some(resource, verb) {
            return Ok(());
        }
        Err(crate::error::ApiError::Forbidden(format!("user {:?} may not {verb} {resource}", self.actor)))
    }

    /// 403 unless the actor holds `operation` (`reveal:secrets`, `run:migrate-secrets`, …).
    pub fn require_operation(&self, operation: Operation) -> Result<(), crate::error::ApiError> {
        if self.permissions.allows_operation(operation) {
            return Ok(());
        }
        Err(crate::error::ApiError::Forbidden(format!("user {:?} may not {operation}", self.actor)))
    }

    pub fn metadata(&self) -> EventMetadata {
        EventMetadata {
            actor: self.actor.clone(),
            request_id: self.request_id.clone(),
            recorded_at: jiff::Timestamp::now().to_string(),
            source: self.source.to_owned(),
            token_id: self.token_id.clone(),
            source_address: self.source_address.clone(),
            user_agent: self.user_agent.clone(),
            idempotency: self.idempotency.clone(),
        }
    }
}

use crate::rbac::RoleBindingSpec;
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum RoleBindingEvent {
    RoleBindingCreated {
        spec: RoleBindingSpec,
    },
    RoleBindingUpdated {
        spec: RoleBindingSpec,
    },
    /// An update that takes something away: a user it no longer binds, or another role. Its
    /// own type, so that it holds from the moment it is recorded, as a deletion does, however
    /// far the read models lag (the access cache counts it as a restriction).
    RoleBindingNarrowed {
        spec: RoleBindingSpec,
    },
    RoleBindingDeleted {},
}

impl DomainEvent for RoleBindingEvent {
    fn event_type(&self) -> String {
        match self {
            RoleBindingEvent::RoleBindingCreated { .. } => "RoleBindingCreated",
            RoleBindingEvent::RoleBindingUpdated { .. } => "RoleBindingUpdated",
            RoleBindingEvent::RoleBindingNarrowed { .. } => "RoleBindingNarrowed",
            RoleBindingEvent::RoleBindingDeleted { .. } => "RoleBindingDeleted",
        }
        .to_owned()
    }
    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

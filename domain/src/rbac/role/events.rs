use crate::rbac::RoleSpec;
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum RoleEvent {
    RoleCreated {
        spec: RoleSpec,
    },
    RoleUpdated {
        spec: RoleSpec,
    },
    /// An update that takes a rule away (or changes one): its own type, so that it holds from
    /// the moment it is recorded (see `RoleBindingNarrowed`).
    RoleNarrowed {
        spec: RoleSpec,
    },
    RoleDeleted {},
}

impl DomainEvent for RoleEvent {
    fn event_type(&self) -> String {
        match self {
            RoleEvent::RoleCreated { .. } => "RoleCreated",
            RoleEvent::RoleUpdated { .. } => "RoleUpdated",
            RoleEvent::RoleNarrowed { .. } => "RoleNarrowed",
            RoleEvent::RoleDeleted { .. } => "RoleDeleted",
        }
        .to_owned()
    }
    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

use crate::rbac::RoleSpec;
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum RoleEvent {
    RoleCreated { spec: RoleSpec },
    RoleUpdated { spec: RoleSpec },
    RoleDeleted {},
}

impl DomainEvent for RoleEvent {
    fn event_type(&self) -> String {
        match self {
            RoleEvent::RoleCreated { .. } => "RoleCreated",
            RoleEvent::RoleUpdated { .. } => "RoleUpdated",
            RoleEvent::RoleDeleted { .. } => "RoleDeleted",
        }
        .to_owned()
    }
    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

use crate::name::ResourceName;
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum TokenEvent {
    TokenIssued { user: ResourceName, hash: String, expires_at: Option<String>, description: String },
    TokenRevoked {},
}

impl DomainEvent for TokenEvent {
    fn event_type(&self) -> String {
        match self {
            TokenEvent::TokenIssued { .. } => "TokenIssued",
            TokenEvent::TokenRevoked { .. } => "TokenRevoked",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

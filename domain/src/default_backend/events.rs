use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::name::ResourceName;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum DefaultBackendEvent {
    DefaultBackendSet { from: Option<ResourceName>, to: ResourceName },
}

impl DomainEvent for DefaultBackendEvent {
    fn event_type(&self) -> String {
        "DefaultBackendSet".to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

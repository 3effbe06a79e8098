use crate::name::ResourceName;
use crate::rbac::RoleBindingSpec;

#[derive(Debug, Clone, PartialEq)]
pub enum RoleBindingCommand {
    Create { name: ResourceName, spec: RoleBindingSpec },
    Update { name: ResourceName, spec: RoleBindingSpec, expected_version: Option<u64> },
    Delete { name: ResourceName, expected_version: Option<u64> },
}

impl crate::Creates for RoleBindingCommand {
    fn creates(&self) -> bool {
        match self {
            RoleBindingCommand::Create { .. } => true,
            RoleBindingCommand::Update { .. } | RoleBindingCommand::Delete { .. } => false,
        }
    }
}

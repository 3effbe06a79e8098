use crate::name::ResourceName;
use crate::rbac::RoleSpec;

#[derive(Debug, Clone, PartialEq)]
pub enum RoleCommand {
    Create {
        name: ResourceName,
        spec: RoleSpec,
    },
    Update {
        name: ResourceName,
        spec: RoleSpec,
        expected_version: Option<u64>,
    },
    /// `bound_by`: the bindings that grant this role (read from the read model).
    Delete {
        name: ResourceName,
        bound_by: Vec<String>,
        expected_version: Option<u64>,
    },
}

impl crate::Creates for RoleCommand {
    fn creates(&self) -> bool {
        match self {
            RoleCommand::Create { .. } => true,
            RoleCommand::Update { .. } | RoleCommand::Delete { .. } => false,
        }
    }
}

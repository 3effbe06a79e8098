use crate::name::ResourceName;

#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    CreateUser { name: ResourceName, description: String },
    DeleteUser { name: ResourceName },
}

impl crate::Creates for UserCommand {
    fn creates(&self) -> bool {
        match self {
            UserCommand::CreateUser { .. } => true,
            UserCommand::DeleteUser { .. } => false,
        }
    }
}

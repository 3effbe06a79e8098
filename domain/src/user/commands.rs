use crate::name::ResourceName;

#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    CreateUser { name: ResourceName, description: String },
    DeleteUser { name: ResourceName },
}

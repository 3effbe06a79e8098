use crate::name::ResourceName;

#[derive(Debug, Clone, PartialEq)]
pub enum TokenCommand {
    IssueToken {
        id: String,
        user: ResourceName,
        /// Whether `user` exists (read from the users read model).
        user_exists: bool,
        /// Hex SHA-256 of the token.
        hash: String,
        /// RFC 3339; `None` never expires.
        expires_at: Option<String>,
        description: String,
    },
    RevokeToken {
        id: String,
    },
}

impl crate::Creates for TokenCommand {
    fn creates(&self) -> bool {
        match self {
            TokenCommand::IssueToken { .. } => true,
            TokenCommand::RevokeToken { .. } => false,
        }
    }
}

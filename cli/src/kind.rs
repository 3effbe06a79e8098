//! What the CLI knows about each kind: its API path, its name in documents, and its place in
//! dependency order.

use crate::args::Kind;

impl Kind {
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Llm => "llm",
            Kind::Secret => "secret",
            Kind::SecretBackend => "secretbackend",
            Kind::All => "all",
            Kind::Migration => "migration",
            Kind::User => "user",
            Kind::Token => "token",
            Kind::Role => "role",
            Kind::RoleBinding => "rolebinding",
        }
    }

    /// The concrete kinds `self` stands for, in dependency order.
    pub fn expand(self) -> Vec<Kind> {
        match self {
            Kind::All => vec![Kind::SecretBackend, Kind::Secret, Kind::Llm],
            kind => vec![kind],
        }
    }

    /// The collection's path in the API.
    pub fn path(self) -> String {
        format!("/api/v1/{}s", self.singular())
    }

    /// `kind:` as documents may spell it: singular or plural, any case.
    pub fn from_document(raw: &str) -> Option<Kind> {
        match raw.to_ascii_lowercase().as_str() {
            "llm" | "llms" => Some(Kind::Llm),
            "secret" | "secrets" => Some(Kind::Secret),
            "secretbackend" | "secretbackends" => Some(Kind::SecretBackend),
            "role" | "roles" => Some(Kind::Role),
            "rolebinding" | "rolebindings" => Some(Kind::RoleBinding),
            _ => None,
        }
    }

    /// Backends before the secrets on them, secrets before the Llms that use them.
    pub fn dependency_rank(self) -> u8 {
        match self {
            Kind::SecretBackend => 0,
            Kind::Secret => 1,
            Kind::Llm | Kind::All | Kind::Migration | Kind::User | Kind::Token => 2,
            // A binding names its role.
            Kind::Role => 3,
            Kind::RoleBinding => 4,
        }
    }
}

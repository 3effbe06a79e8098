//! A user document as clients send it, parsed and validated like every kind.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::document::{Kind, SpecInput};
use crate::validation::ValidationErrors;

/// A user document's fields.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    /// Free text.
    #[serde(default)]
    pub description: String,
}

/// What a user is created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub description: String,
}

impl SpecInput for UserInput {
    type Spec = UserSpec;
    const KIND: Kind = Kind::User;

    fn validate(self, _: &mut ValidationErrors) -> Option<UserSpec> {
        Some(UserSpec { description: self.description })
    }
}

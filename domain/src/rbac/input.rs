//! Role and role-binding documents as clients send them: parsed and validated like every kind
//! ([`SpecInput`]), their OpenAPI schemas derived from these types.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{OPERATIONS, RESOURCES, RoleBindingSpec, RoleSpec, Rule, VERBS, validate_rules};
use crate::document::{Kind, SpecInput};
use crate::name::ResourceName;
use crate::validation::{ValidationErrors, patterns};

/// A role document's fields. `builtIn` and the other read-only fields a `get -o yaml | apply
/// -f -` round trip carries are accepted and ignored.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("required" = ["rules"]))]
pub struct RoleInput {
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// What the role grants: each rule, verbs on resources (only the named ones, when names is
    /// given), or operations.
    #[serde(default)]
    #[schemars(schema_with = "rules_schema")]
    pub rules: Vec<Rule>,
}

impl SpecInput for RoleInput {
    type Spec = RoleSpec;
    const KIND: Kind = Kind::Role;

    fn validate(self, errors: &mut ValidationErrors) -> Option<RoleSpec> {
        validate_rules(&self.rules, errors);
        errors.is_empty().then_some(RoleSpec { description: self.description, rules: self.rules })
    }
}

/// A role binding document's fields.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("required" = ["role", "users"]))]
pub struct RoleBindingInput {
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// The role granted (built-in or defined).
    #[serde(default)]
    #[schemars(extend("pattern" = patterns::NAME))]
    pub role: String,
    /// The users it is granted to.
    #[serde(default)]
    #[schemars(extend("minItems" = 1, "items" = {"type": "string", "pattern": patterns::NAME}))]
    pub users: Vec<String>,
}

impl SpecInput for RoleBindingInput {
    type Spec = RoleBindingSpec;
    const KIND: Kind = Kind::RoleBinding;

    /// The shape only; whether the role and the users exist is for the caller to find out.
    fn validate(self, errors: &mut ValidationErrors) -> Option<RoleBindingSpec> {
        if self.role.is_empty() {
            errors.add("role", "is required");
        } else if let Err(m) = ResourceName::parse(&self.role) {
            errors.add("role", m);
        }
        if self.users.is_empty() {
            errors.add("users", "must name at least one user");
        }
        for user in &self.users {
            if let Err(m) = ResourceName::parse(user) {
                errors.add("users", format!("{user:?}: {m}"));
            }
        }
        let mut users = self.users;
        users.sort();
        users.dedup();
        errors.is_empty().then_some(RoleBindingSpec { description: self.description, role: self.role, users })
    }
}

/// The schema of a role's rules: each grants verbs on resources, or operations, from the
/// lists the validation checks against.
fn rules_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let with_star = |names: &[&'static str]| {
        let mut all = names.to_vec();
        all.push("*");
        all
    };
    let rule: Value = json!({
        "type": "object", "additionalProperties": false,
        "properties": {
            "resources": {"type": "array", "items": {"enum": with_star(&RESOURCES)}, "description": "The resources the verbs apply to (* for all)."},
            "verbs": {"type": "array", "items": {"enum": with_star(&VERBS)}, "description": "What may be done to them (* for all)."},
            "names": {"type": ["array", "null"], "items": {"type": "string", "pattern": patterns::NAME},
                "description": "Only the resources of these names; every one when absent."},
            "operations": {"type": "array", "items": {"enum": OPERATIONS}, "description": "Operations granted besides verbs (reveal:secrets, run:infer, …)."},
        },
        "description": "verbs on resources (only the named ones, when names is given), or operations",
        "anyOf": [
            {"required": ["resources", "verbs"], "properties": {"resources": {"minItems": 1}, "verbs": {"minItems": 1}}},
            {"required": ["operations"], "properties": {"operations": {"minItems": 1}, "resources": {"maxItems": 0}, "verbs": {"maxItems": 0}}},
        ],
    });
    let schema = json!({"type": "array", "minItems": 1, "items": rule,
        "description": "What the role grants: each rule, verbs on resources (only the named ones, when names is given), or operations."});
    schemars::Schema::try_from(schema).expect("an object is a schema")
}

//! Roles and role bindings: what a role grants, and to whom a binding grants it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::Kind;
use crate::document::{Cell, Column, Spec, column};
pub use crate::rule::Rule;

/// A role's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RoleSpec {
    #[serde(default)]
    pub description: String,
    pub rules: Vec<Rule>,
}

/// A binding's content: `role` granted to `users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleBindingSpec {
    #[serde(default)]
    pub description: String,
    pub role: String,
    pub users: Vec<String>,
}

impl Spec for RoleSpec {
    const KIND: Kind = Kind::Role;
    const COLUMNS: &'static [Column<Self>] = &[
        Column::NAME,
        column("RULES", |d| Cell::Rules(&d.spec.rules)),
        column("DESCRIPTION", |d| Cell::Text(Cow::Borrowed(&d.spec.description))),
    ];
    const WIDE: &'static [Column<Self>] = &[Column::VERSION];
    const DESCRIBE: &'static [Column<Self>] = &[column("Rules", |d| Cell::Rules(&d.spec.rules))];
}

impl Spec for RoleBindingSpec {
    const KIND: Kind = Kind::RoleBinding;
    const COLUMNS: &'static [Column<Self>] = &[
        Column::NAME,
        column("ROLE", |d| Cell::Text(Cow::Borrowed(&d.spec.role))),
        column("USERS", |d| Cell::List(&d.spec.users)),
        Column::AGE,
    ];
    const WIDE: &'static [Column<Self>] = &[Column::VERSION];
    const DESCRIBE: &'static [Column<Self>] =
        &[column("Role", |d| Cell::Text(Cow::Borrowed(&d.spec.role))), column("Users", |d| Cell::List(&d.spec.users))];
}

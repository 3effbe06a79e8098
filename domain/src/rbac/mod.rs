//! Authorisation: roles (rules over resources, verbs and names, and operations) and role
//! bindings (a role granted to users). Four roles are built in and cannot be changed; custom
//! roles and every binding are event-sourced resources, each in its own folder. Evaluation is
//! pure: the API gathers a user's roles and asks [`Permissions`].

mod error;
mod grant;
mod input;
mod permissions;
mod role;
mod rolebinding;
mod spec;

pub use error::RbacError;
pub use grant::{OPERATIONS, Operation, VERBS, Verb};
pub use input::{RoleBindingInput, RoleInput};
pub use permissions::Permissions;
pub use role::{Role, RoleCommand, RoleEvent};
pub use rolebinding::{RoleBinding, RoleBindingCommand, RoleBindingEvent};
pub use spec::{RoleBindingSpec, RoleSpec, Rule, built_in, validate_rules};

pub const ROLE_AGGREGATE_TYPE: &str = wire::Kind::Role.info().aggregate_type;
pub const BINDING_AGGREGATE_TYPE: &str = wire::Kind::RoleBinding.info().aggregate_type;

/// Every resource a rule may name: each kind's (from the kind registry), and `audit`.
pub const RESOURCES: [&str; 8] = wire::RBAC_RESOURCES;
/// The operation that issues tokens for other users (see [`Operation::ImpersonateUsers`]).
pub const IMPERSONATE: &str = Operation::ImpersonateUsers.as_str();

pub const ADMIN: &str = "admin";
pub const EDITOR: &str = "editor";
pub const VIEWER: &str = "viewer";
/// For Prometheus: `view:metrics` and nothing else.
pub const MONITORING: &str = "monitoring";
/// The built-in roles, in the order lists show them.
pub const BUILT_IN_ROLES: [&str; 4] = [ADMIN, EDITOR, VIEWER, MONITORING];

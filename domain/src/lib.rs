//! mcpd's domain: resource specs with their validation, and one event-sourced aggregate per
//! resource kind (commands, events, rules). Nothing here does I/O; facts the rules need from
//! other aggregates (does the referenced secret exist?) arrive inside the commands.
#![forbid(unsafe_code)]

pub mod command;
pub mod default_backend;
pub mod document;
pub mod error;
pub mod llm;
pub mod metadata;
pub mod migration;
pub mod name;
pub mod rbac;
pub mod secret;
pub mod secret_backend;
pub mod token;
pub mod upcast;
pub mod user;
pub mod validation;

pub use command::Creates;
pub use error::ErrorClass;
pub use name::ResourceName;
pub use validation::{FieldError, ValidationErrors};

//! A role binding: one role granted to users.

mod aggregate;
mod commands;
mod events;

pub use aggregate::RoleBinding;
pub use commands::RoleBindingCommand;
pub use events::RoleBindingEvent;

//! A custom role: its write side (the built-in ones are not aggregates).

mod aggregate;
mod commands;
mod events;

pub use aggregate::Role;
pub use commands::RoleCommand;
pub use events::RoleEvent;

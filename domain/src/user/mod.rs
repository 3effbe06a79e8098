//! A user: who a token authenticates as, and whom role bindings name. Users are event-sourced
//! like every resource; a deleted user's tokens stop working at once (authentication looks the
//! user up), and the name can be created again later.

pub const AGGREGATE_TYPE: &str = wire::Kind::User.info().aggregate_type;

/// The user every empty store starts with, bound to the `admin` role.
pub const BOOTSTRAP_ADMIN: &str = "admin";

mod aggregate;
mod commands;
mod events;
mod input;

pub use aggregate::{User, UserError};
pub use commands::UserCommand;
pub use events::UserEvent;
pub use input::UserInput;

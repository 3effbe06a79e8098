//! An API token: a bearer credential of one user. The token itself is shown once, when it is
//! issued; events and tables hold only its SHA-256 hash (a token is 256 random bits, so a fast
//! hash is enough: there is nothing to guess). Revoking is final.

pub const AGGREGATE_TYPE: &str = wire::Kind::Token.info().aggregate_type;

mod aggregate;
mod commands;
mod events;

pub use aggregate::{Token, TokenError};
pub use commands::TokenCommand;
pub use events::TokenEvent;

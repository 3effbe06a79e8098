//! mcpd's read side. The projector follows the event log in commit order and keeps one SQL
//! table per resource kind; each table's checkpoint moves in the same transaction as its rows,
//! so a crash never leaves a read model silently behind. Reads are plain queries on those tables.
#![forbid(unsafe_code)]

pub mod append;
pub mod audit;
pub mod db;
pub mod denials;
pub mod idempotency;
pub mod log;
pub mod projector;
pub mod read_models;
pub mod rebuild;
pub mod status;

pub use db::{Database, Dialect};
pub use log::{EventLog, Position, StoredEvent};
pub use projector::{Projector, ProjectorConfig, ProjectorHandle, WaitError};

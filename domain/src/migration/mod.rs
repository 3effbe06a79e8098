//! A migration run: moving secrets from one backend to another, as an aggregate of its own so
//! that every run, what it moved, what it skipped and why it stopped stay on record. Which
//! secrets are on the destination is not tracked here: that is each Secret's `SecretMigrated`
//! history, which is what makes a run resumable after any crash.

mod aggregate;
mod commands;
mod events;

pub use aggregate::{MigrationError, MigrationRun, MigrationStatus};
pub use commands::MigrationCommand;
pub use events::{MigrationEvent, SkippedSecret};

/// The aggregate type in the event log.
pub const AGGREGATE_TYPE: &str = wire::Kind::Migration.info().aggregate_type;

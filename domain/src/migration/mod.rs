//! A migration run: moving secrets from one backend to another, as an aggregate of its own so
//! that every run, what it moved, what it skipped and why it stopped stay on record. Which
//! secrets are on the destination is not tracked here: that is each Secret's `SecretMigrated`
//! history, which is what makes a run resumable after any crash.

mod aggregate;

pub use aggregate::{MigrationCommand, MigrationError, MigrationEvent, MigrationRun, MigrationStatus, SkippedSecret};

/// The aggregate type in the event log.
pub const AGGREGATE_TYPE: &str = "migration";

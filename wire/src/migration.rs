//! A secret migration run: from which backend to which, and how far it got.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::Kind;
use crate::document::{Cell, Column, Spec, column};

/// Where a run is in its life. `new` is the write side's state before its first event; a run
/// mcpd shows is always one of the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MigrationStatus {
    #[default]
    New,
    Running,
    Completed,
    Failed,
}

impl MigrationStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            MigrationStatus::New => "new",
            MigrationStatus::Running => "running",
            MigrationStatus::Completed => "completed",
            MigrationStatus::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<MigrationStatus> {
        [MigrationStatus::New, MigrationStatus::Running, MigrationStatus::Completed, MigrationStatus::Failed]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// A run as mcpd shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationState {
    pub from: String,
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
    pub keep_source: bool,
    pub status: MigrationStatus,
    pub moved: i64,
    pub skipped: i64,
    pub failed: i64,
    /// How often mcpd picked the run up again after a restart.
    pub resumed: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Spec for MigrationState {
    const KIND: Kind = Kind::Migration;
    const COLUMNS: &'static [Column<Self>] = &[
        Column::NAME,
        column("FROM", |d| Cell::Text(Cow::Borrowed(&d.spec.from))),
        column("TO", |d| Cell::Text(Cow::Borrowed(&d.spec.to))),
        column("STATUS", |d| Cell::Text(Cow::Borrowed(d.spec.status.as_str()))),
        column("MOVED", |d| Cell::show(d.spec.moved)),
        column("SKIPPED", |d| Cell::show(d.spec.skipped)),
        column("FAILED", |d| Cell::show(d.spec.failed)),
        Column::AGE,
    ];
    const WIDE: &'static [Column<Self>] = &[
        column("RESUMED", |d| Cell::show(d.spec.resumed)),
        column("KEEP SOURCE", |d| Cell::show(d.spec.keep_source)),
        column("ERROR", |d| Cell::OrNone(d.spec.last_error.as_deref())),
    ];
    const DESCRIBE: &'static [Column<Self>] = &[
        column("From", |d| Cell::Text(Cow::Borrowed(&d.spec.from))),
        column("To", |d| Cell::Text(Cow::Borrowed(&d.spec.to))),
        column("Names", |d| Cell::ListOrNone(d.spec.names.as_deref().unwrap_or_default())),
        column("Keep Source", |d| Cell::show(d.spec.keep_source)),
        column("Status", |d| Cell::Text(Cow::Borrowed(d.spec.status.as_str()))),
        column("Moved", |d| Cell::show(d.spec.moved)),
        column("Skipped", |d| Cell::show(d.spec.skipped)),
        column("Failed", |d| Cell::show(d.spec.failed)),
        column("Resumed", |d| Cell::show(d.spec.resumed)),
        column("Last Error", |d| Cell::OrNone(d.spec.last_error.as_deref())),
    ];
}

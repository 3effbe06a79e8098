use super::SkippedSecret;
use crate::name::ResourceName;

#[derive(Debug, Clone, PartialEq)]
pub enum MigrationCommand {
    StartMigration {
        id: ResourceName,
        from: ResourceName,
        to: ResourceName,
        names: Option<Vec<String>>,
        keep_source: bool,
    },
    /// Secrets moved and skipped since the last record (recorded in batches).
    RecordProgress {
        id: ResourceName,
        moved: Vec<String>,
        skipped: Vec<SkippedSecret>,
    },
    /// mcpd restarted while the run was unfinished, and picks it up again.
    ResumeMigration {
        id: ResourceName,
        reason: String,
    },
    CompleteMigration {
        id: ResourceName,
        moved: u64,
        skipped: u64,
        failed: u64,
    },
    /// The run stopped at `secret`; everything before it is done and recorded.
    FailMigration {
        id: ResourceName,
        secret: Option<String>,
        reason: String,
    },
}

impl crate::Creates for MigrationCommand {
    fn creates(&self) -> bool {
        match self {
            MigrationCommand::StartMigration { .. } => true,
            MigrationCommand::RecordProgress { .. }
            | MigrationCommand::ResumeMigration { .. }
            | MigrationCommand::CompleteMigration { .. }
            | MigrationCommand::FailMigration { .. } => false,
        }
    }
}

//! Moving secrets between backends, server-side. Each secret moves on its own: read from the
//! source, write to the destination, record `SecretMigrated` (the flip: reads go to the
//! destination from then on), then remove the source copy and record that too. The run itself
//! is a `migration` aggregate; which secrets are already moved is read from the secrets' own
//! histories, so a run interrupted at any instant is finished by running it again, and runs
//! left unfinished by a crash are resumed at start-up.

use std::collections::BTreeSet;
use std::sync::Arc;

use domain::ResourceName;
use domain::migration::{MigrationCommand, MigrationRun, SkippedSecret};
use domain::secret::{Secret, SecretCommand, SecretData, SecretEvent};
use projections::read_models::secrets::SecretState;
use projections::read_models::{Record, migrations, secret_backends, secrets};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::context::RequestContext;
use crate::error::ApiError;
use crate::service::{Recorded, Services};
use crate::store::write::{Decided, WriteError};
use backends::SecretBackendDriver;

mod cleanup;
mod copy;
mod run;
mod start;

/// The migration runner: starts runs (one at a time in a process, through the slot `Services`
/// holds, and across replicas, through an advisory lock), runs them, and resumes the ones a
/// crash left unfinished. Cheap to make: it shares `Services`.
#[derive(Clone)]
pub struct Runner {
    services: Services,
}

impl Runner {
    pub fn new(services: Services) -> Runner {
        Runner { services }
    }
}

/// How many secrets' outcomes one `MigrationProgressed` event records.
const PROGRESS_BATCH: usize = 50;
/// How often one secret is copied again when it keeps changing under the migration.
const COPY_ATTEMPTS: usize = 5;

/// `POST /api/v1/secrets/migrate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MigrationRequest {
    pub from: String,
    pub to: String,
    /// Only these secrets; all on `from` when omitted.
    pub names: Option<Vec<String>>,
    #[serde(default)]
    pub keep_source: bool,
    #[serde(default)]
    pub dry_run: bool,
}

/// One line of the progress stream (NDJSON).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Progress {
    Started { run: String, from: String, to: String, total: usize, dry_run: bool },
    Secret { name: String, outcome: SecretOutcome, message: Option<String> },
    Finished { run: String, status: Finish, moved: u64, skipped: u64, failed: u64, error: Option<String> },
}

/// What became of one secret, as the progress stream says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SecretOutcome {
    Migrated,
    Skipped,
    Failed,
    /// A dry run's: it would be moved.
    WouldMigrate,
}

/// How a run's progress stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Finish {
    Completed,
    Failed,
    /// Stopped by a shutdown between batches: the run stays running and is resumed.
    Interrupted,
    /// A dry run's plan.
    Planned,
}

/// Why a run stops at a secret. Recorded on the run (and shown) as its message.
#[derive(Debug, thiserror::Error)]
enum Stop {
    #[error(transparent)]
    Backend(#[from] backends::BackendError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] crate::store::write::StoreError),
    #[error(transparent)]
    Write(#[from] WriteError<std::convert::Infallible>),
    #[error(transparent)]
    Refused(#[from] ApiError),
    /// Recorded, but readers do not see it yet (the message says how long it was waited for).
    #[error("{0}")]
    Lagging(String),
    #[error("{name:?}: {message}")]
    BadName { name: String, message: String },
    #[error("its values are missing from {0}")]
    ValuesMissing(ResourceName),
    #[error("it kept changing; gave up after {COPY_ATTEMPTS} copies")]
    KeptChanging,
}

enum Outcome {
    Moved,
    Skipped(Skip),
}

/// Why a run leaves a secret where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Skip {
    /// A named secret that does not exist.
    NotFound,
    /// It is on neither end of the run.
    OnAnotherBackend(ResourceName),
    /// It holds the token of these openbao backends, which read it from plaintext.
    HoldsToken(Vec<String>),
    /// It is on the destination already (a run that moves every secret does not mention it).
    AlreadyThere(ResourceName),
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::NotFound => write!(f, "not found"),
            Skip::OnAnotherBackend(backend) => write!(f, "on backend {backend}"),
            Skip::HoldsToken(backends) => {
                write!(f, "holds the token of secretbackend {}; it stays on plaintext", backends.join(", "))
            }
            Skip::AlreadyThere(backend) => write!(f, "already on {backend}"),
        }
    }
}

/// A secret copied to the destination, with its flip (rehearsed for a batch commit).
struct Copy {
    name: ResourceName,
    /// What stays on the source until the clean-up.
    source_ref: String,
    written: backends::Written,
    flip: SecretCommand,
    /// Once rehearsed: the flip's events, the sequence before them, and the secret with them
    /// applied (where its clean-up is rehearsed next).
    events: Vec<SecretEvent>,
    sequence: u64,
    aggregate: Secret,
}

/// What is known of one secret before its copy: its read-model row (`None`: it does not exist)
/// and, when read already, its values on the source.
struct Known {
    record: Option<Record<SecretState>>,
    values: Option<SecretData>,
}

/// A batch's rows, values and aggregates, read in one go before its copies.
struct Prefetched {
    records: std::collections::HashMap<String, Record<SecretState>>,
    values: std::collections::HashMap<String, SecretData>,
    aggregates: std::collections::HashMap<String, crate::store::write::Loaded<Secret>>,
}

/// A batch between its copies and its flips: outcomes in order (`None`: copied, flip pending).
struct Batch {
    outcomes: Vec<(String, Option<Result<Outcome, Stop>>)>,
    copies: Vec<Copy>,
}

impl Batch {
    /// Whether a secret of the batch stopped the run.
    fn stopped(&self) -> bool {
        self.outcomes.iter().any(|(_, o)| matches!(o, Some(Err(_))))
    }
}

/// A secret looked at: settled, or copied and waiting for its flip.
enum Step {
    Done(Outcome),
    Copied(Box<Copy>),
}

/// What a migration run needs to go on.
#[derive(Clone)]
struct Run {
    id: ResourceName,
    from: ResourceName,
    to: ResourceName,
    names: Option<Vec<String>>,
    keep_source: bool,
    /// Secret -> the openbao backends whose token it holds, when `to` is not plaintext: those
    /// secrets stay where they are. Read once when the run starts.
    pins: Arc<std::collections::HashMap<String, Vec<String>>>,
}

/// For handlers: the stream's lines as NDJSON.
pub fn ndjson(rx: mpsc::Receiver<Progress>) -> impl futures::Stream<Item = Result<String, std::convert::Infallible>> {
    futures::stream::unfold(rx, |mut rx| async move {
        let line = rx.recv().await?;
        let mut text = serde_json::to_string(&line).expect("progress serialises");
        text.push('\n');
        Some((Ok(text), rx))
    })
}

/// The advisory lock a running migration holds on PostgreSQL, so replicas run one at a time.
const MIGRATION_LOCK: &str = "secret-migration";

/// How often each mcpd looks for a migration whose runner died.
const RESUME_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3);

//! The command line, with clap derive. Every command's `--help` ends with examples.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod create;
pub use create::*;

#[derive(Debug, Parser)]
#[command(
    name = "mcpctl",
    version,
    about = "Manage LLMs, secrets and secret backends on an mcpd server",
    after_help = "Examples:\n  mcpctl get llms\n  mcpctl apply -f catalogue.yaml\n  mcpctl describe secret anthropic"
)]
pub struct Cli {
    /// mcpd's URL; overrides the config file (default http://127.0.0.1:3100).
    #[arg(long, global = true, env = "MCPCTL_SERVER")]
    pub server: Option<String>,

    /// The bearer token to authenticate with; overrides the config file (see `mcpctl login`).
    #[arg(long, global = true, env = "MCPCTL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// A PEM file of the CA that signed mcpd's TLS certificate, for an https:// server whose CA
    /// the system does not trust; overrides the config file (`mcpctl login` stores it).
    #[arg(long, global = true, env = "MCPCTL_CERTIFICATE_AUTHORITY", value_name = "PEM_FILE")]
    pub certificate_authority: Option<std::path::PathBuf>,

    /// How long to keep retrying when mcpd is restarting or rate-limits (e.g. 10s, 500ms, 0s).
    #[arg(long, global = true, env = "MCPCTL_RETRY_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub retry_timeout: std::time::Duration,

    #[command(subcommand)]
    pub command: Command,
}

fn parse_duration(raw: &str) -> Result<std::time::Duration, String> {
    let parsed: jiff::SignedDuration =
        raw.parse().map_err(|e| format!("{raw:?} is not a duration such as 10s: {e}"))?;
    std::time::Duration::try_from(parsed).map_err(|_| format!("{raw:?} must not be negative"))
}

/// Resource kinds, named as the kind registry (`wire::Kind`) names them, with its plural and
/// short names as aliases; and `all`. Its names, help and completions come from the registry
/// (see `kind.rs`), and a registry kind without a variant here does not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Llm,
    Secret,
    SecretBackend,
    /// Every kind of the catalogue, in dependency order (`get` only): `get all -o yaml --reveal`
    /// is a backup.
    All,
    Migration,
    User,
    Token,
    Role,
    RoleBinding,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Wide,
    Json,
    Yaml,
    Name,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DryRun {
    /// Apply for real.
    None,
    /// Print what would happen; only reads from mcpd.
    Client,
    /// Have mcpd check every document and rule without recording anything.
    Server,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create one resource from flags.
    #[command(subcommand)]
    Create(Create),

    /// List resources, or show the named ones.
    #[command(
        after_help = "Examples:\n  mcpctl get llms\n  mcpctl get sb -o wide\n  mcpctl get secret anthropic -o yaml --reveal\n  mcpctl get all -o yaml --reveal > backup.yaml\n  mcpctl get llms -w"
    )]
    Get {
        #[arg(ignore_case = true)]
        kind: Kind,
        names: Vec<String>,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
        /// Include secret values (secrets only).
        #[arg(long)]
        reveal: bool,
        /// Fetch lists this many at a time, printing tables as they come (0: all at once).
        #[arg(long, default_value_t = 500)]
        chunk_size: u32,
        /// After listing, print each change as it happens, until interrupted.
        #[arg(short, long)]
        watch: bool,
        /// With --watch: print only changes, not the current list first.
        #[arg(long, requires = "watch")]
        watch_only: bool,
        /// With --watch: say which change each row is (ADDED, MODIFIED, DELETED).
        #[arg(long, requires = "watch")]
        output_watch_events: bool,
    },

    /// Show one resource in detail: its fields, what refers to it, and its history.
    #[command(after_help = "Examples:\n  mcpctl describe llm claude-fast\n  mcpctl describe secret anthropic")]
    Describe {
        #[arg(ignore_case = true)]
        kind: Kind,
        name: String,
    },

    /// Delete resources by name, or those listed in files.
    #[command(
        after_help = "Examples:\n  mcpctl delete llm claude-fast\n  mcpctl delete -f catalogue.yaml --ignore-not-found"
    )]
    Delete {
        /// The kind, then names; omit both with -f.
        #[arg(ignore_case = true, required_unless_present = "filename")]
        kind: Option<Kind>,
        names: Vec<String>,
        /// Files or directories of documents to delete (in reverse dependency order), or `-`.
        #[arg(short = 'f', long = "filename", conflicts_with = "kind")]
        filename: Vec<PathBuf>,
        /// Treat a resource that does not exist as deleted.
        #[arg(long)]
        ignore_not_found: bool,
    },

    /// Create or update resources from YAML or JSON documents.
    #[command(
        after_help = "Examples:\n  mcpctl apply -f catalogue.yaml\n  mcpctl apply -f ./catalogue/ --dry-run=server\n  mcpctl get llms -o yaml | mcpctl apply -f -"
    )]
    Apply {
        /// Files or directories (*.yaml, *.yml, *.json), or `-` for standard input.
        #[arg(short = 'f', long = "filename", required = true)]
        filename: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "none", num_args = 0..=1, default_missing_value = "client", require_equals = true)]
        dry_run: DryRun,
    },

    /// Move secrets from one backend to another, server-side, resumably.
    #[command(subcommand)]
    Migrate(Migrate),

    /// Show what apply would change, as a unified diff; exit 1 when something would change.
    #[command(after_help = "Examples:\n  mcpctl diff -f catalogue.yaml")]
    Diff {
        #[arg(short = 'f', long = "filename", required = true)]
        filename: Vec<PathBuf>,
    },

    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  source <(mcpctl completion bash)\n  mcpctl completion fish > ~/.config/fish/completions/mcpctl.fish"
    )]
    Completion { shell: clap_complete::Shell },

    /// A kind's fields, their types and what they mean (from the server's API description).
    #[command(
        after_help = "Examples:\n  mcpctl explain llm\n  mcpctl explain llm.apiKeyRef\n  mcpctl explain secretbackend.config.tlsServerName"
    )]
    Explain {
        /// KIND or KIND.FIELD[.FIELD…]
        target: String,
    },

    /// Print the client's and the server's versions.
    #[command(after_help = "Examples:\n  mcpctl version\n  mcpctl --server http://mcpd.internal:3100 version")]
    Version,

    /// Who changed what: mcpd's event log, newest first, filtered; or followed live.
    #[command(
        after_help = "Examples:\n  mcpctl audit --kind llm --name claude-fast\n  mcpctl audit --actor alice --since 2h\n  mcpctl audit --type SecretUpdated -o json\n  mcpctl audit --follow\n  mcpctl audit --denied --actor alice --since 1h"
    )]
    Audit(AuditArgs),

    /// Ask an Llm through mcpd (which holds its key); the answer streams as it arrives.
    #[command(
        after_help = "Examples:\n  mcpctl infer claude-fast \"Summarise RFC 9110 in one line\"\n  mcpctl infer tier:fast -f prompt.txt --system \"Answer in French\"\n  git diff | mcpctl infer gpt-heavy --max-tokens 500\n  mcpctl infer claude-fast hello -o json"
    )]
    Infer(InferArgs),

    /// Inference usage per user and Llm: requests, errors, tokens in and out.
    #[command(
        after_help = "Examples:\n  mcpctl usage\n  mcpctl usage --llm claude-fast --since 24h\n  mcpctl usage --user alice -o json"
    )]
    Usage(UsageArgs),

    /// Questions about the current token.
    #[command(subcommand)]
    Auth(AuthCommand),

    /// Store a token (and optionally the server) in the client config, after checking it works.
    #[command(
        after_help = "Examples:\n  mcpctl login --token \"$(cat mcpd-data/admin-token)\"\n  mcpctl login --token T --server https://mcpd.example.com"
    )]
    Login,

    /// Show or change the client configuration (~/.mcpctl/config.json, or $MCPCTL_CONFIG).
    #[command(subcommand)]
    Config(ConfigCommand),

    /// Operate mcpd itself.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// The read models built from the event log: check, rebuild, verify.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
}

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Each read model's checkpoint, the log head, lag, last error and latest rebuild.
    #[command(after_help = "Examples:\n  mcpctl admin projections status\n  mcpctl admin projections status -o json")]
    Status {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Replay the event log into fresh tables while mcpd keeps serving, then swap them in.
    /// Shows progress until it is done; exits 1 if it fails.
    #[command(
        after_help = "Examples:\n  mcpctl admin projections rebuild llms\n  mcpctl admin projections rebuild --all\n  mcpctl admin projections rebuild --all --no-wait"
    )]
    Rebuild {
        /// Read models: llms, secrets, secret_backends, migrations, users, tokens, rbac.
        #[arg(required_unless_present = "all")]
        names: Vec<String>,
        #[arg(long, conflicts_with = "names")]
        all: bool,
        /// Start the rebuild and return; `status` shows its progress.
        #[arg(long)]
        no_wait: bool,
    },
    /// Replay the event log and compare it with the tables row by row; prints the differences
    /// and exits 1 on any.
    #[command(
        after_help = "Examples:\n  mcpctl admin projections verify\n  mcpctl admin projections verify llms secrets"
    )]
    Verify {
        /// Read models to verify; all when none are named.
        names: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum Migrate {
    /// Move every secret (or the named ones) from one backend to another. mcpd runs the
    /// migration and keeps going if this command is interrupted; run it again to finish an
    /// interrupted one.
    #[command(
        after_help = "Examples:\n  mcpctl migrate secrets --from default --to bao --dry-run\n  mcpctl migrate secrets --from default --to bao\n  mcpctl migrate secrets --from bao --to default --names anthropic,openai --keep-source\n  mcpctl get migrations"
    )]
    Secrets {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// Only these secrets (comma-separated).
        #[arg(long, value_delimiter = ',')]
        names: Vec<String>,
        /// Leave the values on the source backend too.
        #[arg(long)]
        keep_source: bool,
        /// List what would move; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this kind (llm, secret, secretbackend, user, token, role, rolebinding, migration).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only resources of this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Only what this user did.
    #[arg(long)]
    pub actor: Option<String>,
    /// Only this event type (SecretUpdated, LlmCreated, …).
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// Not before this: a duration ago (2h, 30m, 7d) or an RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// Before this: a duration ago or an RFC 3339 time.
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many rows (1-1000).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Continue after this position (the last row of the previous page).
    #[arg(long)]
    pub after: Option<String>,
    /// Keep printing new events as they are appended (Ctrl-C stops).
    #[arg(short = 'f', long, conflicts_with = "denied")]
    pub follow: bool,
    /// The requests mcpd refused (401, 403) instead of the changes: who or which address tried
    /// what, and why (takes --actor, --since, --until, --limit, --after, --status).
    #[arg(long, conflicts_with_all = ["kind", "name", "event_type"])]
    pub denied: bool,
    /// With --denied: only refusals with this status (401 or 403).
    #[arg(long, requires = "denied", value_parser = ["401", "403"])]
    pub status: Option<String>,
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct InferArgs {
    /// The Llm's name, or tier:fast / tier:heavy.
    pub llm: String,
    /// The prompt; else the file of -f, else standard input.
    #[arg(conflicts_with = "file")]
    pub prompt: Option<String>,
    /// Read the prompt from this file (`-`: standard input).
    #[arg(short = 'f', long = "filename")]
    pub file: Option<PathBuf>,
    /// A system prompt.
    #[arg(long)]
    pub system: Option<String>,
    /// The most tokens the answer may have.
    #[arg(long)]
    pub max_tokens: Option<u64>,
    /// `text` streams the answer; `json` prints the whole response (OpenAI's shape) at the end.
    #[arg(short, long, value_parser = ["text", "json"], default_value = "text")]
    pub output: String,
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Only this Llm.
    #[arg(long)]
    pub llm: Option<String>,
    /// Only this user (another user's usage needs view:audit).
    #[arg(long)]
    pub user: Option<String>,
    /// From this long ago (2h, 7d) or this RFC 3339 time; counted by the hour.
    #[arg(long)]
    pub since: Option<String>,
    #[arg(short, long, value_parser = ["table", "json", "yaml"], default_value = "table")]
    pub output: String,
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// May the current token do this? Prints yes or no; exits 0 for yes, 1 for no.
    #[command(
        name = "can-i",
        after_help = "Examples:\n  mcpctl auth can-i edit llms claude-fast\n  mcpctl auth can-i delete secrets\n  mcpctl auth can-i reveal:secrets\n  mcpctl auth can-i run:infer llm/claude-fast"
    )]
    CanI {
        /// view, create, edit or delete; or an operation such as reveal:secrets.
        verb: String,
        /// The kind (llms, secrets, …), or KIND/NAME; omitted for an operation on anything.
        kind: Option<String>,
        name: Option<String>,
    },
    /// Who the current token authenticates.
    Whoami,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Set the mcpd URL mcpctl talks to.
    #[command(after_help = "Examples:\n  mcpctl config set-server http://mcpd.internal:3100")]
    SetServer { url: String },
    /// Print the configuration in use.
    #[command(after_help = "Examples:\n  mcpctl config view")]
    View,
}

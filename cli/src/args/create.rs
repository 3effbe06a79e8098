//! `mcpctl create`: one subcommand per kind, with its flags.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum Create {
    /// Create a secret backend.
    #[command(visible_aliases = ["secretbackends", "sb"], after_help = "Examples:\n  mcpctl create secretbackend archive --type plaintext\n  mcpctl create secret bao-token --data token=-\n  mcpctl create secretbackend bao --type openbao --url http://127.0.0.1:8200 --token-secret bao-token/token --default")]
    Secretbackend(CreateSecretBackend),
    /// Create a secret from literal values, standard input, or an env file.
    #[command(
        alias = "secrets",
        after_help = "Examples:\n  mcpctl create secret anthropic --data API_KEY=sk-ant-...\n  pass show anthropic | mcpctl create secret anthropic --data API_KEY=-\n  mcpctl create secret openai --from-env-file openai.env --backend archive"
    )]
    Secret(CreateSecret),
    /// Create an Llm.
    #[command(
        alias = "llms",
        after_help = "Examples:\n  mcpctl create llm claude-fast --type anthropic --model claude-haiku-4-5 --tier fast --api-key-ref anthropic/API_KEY\n  mcpctl create llm local --type ollama --model llama3 --tier fast --url http://127.0.0.1:11434"
    )]
    Llm(CreateLlm),
    /// Create a user (tokens authenticate as a user).
    #[command(alias = "users", after_help = "Examples:\n  mcpctl create user alice --description \"SRE on call\"")]
    User(CreateUser),
    /// Issue an API token for a user. The token is printed once and never again.
    #[command(
        alias = "tokens",
        after_help = "Examples:\n  mcpctl create token --user alice --expires 30d --description laptop\n  mcpctl create token --user ci --expires 2027-01-01T00:00:00Z"
    )]
    Token(CreateToken),
    /// Create a role from flags: verbs on resources (optionally only some names), or operations.
    #[command(
        alias = "roles",
        after_help = "Examples:\n  mcpctl create role llm-editor --verb=view,edit --resource=llms\n  mcpctl create role claude-fast-editor --verb=view,edit --resource=llms --resource-name=claude-fast\n  mcpctl create role migrator --operation=run:migrate-secrets"
    )]
    Role(CreateRole),
    /// Grant a role to users.
    #[command(
        alias = "rolebindings",
        after_help = "Examples:\n  mcpctl create rolebinding alice-views --role=viewer --user=alice\n  mcpctl create rolebinding ops --role=editor --user=alice --user=bob"
    )]
    Rolebinding(CreateRoleBinding),
}

#[derive(Debug, Args)]
pub struct CreateRole {
    pub name: String,
    /// view, create, edit, delete (comma-separated or repeated).
    #[arg(long = "verb", value_delimiter = ',')]
    pub verbs: Vec<String>,
    /// llms, secrets, secretbackends, users, tokens, rbac, migrations, audit.
    #[arg(long = "resource", value_delimiter = ',')]
    pub resources: Vec<String>,
    /// Only these resources by name.
    #[arg(long = "resource-name", value_delimiter = ',')]
    pub resource_names: Vec<String>,
    /// run:migrate-secrets, run:rebuild-projections, reveal:secrets, view:audit.
    #[arg(long = "operation", value_delimiter = ',')]
    pub operations: Vec<String>,
    #[arg(long)]
    pub description: Option<String>,
}

#[derive(Debug, Args)]
pub struct CreateRoleBinding {
    pub name: String,
    #[arg(long)]
    pub role: String,
    /// A user to grant the role to (repeat, or comma-separate).
    #[arg(long = "user", value_delimiter = ',', required = true)]
    pub users: Vec<String>,
    #[arg(long)]
    pub description: Option<String>,
}

#[derive(Debug, Args)]
pub struct CreateUser {
    pub name: String,
    #[arg(long)]
    pub description: Option<String>,
}

#[derive(Debug, Args)]
pub struct CreateToken {
    /// The user the token authenticates as.
    #[arg(long)]
    pub user: String,
    /// A duration (30d, 12h, 90m) or an RFC 3339 time; never expires when omitted.
    #[arg(long)]
    pub expires: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
}

#[derive(Debug, Args)]
pub struct CreateSecretBackend {
    pub name: String,
    /// plaintext (values in mcpd's database) or openbao (OpenBao / Vault KV v2).
    #[arg(long = "type", value_parser = ["plaintext", "openbao"])]
    pub backend_type: String,
    #[arg(long)]
    pub description: Option<String>,
    /// Make it the backend new secrets go to (the flag moves from the current default).
    #[arg(long)]
    pub default: bool,
    /// openbao: the server's URL, e.g. http://127.0.0.1:8200.
    #[arg(long, required_if_eq("backend_type", "openbao"))]
    pub url: Option<String>,
    /// openbao: SECRET/KEY of a plaintext secret holding the token.
    #[arg(long, required_if_eq("backend_type", "openbao"))]
    pub token_secret: Option<String>,
    /// openbao: the KV v2 mount (default secret).
    #[arg(long)]
    pub mount: Option<String>,
    /// openbao: prefix of every secret's path under the mount (default mcpd/).
    #[arg(long)]
    pub path_prefix: Option<String>,
    /// openbao: sent as X-Vault-Namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// openbao: seconds each call may take (default 10).
    #[arg(long)]
    pub timeout_seconds: Option<u64>,
    /// openbao: on delete, mark the latest version deleted instead of removing every version.
    #[arg(long)]
    pub soft_delete: bool,
}

#[derive(Debug, Args)]
pub struct CreateSecret {
    pub name: String,
    /// KEY=VALUE; KEY=- reads the value from standard input. Repeatable.
    #[arg(long = "data")]
    pub data: Vec<String>,
    /// A file of KEY=VALUE lines (blank lines and # comments are skipped).
    #[arg(long)]
    pub from_env_file: Option<PathBuf>,
    /// The backend holding the values; the default backend when omitted.
    #[arg(long)]
    pub backend: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
}

#[derive(Debug, Args)]
pub struct CreateLlm {
    pub name: String,
    #[arg(long = "type", value_parser = ["anthropic", "openai", "deepseek", "vllm", "ollama", "gemini-cli"])]
    pub llm_type: String,
    #[arg(long)]
    pub model: String,
    #[arg(long, value_parser = ["fast", "heavy"])]
    pub tier: String,
    /// SECRET/KEY holding the API key.
    #[arg(long)]
    pub api_key_ref: Option<String>,
    /// The endpoint (required for vllm and ollama).
    #[arg(long)]
    pub url: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// k=v settings passed through to clients. Repeatable.
    #[arg(long)]
    pub extra: Vec<String>,
}

//! mcpctl: the kubectl-style CLI for mcpd. The verbs arrive with the CLI work; today it only
//! says what it is.
#![forbid(unsafe_code)]

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "mcpctl",
    version,
    about = "Manage LLMs, secrets and secret backends on an mcpd server"
)]
struct Cli {}

fn main() {
    Cli::parse();
}

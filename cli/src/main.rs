//! mcpctl: the kubectl-style CLI for mcpd. Parsing comes first and nothing heavy runs before
//! it: a short-lived process should start fast.
#![forbid(unsafe_code)]

/// `println!` that returns an error instead of panicking when stdout is closed (`| head`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?
    }};
}

/// `print!`, likewise.
macro_rules! out_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout(), $($arg)*)?
    }};
}

mod apply;
mod args;
mod audit;
mod client;
mod config;
mod create;
mod documents;
mod explain;
mod get;
mod infer;
mod kind;
mod migrate;
mod output;
mod projections;
mod watch;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::args::{Cli, Command, ConfigCommand};
use crate::client::Client;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        // The reader went away (`mcpctl get llms | head -1`): not a failure of ours.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let connect = || -> anyhow::Result<Client> {
        let token = config::token(cli.token.clone())?;
        let ca = config::certificate_authority(cli.certificate_authority.clone())?;
        Client::new(config::server(cli.server.clone())?, cli.retry_timeout, token.as_deref(), ca.as_deref())
    };
    let ok = |success: bool| if success { 0 } else { 1 };
    Ok(match cli.command {
        Command::Create(create) => {
            create::run(&connect()?, create)?;
            0
        }
        Command::Get { kind, names, output, watch: true, watch_only, output_watch_events, .. } => {
            let options = watch::Options { names, output, initial: !watch_only, events: output_watch_events };
            watch::watch(&connect()?, kind, &options)?;
            0
        }
        Command::Get { kind, names, output, reveal, chunk_size, .. } => {
            ok(get::get(&connect()?, kind, &names, output, reveal, chunk_size)?)
        }
        Command::Explain { target } => {
            explain::run(&connect()?, &target)?;
            0
        }
        Command::Describe { kind, name } => {
            get::describe(&connect()?, kind, &name)?;
            0
        }
        Command::Delete { kind, names, filename, ignore_not_found } => {
            ok(apply::delete(&connect()?, kind, &names, &filename, ignore_not_found)?)
        }
        Command::Apply { filename, dry_run } => ok(apply::apply(&connect()?, &filename, dry_run)?),
        Command::Migrate(args::Migrate::Secrets { from, to, names, keep_source, dry_run }) => {
            let request = migrate::Request { from, to, names, keep_source, dry_run };
            ok(migrate::secrets(&connect()?, request)?)
        }
        Command::Diff { filename } => match apply::diff(&connect()?, &filename) {
            Ok(code) => code,
            Err(error) => {
                // diff's own convention: above 1 is an error.
                eprintln!("Error: {error:#}");
                2
            }
        },
        Command::Completion { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "mcpctl", &mut script);
            std::io::Write::write_all(&mut std::io::stdout(), &script)?;
            0
        }
        Command::Version => {
            out!("Client Version: {}", env!("CARGO_PKG_VERSION"));
            let client = connect()?;
            let server = client.get("/version")?.into_success()?;
            out!("Server Version: {}", server["version"].as_str().unwrap_or("unknown"));
            out!("Server: {}", client.base);
            0
        }
        Command::Auth(args::AuthCommand::CanI { verb, kind, name }) => {
            // kubectl style: `llm/claude-fast` names the resource in one word.
            let (kind, name) = match kind.as_deref().and_then(|k| k.split_once('/')) {
                Some(_) if name.is_some() => anyhow::bail!("give KIND NAME or KIND/NAME, not both"),
                Some((k, n)) => (Some(k.to_owned()), Some(n.to_owned())),
                None => (kind, name),
            };
            let mut query = vec![("verb", verb.clone())];
            if let Some(kind) = &kind {
                // kubectl style: a kind's singular, plural or short name, any case; or an RBAC
                // resource that is no kind (`rbac`, `audit`).
                let lower = kind.to_ascii_lowercase();
                let resource = match wire::Kind::parse(&lower) {
                    Some(kind) => kind.info().rbac_resource.to_owned(),
                    None if wire::RBAC_RESOURCES.contains(&lower.as_str()) => lower,
                    None => anyhow::bail!("unknown kind {kind:?}"),
                };
                query.push(("resource", resource));
            } else if !verb.contains(':') {
                anyhow::bail!("give a kind (mcpctl auth can-i {verb} llms), or an operation such as reveal:secrets");
            }
            if let Some(name) = name {
                query.push(("name", name));
            }
            let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(&query).finish();
            let answer = connect()?.get(&format!("/api/v1/auth/can-i?{encoded}"))?.into_success()?;
            let allowed = answer["allowed"] == serde_json::Value::Bool(true);
            out!("{}", if allowed { "yes" } else { "no" });
            ok(allowed)
        }
        Command::Auth(args::AuthCommand::Whoami) => {
            let me = connect()?.get("/api/v1/whoami")?.into_success()?;
            out!("{} (token {})", me["user"].as_str().unwrap_or("?"), me["tokenId"].as_str().unwrap_or("?"));
            0
        }
        Command::Infer(args) => infer::run(&connect()?, args)?,
        Command::Usage(args) => infer::usage(&connect()?, args)?,
        Command::Audit(args) => {
            audit::run(&connect()?, args)?;
            0
        }
        Command::Admin(args::AdminCommand::Projections(command)) => projections::run(&connect()?, command)?,
        Command::Login => {
            let Some(login_token) = cli.token.clone() else {
                anyhow::bail!("give the token to store: mcpctl login --token <token>");
            };
            let server = config::server(cli.server.clone())?;
            let ca = config::certificate_authority(cli.certificate_authority.clone())?;
            let client = Client::new(server.clone(), cli.retry_timeout, Some(&login_token), ca.as_deref())?;
            let me = client.get("/api/v1/whoami")?.into_success()?;
            let mut config = config::load()?;
            config.server = Some(server.clone());
            config.token = Some(login_token.trim().to_owned());
            if let Some(ca) = cli.certificate_authority.clone() {
                // Stored as an absolute path: the config is read from any directory.
                config.certificate_authority = Some(std::path::absolute(&ca).unwrap_or(ca));
            }
            let path = config::save(&config)?;
            out!("logged in to {server} as {} (saved in {})", me["user"].as_str().unwrap_or("?"), path.display());
            0
        }
        Command::Config(ConfigCommand::SetServer { url }) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                anyhow::bail!("the server URL must start with http:// or https://, not {url:?}");
            }
            let mut config = config::load()?;
            config.server = Some(url.trim_end_matches('/').to_owned());
            let path = config::save(&config)?;
            out!("server set to {} in {}", config.server.unwrap_or_default(), path.display());
            0
        }
        Command::Config(ConfigCommand::View) => {
            let config = config::load()?;
            let mut from_file = serde_json::to_value(&config)?;
            if from_file.get("token").is_some() {
                // The token is a credential: shown as present, never printed.
                from_file["token"] = serde_json::json!("(hidden)");
            }
            let shown = serde_json::json!({
                "path": config::path()?.display().to_string(),
                "server": config::server(cli.server)?,
                "fromFile": from_file,
            });
            out!("{}", serde_json::to_string_pretty(&shown)?);
            0
        }
    })
}

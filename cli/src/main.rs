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
mod session;
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
        Command::Version => session::version(&connect()?)?,
        Command::Auth(args::AuthCommand::CanI { verb, kind, name }) => {
            ok(session::can_i(&connect()?, verb, kind, name)?)
        }
        Command::Auth(args::AuthCommand::Whoami) => session::whoami(&connect()?)?,
        Command::Infer(args) => infer::run(&connect()?, args)?,
        Command::Usage(args) => infer::usage(&connect()?, args)?,
        Command::Audit(args) => {
            audit::run(&connect()?, args)?;
            0
        }
        Command::Admin(args::AdminCommand::Projections(command)) => projections::run(&connect()?, command)?,
        Command::Login => session::login(&cli)?,
        Command::Config(ConfigCommand::SetServer { url }) => session::set_server(&url)?,
        Command::Config(ConfigCommand::View) => session::view_config(cli.server)?,
    })
}

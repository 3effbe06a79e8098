#![forbid(unsafe_code)]

use clap::Parser;
use server::config::{Cli, Command};
use tracing_subscriber::EnvFilter;

/// mimalloc: glibc's allocator was a sixth of a proxied request's CPU time (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Serve(args) => *args,
        Command::Projections(command) => {
            let filter = EnvFilter::try_from_env("MCPD_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
            tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
            return match server::offline::run(command).await {
                Ok(code) => code,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    // 1 is verify's "the tables differ"; anything that went wrong is 2, as diff(1) does.
                    std::process::ExitCode::from(2)
                }
            };
        }
    };
    let filter = EnvFilter::try_from_env("MCPD_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if args.log_format == "json" {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
    match server::serve(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

//! `mcpd projections …`: status, rebuild and verify straight on the database, for when mcpd
//! cannot start (a read model it cannot open, a broken table). They take the same locks as a
//! running mcpd, so they are safe beside running replicas.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use projections::read_models::ReadModel;
use projections::rebuild::Progress;

use crate::config::{ProjectionsCommand, StoreArgs};

pub async fn run(command: ProjectionsCommand) -> anyhow::Result<ExitCode> {
    match command {
        ProjectionsCommand::Status(store) => {
            let db = open(&store).await?;
            let statuses = projections::status::status(&db, &ReadModel::ALL).await?;
            println!(
                "{:<16} {:>10} {:>10} {:>10} {:>9}  {:<10}  ERROR",
                "NAME", "CHECKPOINT", "HEAD", "LAG", "LAG(S)", "REBUILD"
            );
            for s in statuses {
                println!(
                    "{:<16} {:>10} {:>10} {:>10} {:>9.1}  {:<10}  {}",
                    s.name,
                    s.checkpoint.position,
                    s.head.position,
                    s.lag_events,
                    s.lag_seconds,
                    s.rebuild.as_ref().map_or("-", |r| r.status.as_str()),
                    s.last_error.as_deref().unwrap_or("-")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ProjectionsCommand::Rebuild { names, all, store } => {
            let models = select(&names, all)?;
            let db = open(&store).await?;
            let bar = Bar::new();
            let actor = format!("offline:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()));
            let done = projections::rebuild::rebuild(&db, &models, &actor, |p| bar.show(p)).await;
            bar.finish();
            let done = done.map_err(|e| anyhow::anyhow!(projections::projector::error_chain(&e)))?;
            let rows: Vec<String> = done.rows.iter().map(|(t, n)| format!("{t}={n}")).collect();
            println!(
                "rebuilt {} from {} events in {:.1}s ({:.0} events/s): {}",
                names_of(&models),
                done.events,
                done.elapsed.as_secs_f64(),
                done.events as f64 / done.elapsed.as_secs_f64().max(1e-9),
                rows.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        ProjectionsCommand::Verify { names, store } => {
            let models = select(&names, names.is_empty())?;
            let db = open(&store).await?;
            let bar = Bar::new();
            let differences = projections::rebuild::verify(&db, &models, |p| bar.show(p)).await;
            bar.finish();
            let differences = differences.map_err(|e| anyhow::anyhow!(projections::projector::error_chain(&e)))?;
            for d in &differences {
                println!("{d}");
            }
            if differences.is_empty() {
                println!("{}: the tables match a replay of the log", names_of(&models));
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("{} difference(s) between the tables and a replay of the log", differences.len());
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

async fn open(store: &StoreArgs) -> anyhow::Result<projections::Database> {
    let url = match &store.database_url {
        Some(url) => url.clone(),
        None => {
            let file = store.data_dir.join("mcpd.db");
            anyhow::ensure!(file.exists(), "no database at {}: pass --database-url or --data-dir", file.display());
            format!("sqlite://{}", file.display())
        }
    };
    app::store::open_database(&url).await.with_context(|| format!("opening {}", app::store::redact_url(&url)))
}

fn select(names: &[String], all: bool) -> anyhow::Result<Vec<ReadModel>> {
    if all {
        return Ok(ReadModel::ALL.to_vec());
    }
    anyhow::ensure!(!names.is_empty(), "name the projections to rebuild, or pass --all");
    let mut models = Vec::new();
    for name in names {
        let model = ReadModel::named(name).with_context(|| {
            let known: Vec<&str> = ReadModel::ALL.iter().map(|m| m.name()).collect();
            format!("no projection {name:?}; one of {}", known.join(", "))
        })?;
        models.push(model);
    }
    Ok(ReadModel::ALL.into_iter().filter(|m| models.contains(m)).collect())
}

fn names_of(models: &[ReadModel]) -> String {
    models.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
}

/// A progress bar on a terminal; nothing otherwise.
struct Bar(Option<ProgressBar>);

impl Bar {
    fn new() -> Self {
        if !std::io::stderr().is_terminal() {
            return Bar(None);
        }
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} events  {per_sec}  eta {eta}")
                .expect("a valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Bar(Some(bar))
    }

    fn show(&self, progress: &Progress) {
        if let Some(bar) = &self.0 {
            bar.set_length(progress.total);
            bar.set_position(progress.replayed);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

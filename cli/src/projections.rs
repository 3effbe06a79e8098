//! `mcpctl admin projections status|rebuild|verify`.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{Value, json};
use tabwriter::TabWriter;

use crate::args::{Output, ProjectionsCommand};
use crate::client::Client;
use crate::output::text;

pub fn run(client: &Client, command: ProjectionsCommand) -> anyhow::Result<u8> {
    match command {
        ProjectionsCommand::Status { output } => {
            let items = status(client)?;
            print_status(&items, output)?;
            Ok(0)
        }
        ProjectionsCommand::Rebuild { names, all, no_wait } => rebuild(client, &names, all, no_wait),
        ProjectionsCommand::Verify { names } => verify(client, &names),
    }
}

fn status(client: &Client) -> anyhow::Result<Vec<Value>> {
    let reply = client.get("/api/v1/projections")?.into_success()?;
    Ok(reply["items"].as_array().cloned().unwrap_or_default())
}

fn print_status(items: &[Value], output: Output) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match output {
        Output::Json => writeln!(stdout, "{}", crate::output::inert_json(serde_json::to_string_pretty(items)?))?,
        Output::Yaml => write!(stdout, "{}", crate::output::yaml(items)?)?,
        Output::Name => {
            for item in items {
                writeln!(stdout, "{}", text(&item["name"]))?;
            }
        }
        Output::Table | Output::Wide => {
            let mut table = TabWriter::new(Vec::new()).padding(3);
            writeln!(table, "NAME\tCHECKPOINT\tHEAD\tLAG\tLAG(S)\tHERE\tREBUILD\tERROR")?;
            for item in items {
                let rebuild = match item["rebuild"]["status"].as_str() {
                    Some("running") => format!(
                        "running {}/{}",
                        item["rebuild"]["replayed"].as_i64().unwrap_or(0),
                        item["rebuild"]["total"].as_i64().unwrap_or(0)
                    ),
                    Some(other) => other.to_owned(),
                    None => "-".to_owned(),
                };
                let error = item["lastError"].as_str().unwrap_or("-").replace(['\t', '\n'], " ");
                writeln!(
                    table,
                    "{}\t{}\t{}\t{}\t{:.1}\t{}\t{}\t{}",
                    text(&item["name"]),
                    text(&item["checkpoint"]["position"]),
                    text(&item["head"]["position"]),
                    text(&item["lagEvents"]),
                    item["lagSeconds"].as_f64().unwrap_or(0.0),
                    if item["runningHere"] == json!(true) { "yes" } else { "no" },
                    rebuild,
                    error
                )?;
            }
            stdout.write_all(&table.into_inner().context("formatting the table")?)?;
        }
    }
    Ok(())
}

fn rebuild(client: &Client, names: &[String], all: bool, no_wait: bool) -> anyhow::Result<u8> {
    let body = if all { json!({"all": true}) } else { json!({"names": names}) };
    let started = client.send(Method::POST, "/api/v1/projections/rebuild", Some(&body))?.into_success()?;
    let selected: Vec<String> = started["items"].as_array().into_iter().flatten().map(|i| text(&i["name"])).collect();
    if no_wait {
        eprintln!("rebuilding {}; `mcpctl admin projections status` shows the progress", selected.join(", "));
        return Ok(0);
    }
    let clock = Instant::now();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} events  {per_sec}  eta {eta}  {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_message(selected.join(", "));
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let mut last_line = Instant::now();
    loop {
        let items: Vec<Value> = status(client)?.into_iter().filter(|i| selected.contains(&text(&i["name"]))).collect();
        // Every selected read model is rebuilt in one pass; their counts are the same pass.
        let replayed = items.iter().filter_map(|i| i["rebuild"]["replayed"].as_u64()).max().unwrap_or(0);
        let total = items.iter().filter_map(|i| i["rebuild"]["total"].as_u64()).max().unwrap_or(0);
        let running = items.iter().any(|i| i["rebuild"]["status"] == "running");
        match &bar {
            Some(bar) => {
                bar.set_length(total.max(replayed));
                bar.set_position(replayed);
            }
            None if running && last_line.elapsed() >= Duration::from_secs(5) => {
                let rate = items.iter().filter_map(|i| i["rebuild"]["rate"].as_f64()).fold(0.0, f64::max);
                let eta = items.iter().filter_map(|i| i["rebuild"]["etaSeconds"].as_f64()).fold(0.0, f64::max);
                eprintln!("replayed {replayed}/{total} events, {rate:.0} events/s, about {eta:.0}s left");
                last_line = Instant::now();
            }
            None => {}
        }
        if !running {
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            let failed: Vec<&Value> = items.iter().filter(|i| i["rebuild"]["status"] != "completed").collect();
            if let Some(item) = failed.first() {
                anyhow::bail!(
                    "the rebuild of {} {}: {}",
                    text(&item["name"]),
                    text(&item["rebuild"]["status"]),
                    item["rebuild"]["error"].as_str().unwrap_or("see mcpd's log")
                );
            }
            println!("rebuilt {} from {replayed} events in {:.1}s", selected.join(", "), clock.elapsed().as_secs_f64());
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn verify(client: &Client, names: &[String]) -> anyhow::Result<u8> {
    let body = if names.is_empty() { json!({"all": true}) } else { json!({"names": names}) };
    let spinner = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_message("replaying the event log");
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let reply = client.send(Method::POST, "/api/v1/projections/verify", Some(&body));
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    let reply = reply?.into_success()?;
    let differences = reply["differences"].as_array().cloned().unwrap_or_default();
    for d in &differences {
        println!("{}", text(&d["message"]));
    }
    let checked: Vec<String> = reply["projections"].as_array().into_iter().flatten().map(text).collect();
    if differences.is_empty() {
        println!("{}: the tables match a replay of {} events", checked.join(", "), text(&reply["replayed"]));
        Ok(0)
    } else {
        eprintln!("{} difference(s) between the tables and a replay of the log", differences.len());
        Ok(1)
    }
}

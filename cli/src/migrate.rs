//! `mcpctl migrate secrets`: starts a migration on mcpd and follows its progress stream. On a
//! terminal a progress bar; otherwise one line per secret. mcpd keeps running the migration if
//! this command goes away.

use std::io::{BufRead, BufReader, IsTerminal};

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::client::Client;
use crate::output::text;

pub struct Request {
    pub from: String,
    pub to: String,
    pub names: Vec<String>,
    pub keep_source: bool,
    pub dry_run: bool,
}

/// Returns false when the run failed (already reported).
pub fn secrets(client: &Client, request: Request) -> anyhow::Result<bool> {
    let mut body =
        json!({"from": request.from, "to": request.to, "keepSource": request.keep_source, "dryRun": request.dry_run});
    if !request.names.is_empty() {
        body["names"] = json!(request.names);
    }
    let stream = client.stream("/api/v1/secrets/migrate", &body)?;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar
    });
    let arrow = format!("{} -> {}", request.from, request.to);
    let mut finished: Option<Value> = None;
    for line in BufReader::new(stream).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let event: Value = serde_json::from_str(&line)?;
        match event["type"].as_str() {
            Some("started") => {
                if let Some(bar) = &bar {
                    bar.set_length(event["total"].as_u64().unwrap_or(0));
                }
            }
            Some("secret") => {
                let name = text(&event["name"]);
                let outcome = match text(&event["outcome"]).as_str() {
                    "wouldMigrate" => "would migrate".to_owned(),
                    other => other.to_owned(),
                };
                let mut message = format!("secret/{name} {outcome}");
                if outcome == "migrated" || outcome == "would migrate" {
                    message.push_str(&format!(" {arrow}"));
                }
                if let Some(reason) = event["message"].as_str() {
                    message.push_str(&format!(": {reason}"));
                }
                match &bar {
                    Some(bar) => {
                        bar.inc(1);
                        bar.set_message(format!("secret/{name}"));
                        if outcome != "migrated" && outcome != "would migrate" {
                            bar.println(message);
                        }
                    }
                    None => out!("{message}"),
                }
            }
            Some("finished") => finished = Some(event),
            _ => {}
        }
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let Some(end) = finished else {
        bail!("the progress stream ended early; mcpd goes on with the run: see mcpctl get migrations");
    };
    let verb = if request.dry_run { "would migrate" } else { "migrated" };
    let run = if request.dry_run { "dry run".to_owned() } else { format!("run {}", text(&end["run"])) };
    out!("{verb} {}, skipped {}, failed {} ({run})", text(&end["moved"]), text(&end["skipped"]), text(&end["failed"]));
    if end["status"] == "interrupted" {
        eprintln!("Note: {}", text(&end["error"]));
        return Ok(false);
    }
    if end["status"] == "failed" {
        eprintln!("Error: {}", text(&end["error"]));
        eprintln!("Run the same command again to continue from there.");
        return Ok(false);
    }
    Ok(true)
}

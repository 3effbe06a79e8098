//! `mcpctl get KIND -w`: the current list, then each change as mcpd records it, a row at a
//! time, until interrupted (kubectl's `get --watch`). A watch that mcpd ends (it is shutting
//! down) or that loses its connection resumes from the last change it printed, so nothing is
//! missed or printed twice; past the retry budget it fails.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::args::{Kind, Output};
use crate::client::Client;
use crate::output::{self, inert, text};

pub struct Options {
    /// Only these names (all when empty).
    pub names: Vec<String>,
    pub output: Output,
    /// The current list first (ADDED rows), as kubectl prints it.
    pub initial: bool,
    /// An EVENT column (ADDED, MODIFIED, DELETED).
    pub events: bool,
}

const RESUME_BUDGET: Duration = Duration::from_secs(60);

pub fn watch(client: &Client, kind: Kind, options: &Options) -> anyhow::Result<()> {
    if kind.wire().is_none() {
        bail!("watch one kind at a time: mcpctl get llms -w");
    }
    let mut printer = Printer { kind, options, header_printed: false, last: HashMap::new() };
    let mut resume: Option<String> = None;
    let mut lost_at: Option<Instant> = None;
    loop {
        let path = match &resume {
            Some(position) => format!("{}?watch=true&resourceVersion={position}", kind.path()),
            None if options.initial => format!("{}?watch=true", kind.path()),
            None => format!("{}?watch=true&sendInitialEvents=false", kind.path()),
        };
        let response = client.watch(&path)?;
        let mut ended = None;
        for line in BufReader::new(response).lines() {
            let line = match line {
                Ok(line) => line,
                Err(e) => {
                    ended = Some(format!("the watch lost its connection: {e}"));
                    break;
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            let event: Value = serde_json::from_str(&line).context("reading a watch line")?;
            lost_at = None;
            let kind_of = event["type"].as_str().unwrap_or_default();
            match kind_of {
                "ERROR" => {
                    ended = Some(inert(event["error"]["message"].as_str().unwrap_or("the watch ended")));
                    if let Some(position) = event["resourceVersion"].as_str() {
                        resume = Some(position.to_owned());
                    }
                    break;
                }
                "BOOKMARK" => {}
                _ => printer.print(kind_of, &event["object"])?,
            }
            if let Some(position) = event["resourceVersion"].as_str() {
                resume = Some(position.to_owned());
            }
        }
        // The stream ended: resume where it stopped, within a budget.
        let since = *lost_at.get_or_insert_with(Instant::now);
        let reason = ended.unwrap_or_else(|| "mcpd closed the watch".into());
        if since.elapsed() > RESUME_BUDGET {
            bail!("{reason}; gave up resuming after {}s", RESUME_BUDGET.as_secs());
        }
        eprintln!("{reason}; resuming");
        std::thread::sleep(Duration::from_millis(500));
    }
}

struct Printer<'a> {
    kind: Kind,
    options: &'a Options,
    header_printed: bool,
    /// Each name's last document, to print a deleted one's last row.
    last: HashMap<String, Value>,
}

impl Printer<'_> {
    fn print(&mut self, change: &str, object: &Value) -> anyhow::Result<()> {
        let name = text(&object["name"]);
        if !self.options.names.is_empty() && !self.options.names.contains(&name) {
            return Ok(());
        }
        let object = match change {
            "DELETED" => self.last.remove(&name).unwrap_or_else(|| object.clone()),
            _ => {
                self.last.insert(name, object.clone());
                object.clone()
            }
        };
        let mut out = std::io::stdout().lock();
        match self.options.output {
            Output::Json | Output::Yaml if self.options.events => {
                let event = serde_json::json!({"type": change, "object": object});
                self.write_document(&mut out, &event)?;
            }
            Output::Json | Output::Yaml => self.write_document(&mut out, &object)?,
            Output::Name => writeln!(out, "{}/{}", text(&object["kind"]), text(&object["name"]))?,
            Output::Table | Output::Wide => {
                let table =
                    output::table(self.kind, std::slice::from_ref(&object), self.options.output == Output::Wide)?;
                let mut lines = table.lines();
                let header = lines.next().unwrap_or_default();
                if !self.header_printed {
                    self.header_printed = true;
                    if self.options.events {
                        writeln!(out, "{:<11}{header}", "EVENT")?;
                    } else {
                        writeln!(out, "{header}")?;
                    }
                }
                for row in lines {
                    if self.options.events {
                        writeln!(out, "{change:<11}{row}")?;
                    } else {
                        writeln!(out, "{row}")?;
                    }
                }
            }
        }
        out.flush()?;
        Ok(())
    }

    fn write_document(&self, out: &mut impl Write, value: &Value) -> anyhow::Result<()> {
        if self.options.output == Output::Json {
            writeln!(out, "{}", serde_json::to_string(value)?)?;
        } else {
            write!(out, "---\n{}", output::yaml_documents(std::slice::from_ref(value))?)?;
        }
        Ok(())
    }
}

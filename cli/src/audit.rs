//! `mcpctl audit`: who changed what, from mcpd's event log; newest first, or followed live.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use tabwriter::TabWriter;

use crate::args::{AuditArgs, Output};
use crate::client::Client;
use crate::output::{inert, inert_json};
use wire::audit::{AuditEntry, AuditPage, DenialPage};

const COLUMNS: &str = "POSITION\tTIME\tACTOR\tRESOURCE\tEVENT\tSUMMARY";

fn row(item: &AuditEntry) -> String {
    format!(
        "{}\t{}\t{}\t{}/{}\t{}\t{}",
        inert(&item.position),
        inert(&item.time),
        inert(&item.actor),
        inert(&item.kind),
        inert(&item.name),
        inert(&item.event_type),
        inert(&item.summary),
    )
}

/// A page of the log, as the server sent it.
fn page(client: &Client, path: &str) -> anyhow::Result<AuditPage> {
    let page = client.get(path)?.into_success()?;
    serde_json::from_value(page).map_err(|e| anyhow::anyhow!("cannot read the audit page the server sent: {e}"))
}

fn query(args: &AuditArgs, cursor: Option<(&str, &str)>) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    let fields = [
        ("kind", &args.kind),
        ("name", &args.name),
        ("actor", &args.actor),
        ("type", &args.event_type),
        ("since", &args.since),
        ("until", &args.until),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            pairs.push((key, value.clone()));
        }
    }
    pairs.push(("limit", args.limit.to_string()));
    if let Some((key, value)) = cursor {
        pairs.push((key, value.to_owned()));
    } else if let Some(after) = &args.after {
        pairs.push(("after", after.clone()));
    }
    format!("/api/v1/audit?{}", form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish())
}

fn print_rows(items: &[AuditEntry], output: Output, header: bool) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match output {
        Output::Json => writeln!(stdout, "{}", inert_json(serde_json::to_string_pretty(items)?))?,
        Output::Yaml => write!(stdout, "{}", crate::output::yaml(items)?)?,
        _ => {
            let mut table = TabWriter::new(Vec::new()).padding(3);
            if header {
                writeln!(table, "{COLUMNS}")?;
            }
            for item in items {
                writeln!(table, "{}", row(item))?;
            }
            stdout.write_all(&table.into_inner().context("aligning the table")?)?;
        }
    }
    Ok(())
}

/// `mcpctl audit --denied`: the refused requests, newest first.
fn denied(client: &Client, args: &AuditArgs) -> anyhow::Result<()> {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    for (key, value) in [
        ("actor", &args.actor),
        ("status", &args.status),
        ("since", &args.since),
        ("until", &args.until),
        ("after", &args.after),
    ] {
        if let Some(value) = value {
            pairs.push((key, value.clone()));
        }
    }
    pairs.push(("limit", args.limit.to_string()));
    let path = format!(
        "/api/v1/audit/denials?{}",
        form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish()
    );
    let page = client.get(&path)?.into_success()?;
    let DenialPage { items, next } = serde_json::from_value(page)
        .map_err(|e| anyhow::anyhow!("cannot read the page of refusals the server sent: {e}"))?;
    let mut stdout = std::io::stdout().lock();
    match args.output {
        Output::Json => writeln!(stdout, "{}", inert_json(serde_json::to_string_pretty(&items)?))?,
        Output::Yaml => write!(stdout, "{}", crate::output::yaml(&items)?)?,
        _ if items.is_empty() => eprintln!("No refused requests found."),
        _ => {
            let mut table = TabWriter::new(Vec::new()).padding(3);
            writeln!(table, "ID\tTIME\tSTATUS\tACTOR\tFROM\tREQUEST\tREASON")?;
            for item in &items {
                let who = item.actor.as_deref().or(item.token_id.as_deref()).unwrap_or("<none>");
                let request =
                    if item.suppressed > 0 { String::new() } else { format!("{} {}", item.method, item.path) };
                writeln!(
                    table,
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    inert(&item.id),
                    inert(&item.time),
                    if item.suppressed > 0 { "-".to_owned() } else { item.status.to_string() },
                    inert(who),
                    inert(&item.source_address),
                    inert(&request),
                    inert(&item.reason)
                )?;
            }
            stdout.write_all(&table.into_inner().context("aligning the table")?)?;
        }
    }
    if let Some(next) = next {
        eprintln!("More: add --after {}", inert(&next));
    }
    Ok(())
}

pub fn run(client: &Client, args: AuditArgs) -> anyhow::Result<()> {
    if args.denied {
        return denied(client, &args);
    }
    let AuditPage { items, next } = page(client, &query(&args, None))?;
    if !args.follow {
        if items.is_empty() && matches!(args.output, Output::Table | Output::Wide) {
            eprintln!("No events found.");
            return Ok(());
        }
        print_rows(&items, args.output, true)?;
        if let Some(next) = next {
            eprintln!("More: add --after {}", inert(&next));
        }
        return Ok(());
    }
    // Follow: the latest rows oldest first, then new ones as they are appended, one per line
    // (JSON: one object per line).
    let mut newest = items.first().map(|i| i.position.clone()).unwrap_or_else(|| "0".into());
    let line_output = if args.output == Output::Json { Output::Json } else { Output::Table };
    let emit = |items: &[AuditEntry], header: bool| -> anyhow::Result<()> {
        match line_output {
            Output::Json => {
                let mut stdout = std::io::stdout().lock();
                for item in items {
                    writeln!(stdout, "{}", inert_json(serde_json::to_string(item)?))?;
                }
                stdout.flush()?;
                Ok(())
            }
            _ => print_rows(items, Output::Table, header),
        }
    };
    let mut backlog = items;
    backlog.reverse();
    emit(&backlog, true)?;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let items = page(client, &query(&args, Some(("newer", &newest))))?.items;
        if let Some(last) = items.last() {
            newest = last.position.clone();
            emit(&items, false)?;
        }
    }
}

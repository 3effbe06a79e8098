//! `mcpctl get` and `mcpctl describe`.

use std::io::Write;

use anyhow::bail;
use serde_json::Value;
use tabwriter::TabWriter;

use crate::args::{Kind, Output};
use crate::client::Client;
use crate::output::{self, age, key_ref, text};

/// Returns false when a named resource was missing (already reported on stderr).
pub fn get(client: &Client, kind: Kind, names: &[String], output: Output, reveal: bool) -> anyhow::Result<bool> {
    if reveal && !matches!(kind, Kind::Secret | Kind::All) {
        bail!("--reveal applies to secrets only");
    }
    if kind == Kind::All && !names.is_empty() {
        bail!("name resources of one kind: mcpctl get llm NAME");
    }
    let query = |kind: Kind| {
        if reveal && kind == Kind::Secret { "?reveal=true" } else { "" }
    };
    if names.is_empty() {
        let mut all = Vec::new();
        for kind in kind.expand() {
            let list = client.get(&format!("{}{}", kind.path(), query(kind)))?.into_success()?;
            all.push((kind, list["items"].as_array().cloned().unwrap_or_default()));
        }
        if matches!(output, Output::Table | Output::Wide) && all.len() > 1 {
            // One table per kind, as kubectl prints `get all`.
            for (kind, docs) in all.iter().filter(|(_, docs)| !docs.is_empty()) {
                output::print(*kind, docs, output, false)?;
                out!("");
            }
            if all.iter().all(|(_, docs)| docs.is_empty()) {
                eprintln!("No resources found.");
            }
        } else {
            let docs: Vec<Value> = all.iter().flat_map(|(_, docs)| docs.clone()).collect();
            output::print(kind, &docs, output, false)?;
        }
        // Secrets whose values could not be read are listed without them: say so, and fail,
        // so that a backup taken with --reveal is never silently incomplete.
        let unread: Vec<&Value> =
            all.iter().flat_map(|(_, docs)| docs).filter(|d| d.get("revealError").is_some()).collect();
        for doc in &unread {
            eprintln!(
                "Error: the values of secret {} were not read: {}",
                text(&doc["name"]),
                text(&doc["revealError"])
            );
        }
        return Ok(unread.is_empty());
    }
    let mut docs = Vec::new();
    let mut all_found = true;
    for name in names {
        let reply = client.get(&format!("{}/{name}{}", kind.path(), query(kind)))?;
        if reply.status == 404 {
            eprintln!("Error: {}", reply.error_message());
            all_found = false;
            continue;
        }
        docs.push(reply.into_success()?);
    }
    if !docs.is_empty() {
        output::print(kind, &docs, output, names.len() == 1)?;
    }
    Ok(all_found)
}

pub fn describe(client: &Client, kind: Kind, name: &str) -> anyhow::Result<()> {
    if kind == Kind::All {
        bail!("describe one resource: mcpctl describe llm NAME");
    }
    let doc = client.get(&format!("{}/{name}", kind.path()))?.into_success()?;
    let mut fields: Vec<(&str, String)> = vec![("Name", text(&doc["name"])), ("Kind", kind.singular().into())];
    let info = kind.wire().map(wire::Kind::info);
    fields.extend(info.into_iter().flat_map(|i| i.describe).map(|f| (f.label, output::show(f, &doc))));
    // What some kinds show beyond their fields.
    match kind {
        Kind::SecretBackend => {
            if let Some(config) = doc["config"].as_object() {
                for (key, value) in config {
                    let value = if value.is_object() { key_ref(value) } else { text(value) };
                    fields.push(("Config", format!("{}={value}", crate::output::inert(key))));
                }
            }
            // describe pings the backend: can mcpd reach it and is it let in?
            let health = client.get(&format!("{}/{name}/health", kind.path()))?.into_success()?;
            fields.push(("Reachability", format!("{} ({})", text(&health["status"]), text(&health["message"]))));
        }
        Kind::Llm
        | Kind::Secret
        | Kind::All
        | Kind::Migration
        | Kind::User
        | Kind::Token
        | Kind::Role
        | Kind::RoleBinding => {}
    }
    if kind != Kind::Migration {
        fields.push(("Description", none_if_empty(text(&doc["description"]))));
    }
    fields.extend([
        ("Resource Version", text(&doc["resourceVersion"])),
        ("Created", format!("{} ({} ago)", text(&doc["createdAt"]), age(&doc["createdAt"]))),
        ("Updated", format!("{} ({} ago)", text(&doc["updatedAt"]), age(&doc["updatedAt"]))),
    ]);

    let mut out = TabWriter::new(std::io::stdout().lock()).padding(1);
    for (label, value) in fields {
        writeln!(out, "{label}:\t{value}")?;
    }
    let (label, referrers) = referrers(client, kind, name)?;
    if let Some(label) = label {
        writeln!(out, "{label}:\t{}", if referrers.is_empty() { "<none>".into() } else { referrers.join(", ") })?;
    }
    out.flush()?;
    drop(out);

    if kind == Kind::Migration {
        // A run's history is what it did: what moved, what was skipped and why, where it stopped.
        out!("History:");
        let mut out = TabWriter::new(std::io::stdout().lock()).padding(3);
        writeln!(out, "  AGE\tEVENT\tDETAIL")?;
        for event in doc["history"].as_array().into_iter().flatten() {
            let mut detail = crate::output::inert_json(event["detail"].to_string());
            if detail.len() > 160 {
                let cut = (0..=157).rev().find(|i| detail.is_char_boundary(*i)).unwrap_or(0);
                detail = format!("{}...", &detail[..cut]);
            }
            writeln!(out, "  {}\t{}\t{detail}", age(&event["recordedAt"]), text(&event["eventType"]))?;
        }
        out.flush()?;
        return Ok(());
    }
    if matches!(kind, Kind::User | Kind::Token | Kind::Role | Kind::RoleBinding) {
        return Ok(());
    }
    let history = client.get(&format!("{}/{name}/history", kind.path()))?.into_success()?;
    let events = history["items"].as_array().cloned().unwrap_or_default();
    out!("Events:");
    let mut out = TabWriter::new(std::io::stdout().lock()).padding(3);
    writeln!(out, "  AGE\tEVENT\tVERSION\tACTOR\tREQUEST")?;
    // The most recent ones, oldest first, as kubectl shows them.
    for event in events.iter().skip(events.len().saturating_sub(20)) {
        writeln!(
            out,
            "  {}\t{}\t{}\t{}\t{}",
            age(&event["recordedAt"]),
            text(&event["eventType"]),
            text(&event["resourceVersion"]),
            text(&event["actor"]),
            text(&event["requestId"]),
        )?;
    }
    out.flush()?;
    Ok(())
}

/// What refers to this resource: the Llms using a secret, the secrets on a backend.
fn referrers(client: &Client, kind: Kind, name: &str) -> anyhow::Result<(Option<&'static str>, Vec<String>)> {
    // (label, the kind that refers, the field path in its documents that holds the name)
    let (label, collection, field) = match kind {
        Kind::Llm | Kind::All | Kind::Migration | Kind::User | Kind::Token | Kind::Role | Kind::RoleBinding => {
            return Ok((None, vec![]));
        }
        Kind::Secret => ("Used By", Kind::Llm, ["apiKeyRef", "name"].as_slice()),
        Kind::SecretBackend => ("Holds", Kind::Secret, ["backend"].as_slice()),
    };
    let list = client.get(&collection.path())?.into_success()?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let names = items
        .iter()
        .filter(|d| field.iter().fold(*d, |v, f| &v[*f]) == name)
        .map(|d| format!("{}/{}", collection.singular(), text(&d["name"])))
        .collect();
    Ok((Some(label), names))
}

fn none_if_empty(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

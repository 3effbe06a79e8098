//! `mcpctl get` and `mcpctl describe`.

use std::io::Write;

use anyhow::bail;
use serde_json::Value;
use tabwriter::TabWriter;
use wire::HistoryEvent;
use wire::llm::LlmSpec;
use wire::secret::SecretView;
use wire::secret_backend::BackendState;

use crate::args::{Kind, Output};
use crate::client::Client;
use crate::output::{self, age, inert, key_ref, text};

/// Returns false when a named resource was missing (already reported on stderr).
pub fn get(
    client: &Client,
    kind: Kind,
    names: &[String],
    output: Output,
    reveal: bool,
    chunk_size: u32,
) -> anyhow::Result<bool> {
    if reveal && !holds_values(kind) {
        bail!("--reveal applies to secrets only");
    }
    if kind == Kind::All && !names.is_empty() {
        bail!("name resources of one kind: mcpctl get llm NAME");
    }
    if !names.is_empty() {
        return get_named(client, kind, names, output, reveal);
    }
    if kind != Kind::All && chunk_size > 0 && matches!(output, Output::Table | Output::Wide | Output::Name) {
        return get_in_chunks(client, kind, output, reveal, chunk_size);
    }
    get_lists(client, kind, output, reveal, chunk_size)
}

/// Whether `--reveal` means something for `kind`.
fn holds_values(kind: Kind) -> bool {
    match kind {
        Kind::Secret | Kind::All => true,
        Kind::Llm
        | Kind::SecretBackend
        | Kind::Migration
        | Kind::User
        | Kind::Token
        | Kind::Role
        | Kind::RoleBinding => false,
    }
}

/// The query that asks for values, where `--reveal` was given and `kind` holds them.
fn reveal_query(kind: Kind, reveal: bool) -> &'static str {
    if reveal && kind == Kind::Secret { "?reveal=true" } else { "" }
}

/// One kind as a table: printed a chunk at a time, as kubectl does.
fn get_in_chunks(client: &Client, kind: Kind, output: Output, reveal: bool, chunk_size: u32) -> anyhow::Result<bool> {
    let mut printed = 0;
    let mut all_read = true;
    for chunk in Chunks::new(client, kind, reveal, chunk_size) {
        let docs = chunk?;
        all_read &= reveal_errors(kind, &docs)?;
        if !docs.is_empty() {
            output::print_rows(kind, &docs, output, printed == 0)?;
        }
        printed += docs.len();
    }
    if printed == 0 {
        eprintln!("No resources found.");
    }
    Ok(all_read)
}

/// Every resource of `kind` (each kind of `all`), read whole, then printed.
fn get_lists(client: &Client, kind: Kind, output: Output, reveal: bool, chunk_size: u32) -> anyhow::Result<bool> {
    let mut all = Vec::new();
    for kind in kind.expand() {
        let mut docs = Vec::new();
        if chunk_size == 0 {
            let list = client.get(&format!("{}{}", kind.path(), reveal_query(kind, reveal)))?.into_success()?;
            docs = list["items"].as_array().cloned().unwrap_or_default();
        } else {
            for chunk in Chunks::new(client, kind, reveal, chunk_size) {
                docs.extend(chunk?);
            }
        }
        all.push((kind, docs));
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
    let mut all_read = true;
    for (kind, docs) in &all {
        all_read &= reveal_errors(*kind, docs)?;
    }
    Ok(all_read)
}

/// The named resources; false when one was not found (reported on stderr).
fn get_named(client: &Client, kind: Kind, names: &[String], output: Output, reveal: bool) -> anyhow::Result<bool> {
    let mut docs = Vec::new();
    let mut all_found = true;
    for name in names {
        let reply = client.get(&format!("{}/{name}{}", kind.path(), reveal_query(kind, reveal)))?;
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

/// What `describe` shows after the fields.
enum Trail {
    /// The run's own history: what moved, what was skipped and why, where it stopped.
    RunHistory,
    /// The resource's last events from its history.
    Events,
    /// Nothing more.
    Nothing,
}

fn trail(kind: Kind) -> Trail {
    match kind {
        Kind::Migration => Trail::RunHistory,
        Kind::Llm | Kind::Secret | Kind::SecretBackend | Kind::All => Trail::Events,
        Kind::User | Kind::Token | Kind::Role | Kind::RoleBinding => Trail::Nothing,
    }
}

pub fn describe(client: &Client, kind: Kind, name: &str) -> anyhow::Result<()> {
    let Some(wire_kind) = kind.wire() else {
        bail!("describe one resource: mcpctl describe llm NAME");
    };
    let doc = client.get(&format!("{}/{name}", kind.path()))?.into_success()?;
    let mut fields: Vec<(&str, String)> = vec![("Name", text(&doc["name"])), ("Kind", kind.singular().into())];
    fields.extend(output::described(wire_kind, &doc)?);
    // What some kinds show beyond their fields.
    match kind {
        Kind::SecretBackend => fields.extend(backend_fields(client, kind, name, &doc)?),
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
        ("Created", format!("{} ({} ago)", text(&doc["createdAt"]), age(&text(&doc["createdAt"])))),
        ("Updated", format!("{} ({} ago)", text(&doc["updatedAt"]), age(&text(&doc["updatedAt"])))),
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
    match trail(kind) {
        Trail::RunHistory => run_history(&doc),
        Trail::Events => events(client, kind, name),
        Trail::Nothing => Ok(()),
    }
}

/// A backend's settings, and whether mcpd reaches it (describe pings it).
fn backend_fields(client: &Client, kind: Kind, name: &str, doc: &Value) -> anyhow::Result<Vec<(&'static str, String)>> {
    let mut fields = Vec::new();
    let backend = output::read_document::<BackendState>(doc)?;
    if let Some(config) = &backend.spec.spec.config {
        // Every setting, in the order the document has them.
        let settings = serde_json::to_value(config)?;
        for (key, value) in settings.as_object().into_iter().flatten() {
            let value = if key == "tokenSecretRef" { key_ref(Some(&config.token_secret_ref)) } else { text(value) };
            fields.push(("Config", format!("{}={value}", inert(key))));
        }
    }
    let health = client.get(&format!("{}/{name}/health", kind.path()))?.into_success()?;
    fields.push(("Reachability", format!("{} ({})", text(&health["status"]), text(&health["message"]))));
    Ok(fields)
}

/// A migration run's history, from its document.
fn run_history(doc: &Value) -> anyhow::Result<()> {
    out!("History:");
    let mut out = TabWriter::new(std::io::stdout().lock()).padding(3);
    writeln!(out, "  AGE\tEVENT\tDETAIL")?;
    for event in doc["history"].as_array().into_iter().flatten() {
        let mut detail = crate::output::inert_json(event["detail"].to_string());
        if detail.len() > 160 {
            let cut = (0..=157).rev().find(|i| detail.is_char_boundary(*i)).unwrap_or(0);
            detail = format!("{}...", &detail[..cut]);
        }
        writeln!(out, "  {}\t{}\t{detail}", age(&text(&event["recordedAt"])), text(&event["eventType"]))?;
    }
    out.flush()?;
    Ok(())
}

/// The resource's most recent events, oldest first, as kubectl shows them.
fn events(client: &Client, kind: Kind, name: &str) -> anyhow::Result<()> {
    let history = client.get(&format!("{}/{name}/history", kind.path()))?.into_success()?;
    let events = serde_json::from_value::<wire::List<HistoryEvent>>(history)
        .map_err(|e| anyhow::anyhow!("cannot read the history the server sent: {e}"))?
        .items;
    out!("Events:");
    let mut out = TabWriter::new(std::io::stdout().lock()).padding(3);
    writeln!(out, "  AGE\tEVENT\tVERSION\tACTOR\tREQUEST")?;
    for event in events.iter().skip(events.len().saturating_sub(20)) {
        writeln!(
            out,
            "  {}\t{}\t{}\t{}\t{}",
            age(&event.recorded_at),
            inert(&event.event_type),
            event.resource_version,
            inert(&event.actor),
            inert(&event.request_id),
        )?;
    }
    out.flush()?;
    Ok(())
}

/// Reports secrets whose values could not be read; false when there were any.
fn reveal_errors(kind: Kind, docs: &[Value]) -> anyhow::Result<bool> {
    let mut all_read = true;
    for doc in docs.iter().filter(|_| kind == Kind::Secret) {
        let secret = output::read_document::<SecretView>(doc)?;
        if let Some(error) = secret.spec.reveal_error {
            eprintln!("Error: the values of secret {} were not read: {}", inert(&secret.name), inert(&error));
            all_read = false;
        }
    }
    Ok(all_read)
}

/// A kind's list a chunk at a time (`?limit=N&continue=…`), each chunk one request.
struct Chunks<'a> {
    client: &'a Client,
    kind: Kind,
    reveal: bool,
    size: u32,
    /// `None` once the last chunk was fetched.
    next: Option<String>,
}

impl<'a> Chunks<'a> {
    fn new(client: &'a Client, kind: Kind, reveal: bool, size: u32) -> Self {
        Chunks { client, kind, reveal, size, next: Some(String::new()) }
    }
}

impl Iterator for Chunks<'_> {
    type Item = anyhow::Result<Vec<Value>>;

    fn next(&mut self) -> Option<Self::Item> {
        let token = self.next.take()?;
        let mut path = format!("{}?limit={}", self.kind.path(), self.size);
        if self.reveal && self.kind == Kind::Secret {
            path.push_str("&reveal=true");
        }
        if !token.is_empty() {
            path.push_str(&format!(
                "&continue={}",
                form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
            ));
        }
        let page = match self.client.get(&path).and_then(|r| r.into_success()) {
            Ok(page) => page,
            Err(e) => return Some(Err(e)),
        };
        self.next = page["metadata"]["continue"].as_str().map(str::to_owned);
        Some(Ok(page["items"].as_array().cloned().unwrap_or_default()))
    }
}

/// What refers to this resource: the Llms using a secret, the secrets on a backend.
fn referrers(client: &Client, kind: Kind, name: &str) -> anyhow::Result<(Option<&'static str>, Vec<String>)> {
    let names = match kind {
        Kind::Llm | Kind::All | Kind::Migration | Kind::User | Kind::Token | Kind::Role | Kind::RoleBinding => {
            return Ok((None, vec![]));
        }
        Kind::Secret => {
            let uses = |llm: &LlmSpec| llm.api_key_ref.as_ref().is_some_and(|r| r.name.as_str() == name);
            ("Used By", referring(client, uses)?)
        }
        Kind::SecretBackend => {
            ("Holds", referring(client, |secret: &SecretView| secret.state.backend.as_str() == name)?)
        }
    };
    Ok((Some(names.0), names.1))
}

/// `kind/name` of every resource of `S`'s kind that `refers`.
fn referring<S: wire::Spec>(client: &Client, refers: impl Fn(&S) -> bool) -> anyhow::Result<Vec<String>> {
    let list = client.get(&S::KIND.path())?.into_success()?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let mut names = Vec::new();
    for item in &items {
        let doc = output::read_document::<S>(item)?;
        if refers(&doc.spec) {
            names.push(format!("{}/{}", S::KIND, inert(&doc.name)));
        }
    }
    Ok(names)
}

fn none_if_empty(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

//! `apply`, `diff` and `delete`: documents against the server, in dependency order.

use std::path::PathBuf;

use reqwest::Method;
use serde_json::Value;

use crate::args::{DryRun, Kind};
use crate::client::Client;
use crate::documents::{self, Document};
use crate::output::yaml_documents;

/// Fields the server owns (any kind's, from the kind registry); they never make a difference.
fn read_only(key: &str) -> bool {
    wire::Kind::ALL.iter().any(|kind| kind.info().read_only.contains(&key))
}

/// Applies every document; returns false when any failed (each failure already reported).
/// Nothing is applied when a file cannot be read or a document is malformed.
pub fn apply(client: &Client, paths: &[PathBuf], dry_run: DryRun) -> anyhow::Result<bool> {
    let mut docs = documents::load(paths)?;
    docs.sort_by_key(|d| d.kind.dependency_rank());
    let suffix = match dry_run {
        DryRun::None => "",
        DryRun::Client => " (dry run)",
        DryRun::Server => " (server dry run)",
    };
    let mut ok = true;
    for doc in &docs {
        match apply_one(client, doc, dry_run) {
            Ok(outcome) => out!("{} {outcome}{suffix}", doc.id()),
            Err(e) => {
                eprintln!("Error: {} ({}): {e:#}", doc.source, doc.id());
                ok = false;
            }
        }
    }
    Ok(ok)
}

fn apply_one(client: &Client, doc: &Document, dry_run: DryRun) -> anyhow::Result<&'static str> {
    let path = format!("{}/{}", doc.kind.path(), doc.name);
    // A client-side dry run compares values too, so it has to see them.
    let reveal = dry_run == DryRun::Client && doc.kind == Kind::Secret && doc.body.get("data").is_some();
    let current = current(client, &path, reveal)?;
    let query = if dry_run == DryRun::Server { "?dryRun=true" } else { "" };
    Ok(match (current, dry_run) {
        (None, DryRun::Client) => "created",
        (None, _) => {
            client.send(Method::POST, &format!("{}{query}", doc.kind.path()), Some(&doc.body))?.into_success()?;
            "created"
        }
        (Some(current), DryRun::Client) => {
            if same_spec(&doc.body, &current) {
                "unchanged"
            } else {
                "configured"
            }
        }
        (Some(current), _) => {
            let after = client.send(Method::PUT, &format!("{path}{query}"), Some(&doc.body))?.into_success()?;
            // The default flag lives outside the backend's own history (its resourceVersion).
            let same =
                after["resourceVersion"] == current["resourceVersion"] && after["isDefault"] == current["isDefault"];
            if same { "unchanged" } else { "configured" }
        }
    })
}

/// The resource as the server has it, or `None` when it does not exist.
fn current(client: &Client, path: &str, reveal: bool) -> anyhow::Result<Option<Value>> {
    let reply = client.get(&format!("{path}{}", if reveal { "?reveal=true" } else { "" }))?;
    if reply.status == 404 {
        return Ok(None);
    }
    reply.into_success().map(Some)
}

/// Whether applying `desired` over `current` would change nothing, judged on the client: every
/// field given must match, and every field left out must be empty on the server (a left-out
/// `backend`, `data` or `isDefault` means "keep what is there").
fn same_spec(desired: &Value, current: &Value) -> bool {
    let skip = |key: &str| read_only(key) || matches!(key, "kind" | "name");
    let empty = |v: &Value| match v {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Number(_) | Value::Bool(true) => false,
    };
    let (Some(desired), Some(current)) = (desired.as_object(), current.as_object()) else {
        return false;
    };
    let given_match = desired.iter().filter(|(k, _)| !skip(k)).all(|(k, v)| match current.get(k) {
        Some(c) => c == v || (empty(c) && empty(v)),
        None => empty(v),
    });
    let omitted_empty = current
        .iter()
        .filter(|(k, _)| {
            !skip(k) && !desired.contains_key(*k) && !matches!(k.as_str(), "backend" | "data" | "isDefault")
        })
        .all(|(_, v)| empty(v));
    given_match && omitted_empty
}

/// Prints a unified diff per resource of what apply would change. Exit code as kubectl's:
/// 0 nothing would change, 1 something would, 2 on error.
pub fn diff(client: &Client, paths: &[PathBuf]) -> anyhow::Result<u8> {
    let mut docs = documents::load(paths)?;
    docs.sort_by_key(|d| d.kind.dependency_rank());
    let (mut changed, mut failed) = (false, false);
    for doc in &docs {
        let path = format!("{}/{}", doc.kind.path(), doc.name);
        let result = current(client, &path, false).and_then(|live| {
            let merged = match &live {
                None => client.send(Method::POST, &format!("{}?dryRun=true", doc.kind.path()), Some(&doc.body)),
                Some(_) => client.send(Method::PUT, &format!("{path}?dryRun=true"), Some(&doc.body)),
            }?
            .into_success()?;
            Ok((live, merged))
        });
        let (live, merged) = match result {
            Ok(pair) => pair,
            Err(e) => {
                eprintln!("Error: {} ({}): {e:#}", doc.source, doc.id());
                failed = true;
                continue;
            }
        };
        let live = match live {
            Some(live) => yaml_documents(&[comparable(live)])?,
            None => String::new(),
        };
        let merged = yaml_documents(&[comparable(merged)])?;
        if live != merged {
            changed = true;
            let id = doc.id();
            out_raw!(
                "{}",
                similar::TextDiff::from_lines(&live, &merged)
                    .unified_diff()
                    .header(&format!("live/{id}"), &format!("merged/{id}"))
            );
        }
    }
    Ok(if failed { 2 } else { u8::from(changed) })
}

/// A document without the fields that change on every write.
fn comparable(mut doc: Value) -> Value {
    if let Some(fields) = doc.as_object_mut() {
        for field in ["resourceVersion", "createdAt", "updatedAt", "health"] {
            fields.remove(field);
        }
    }
    doc
}

/// Deletes the named resources, or those in `files` (in reverse dependency order).
pub fn delete(
    client: &Client,
    kind: Option<Kind>,
    names: &[String],
    files: &[PathBuf],
    ignore_not_found: bool,
) -> anyhow::Result<bool> {
    let targets: Vec<(Kind, String)> = match kind {
        Some(Kind::All) => anyhow::bail!("delete names resources of one kind, or use -f FILE"),
        Some(Kind::Migration) => anyhow::bail!("migration runs are history; they are not deleted"),
        Some(kind) => {
            if names.is_empty() {
                anyhow::bail!("name the {} to delete, or use -f FILE", kind.singular());
            }
            names.iter().map(|n| (kind, n.clone())).collect()
        }
        None => {
            let mut docs = documents::load(files)?;
            docs.sort_by_key(|d| std::cmp::Reverse(d.kind.dependency_rank()));
            docs.into_iter().map(|d| (d.kind, d.name)).collect()
        }
    };
    let mut ok = true;
    for (kind, name) in targets {
        let reply = client.send(Method::DELETE, &format!("{}/{name}", kind.path()), None)?;
        match reply.status {
            204 => out!("{}/{name} deleted", kind.singular()),
            404 if ignore_not_found => {}
            _ => {
                eprintln!("Error: {}", reply.error_message());
                ok = false;
            }
        }
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::same_spec;

    #[test]
    fn left_out_fields_must_be_empty_and_read_only_ones_never_count() {
        let current = json!({"kind": "llm", "name": "a", "type": "openai", "model": "m", "tier": "fast",
                             "description": "", "extra": {}, "resourceVersion": 4});
        assert!(same_spec(
            &json!({"kind": "llm", "name": "a", "type": "openai", "model": "m", "tier": "fast"}),
            &current
        ));
        assert!(!same_spec(&json!({"name": "a", "type": "openai", "model": "n", "tier": "fast"}), &current));
        let described = json!({"type": "openai", "model": "m", "tier": "fast", "description": "x"});
        assert!(!same_spec(&json!({"type": "openai", "model": "m", "tier": "fast"}), &described));
    }
}

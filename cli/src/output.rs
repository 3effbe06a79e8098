//! Printing resources: aligned tables (`table`, `wide`), documents (`json`, `yaml`) that `apply
//! -f` takes back, and `kind/name` lines.

use std::io::Write;

use anyhow::Context;
use serde_json::Value;
use tabwriter::TabWriter;

use crate::args::{Kind, Output};

/// Prints `docs`; `single` when exactly one named resource was asked for (printed as one
/// document rather than a list).
pub fn print(kind: Kind, docs: &[Value], output: Output, single: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match output {
        Output::Json if single => writeln!(out, "{}", inert_json(serde_json::to_string_pretty(&docs[0])?))?,
        Output::Json => writeln!(out, "{}", inert_json(serde_json::to_string_pretty(docs)?))?,
        Output::Yaml => out.write_all(yaml_documents(docs)?.as_bytes())?,
        Output::Name => {
            for doc in docs {
                writeln!(out, "{}/{}", text(&doc["kind"]), text(&doc["name"]))?;
            }
        }
        Output::Table | Output::Wide => {
            if docs.is_empty() {
                eprintln!("No resources found.");
                return Ok(());
            }
            out.write_all(table(kind, docs, output == Output::Wide)?.as_bytes())?;
        }
    }
    Ok(())
}

/// Documents as multi-document YAML.
pub fn yaml_documents(docs: &[Value]) -> anyhow::Result<String> {
    let mut text = String::new();
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            text.push_str("---\n");
        }
        text.push_str(&yaml_serde::to_string(doc).context("writing YAML")?);
    }
    Ok(text)
}

/// Aligned columns, kubectl style: the kind's columns from the kind registry (`all` prints
/// backends' columns, as it lists them first).
pub fn table(kind: Kind, docs: &[Value], wide: bool) -> anyhow::Result<String> {
    let info = kind.wire().unwrap_or(wire::Kind::SecretBackend).info();
    let fields: Vec<&wire::Field> = info.columns.iter().chain(if wide { info.wide } else { &[] }).collect();
    let mut rows = vec![fields.iter().map(|f| f.label.to_owned()).collect::<Vec<_>>()];
    for doc in docs {
        rows.push(fields.iter().map(|f| show(f, doc)).collect());
    }
    let mut writer = TabWriter::new(Vec::new()).padding(3);
    for row in rows {
        // Cells are inert already (`text`); tabs and newlines would break the columns.
        let cells: Vec<String> = row.iter().map(|c| inert(c)).collect();
        writeln!(writer, "{}", cells.join("\t"))?;
    }
    let bytes = writer.into_inner().context("aligning the table")?;
    Ok(String::from_utf8_lossy(&bytes).lines().map(|l| format!("{}\n", l.trim_end())).collect())
}

/// The value `field` names in `doc`, shown as the registry says (and inert, see [`text`]).
pub fn show(field: &wire::Field, doc: &Value) -> String {
    let value = field.path.split('.').fold(doc, |v, key| &v[key]);
    match field.show {
        wire::Show::Text => text(value),
        wire::Show::OrNone => or_none(text(value)),
        wire::Show::OrNever => or_never(text(value)),
        wire::Show::KeyRef => key_ref(value),
        wire::Show::List => list(value),
        wire::Show::ListOrNone => or_none(list(value)),
        wire::Show::Pairs => or_none(pairs(value)),
        wire::Show::YesNo => if value == &Value::Bool(true) { "yes" } else { "no" }.into(),
        wire::Show::Age => age(value),
        wire::Show::Rules => rules(value),
    }
}

/// A role's rules, one `verbs resources[names]` or operations each, `; `-separated.
pub fn rules(value: &Value) -> String {
    let joined = |v: &Value| v.as_array().map(|a| a.iter().map(text).collect::<Vec<_>>().join(",")).unwrap_or_default();
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|rule| {
            let mut shown = String::new();
            if rule["resources"].is_array() {
                shown = format!("{} {}", joined(&rule["verbs"]), joined(&rule["resources"]));
                if rule["names"].is_array() {
                    shown.push_str(&format!("[{}]", joined(&rule["names"])));
                }
            }
            if rule["operations"].is_array() {
                if !shown.is_empty() {
                    shown.push(' ');
                }
                shown.push_str(&joined(&rule["operations"]));
            }
            shown
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// An empty time as `<never>`.
fn or_never(text: String) -> String {
    if text.is_empty() { "<never>".into() } else { text }
}

/// A JSON value as plain text: strings without quotes, null as empty, and anything a terminal
/// would obey shown inert (see [`inert`]).
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => inert(s),
        other => inert_json(other.to_string()),
    }
}

/// Characters a terminal obeys rather than shows: C0 and C1 controls, DEL, and the
/// bidirectional overrides that reorder what is displayed.
fn obeyed(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Server-supplied text made visible and inert: a writer of a field must not be able to
/// rewrite what an admin sees (retitle the terminal, recolour, move the cursor, forge rows;
/// the class of kubectl's CVE-2021-25743). Each such character is shown as an escape.
pub fn inert(s: &str) -> String {
    if !s.chars().any(obeyed) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| match c {
            '\n' => "\\n".to_owned(),
            '\t' => "\\t".to_owned(),
            '\r' => "\\r".to_owned(),
            c if obeyed(c) => format!("\\u{{{:04x}}}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// JSON text with the characters serde_json leaves raw inside strings (DEL, C1 controls,
/// bidirectional overrides) written as `\uXXXX` escapes: the same JSON, safe on a terminal.
/// Its own line breaks (pretty printing) stay.
pub fn inert_json(json: String) -> String {
    if !json.chars().any(|c| c != '\n' && obeyed(c)) {
        return json;
    }
    json.chars().map(|c| if c != '\n' && obeyed(c) { format!("\\u{:04x}", c as u32) } else { c.to_string() }).collect()
}

fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

pub fn key_ref(value: &Value) -> String {
    match (value["name"].as_str(), value["key"].as_str()) {
        (Some(name), Some(key)) => format!("{name}/{key}"),
        _ => "<none>".into(),
    }
}

pub fn list(value: &Value) -> String {
    value.as_array().map(|a| a.iter().map(text).collect::<Vec<_>>().join(",")).unwrap_or_default()
}

pub fn pairs(value: &Value) -> String {
    value
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", text(v))).collect::<Vec<_>>().join(","))
        .unwrap_or_default()
}

/// Time since an RFC 3339 timestamp, kubectl style: 45s, 12m, 3h, 4d, 2y.
pub fn age(value: &Value) -> String {
    let Some(then) = value.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    let seconds = jiff::Timestamp::now().duration_since(then).as_secs().max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s if s < 365 * 86400 => format!("{}d", s / 86400),
        s => format!("{}y", s / (365 * 86400)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn server_text_cannot_steer_the_terminal() {
        let hostile = "x\u{1b}]0;pwned\u{7}\u{1b}[31mred\u{9b}2J\u{202e}txt\nfake row\u{7f}";
        let shown = text(&Value::String(hostile.into()));
        assert!(!shown.chars().any(obeyed), "{shown:?}");
        assert_eq!(shown, "x\\u{001b}]0;pwned\\u{0007}\\u{001b}[31mred\\u{009b}2J\\u{202e}txt\\nfake row\\u{007f}");
        let json = inert_json(serde_json::to_string_pretty(&serde_json::json!({"d": hostile})).unwrap());
        assert!(!json.chars().any(|c| c != '\n' && obeyed(c)), "{json}");
        let back: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["d"], hostile, "the same JSON");
        assert_eq!(text(&Value::String("plain-name".into())), "plain-name");
    }

    #[test]
    fn tables_align_their_columns() {
        let docs = [
            json!({"name": "claude-fast", "type": "anthropic", "model": "claude-haiku-4-5", "tier": "fast",
                   "apiKeyRef": {"name": "anthropic", "key": "API_KEY"}, "createdAt": jiff::Timestamp::now().to_string()}),
            json!({"name": "local", "type": "ollama", "model": "llama3", "tier": "heavy", "createdAt": "bad"}),
        ];
        let table = table(Kind::Llm, &docs, false).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        let column = lines[0].find("MODEL").unwrap();
        assert_eq!(lines[1].find("claude-haiku-4-5"), Some(column));
        assert_eq!(lines[2].find("llama3"), Some(column));
        assert!(lines[1].contains("anthropic/API_KEY") && lines[2].contains("<none>"));
    }

    #[test]
    fn ages_read_like_kubectl() {
        let ago = |s: i64| json!((jiff::Timestamp::now() - jiff::SignedDuration::from_secs(s)).to_string());
        assert_eq!(age(&ago(5)), "5s");
        assert_eq!(age(&ago(600)), "10m");
        assert_eq!(age(&ago(5 * 3600)), "5h");
        assert_eq!(age(&ago(3 * 86400)), "3d");
    }
}

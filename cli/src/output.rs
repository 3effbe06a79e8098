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

/// Rows of a table (or `kind/name` lines) for `docs`, the header only when `header`: a list
/// printed a chunk at a time.
pub fn print_rows(kind: Kind, docs: &[Value], output: Output, header: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if output == Output::Name {
        for doc in docs {
            writeln!(out, "{}/{}", text(&doc["kind"]), text(&doc["name"]))?;
        }
        return Ok(());
    }
    let table = table(kind, docs, output == Output::Wide)?;
    let skip = if header { 0 } else { 1 };
    for line in table.lines().skip(skip) {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// Documents as multi-document YAML.
pub fn yaml_documents(docs: &[Value]) -> anyhow::Result<String> {
    let mut text = String::new();
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            text.push_str("---\n");
        }
        text.push_str(&yaml(doc)?);
    }
    Ok(text)
}

/// `value` as YAML that a terminal cannot obey. YAML prints characters such as the
/// bidirectional overrides raw (they are printable to it), so a value holding one is written
/// as JSON instead, with every such character escaped: JSON is YAML, so `apply -f` reads it
/// back as the same value.
pub fn yaml<T: serde::Serialize + ?Sized>(value: &T) -> anyhow::Result<String> {
    let text = yaml_serde::to_string(value).context("writing YAML")?;
    if !text.chars().any(|c| c != '\n' && obeyed(c)) {
        return Ok(text);
    }
    let mut json = inert_json(serde_json::to_string_pretty(value).context("writing JSON")?);
    json.push('\n');
    Ok(json)
}

/// Aligned columns, kubectl style: the kind's columns, as its document type
/// ([`wire::Spec`]) lists them.
pub fn table(kind: Kind, docs: &[Value], wide: bool) -> anyhow::Result<String> {
    let Some(kind) = kind.wire() else {
        anyhow::bail!("a table shows one kind at a time");
    };
    let shown = kind.visit(Shown { docs, columns: if wide { Columns::Wide } else { Columns::Table } })?;
    let mut rows = vec![shown.labels.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>()];
    rows.extend(shown.rows);
    let mut writer = TabWriter::new(Vec::new()).padding(3);
    for row in rows {
        // Cells are inert already (`render`); tabs and newlines would break the columns.
        let cells: Vec<String> = row.iter().map(|c| inert(c)).collect();
        writeln!(writer, "{}", cells.join("\t"))?;
    }
    let bytes = writer.into_inner().context("aligning the table")?;
    Ok(String::from_utf8_lossy(&bytes).lines().map(|l| format!("{}\n", l.trim_end())).collect())
}

/// What `describe` shows of one document of `kind`, after its name and kind: (label, value).
pub fn described(kind: wire::Kind, doc: &Value) -> anyhow::Result<Vec<(&'static str, String)>> {
    let shown = kind.visit(Shown { docs: std::slice::from_ref(doc), columns: Columns::Describe })?;
    Ok(shown.labels.into_iter().zip(shown.rows.into_iter().next().unwrap_or_default()).collect())
}

/// Which of a kind's columns to show.
#[derive(Clone, Copy)]
enum Columns {
    Table,
    Wide,
    Describe,
}

/// Documents shown as text, read as their kind's document type.
struct Shown<'a> {
    docs: &'a [Value],
    columns: Columns,
}

/// The labels of the columns shown, and each document's values under them.
struct Rows {
    labels: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl wire::KindVisitor for Shown<'_> {
    type Output = anyhow::Result<Rows>;

    fn visit<S: wire::Spec>(self) -> anyhow::Result<Rows> {
        let columns: Vec<&wire::Column<S>> = match self.columns {
            Columns::Table => S::COLUMNS.iter().collect(),
            Columns::Wide => S::COLUMNS.iter().chain(S::WIDE).collect(),
            Columns::Describe => S::DESCRIBE.iter().collect(),
        };
        let mut rows = Vec::with_capacity(self.docs.len());
        for doc in self.docs {
            let doc: wire::Document<S> = read_document(doc)?;
            rows.push(columns.iter().map(|c| render(&(c.cell)(&doc))).collect());
        }
        Ok(Rows { labels: columns.iter().map(|c| c.label).collect(), rows })
    }
}

/// A document the server sent, read as its kind's type; an unreadable one is an error naming
/// it, never a row of blanks.
pub fn read_document<S: wire::Spec>(doc: &Value) -> anyhow::Result<wire::Document<S>> {
    serde_json::from_value(doc.clone()).map_err(|e| {
        anyhow::anyhow!("cannot read the {} document {} the server sent: {e}", S::KIND, text(&doc["name"]))
    })
}

/// A value as text, the way its cell says (and inert, see [`inert`]).
pub fn render(cell: &wire::Cell) -> String {
    let list = |items: &[String]| items.iter().map(|s| inert(s)).collect::<Vec<_>>().join(",");
    match cell {
        wire::Cell::Text(s) => inert(s),
        wire::Cell::OrNone(s) => or_none(s.map(inert).unwrap_or_default()),
        wire::Cell::OrNever(s) => or_never(s.map(inert).unwrap_or_default()),
        wire::Cell::KeyRef(r) => key_ref(*r),
        wire::Cell::List(items) => list(items),
        wire::Cell::ListOrNone(items) => or_none(list(items)),
        wire::Cell::Pairs(pairs) => {
            or_none(pairs.iter().map(|(k, v)| format!("{}={}", inert(k), inert(v))).collect::<Vec<_>>().join(","))
        }
        wire::Cell::YesNo(yes) => if *yes { "yes" } else { "no" }.into(),
        wire::Cell::Age(time) => age(time),
        wire::Cell::Rules(rules) => self::rules(rules),
    }
}

/// A role's rules, one `verbs resources[names]` or operations each, `; `-separated.
pub fn rules(rules: &[wire::rbac::Rule]) -> String {
    let joined = |items: &[String]| items.iter().map(|s| inert(s)).collect::<Vec<_>>().join(",");
    rules
        .iter()
        .map(|rule| {
            let mut shown = String::new();
            if !rule.resources.is_empty() {
                shown = format!("{} {}", joined(&rule.verbs), joined(&rule.resources));
                if let Some(names) = &rule.names {
                    shown.push_str(&format!("[{}]", joined(names)));
                }
            }
            if !rule.operations.is_empty() {
                if !shown.is_empty() {
                    shown.push(' ');
                }
                shown.push_str(&joined(&rule.operations));
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

/// Text meant to be read as it is (a model's answer): its line breaks and tabs stay, and
/// everything else a terminal would obey (escape sequences, carriage returns, bidirectional
/// overrides) is shown as an escape.
pub fn inert_prose(s: &str) -> String {
    if !s.chars().any(|c| c != '\n' && c != '\t' && obeyed(c)) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
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

/// A secret key reference as `name/key`, `<none>` when absent.
pub fn key_ref(reference: Option<&wire::llm::SecretKeyRef>) -> String {
    reference.map_or_else(|| "<none>".into(), |r| format!("{}/{}", inert(r.name.as_str()), inert(&r.key)))
}

/// Time since an RFC 3339 timestamp, kubectl style: 45s, 12m, 3h, 4d, 2y.
pub fn age(time: &str) -> String {
    let Ok(then) = time.parse::<jiff::Timestamp>() else {
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
        let prose = inert_prose("line one\n\tline two\r\u{1b}[2J\u{1b}]0;title\u{7}\u{202e}");
        assert!(!prose.chars().any(|c| c != '\n' && c != '\t' && obeyed(c)), "{prose:?}");
        assert!(prose.starts_with("line one\n\tline two\\r\\u{001b}[2J"), "{prose:?}");
        let doc = serde_json::json!({"kind": "llm", "name": "x", "description": hostile});
        let shown = yaml(&doc).unwrap();
        assert!(!shown.chars().any(|c| c != '\n' && obeyed(c)), "{shown}");
        let back: Value = yaml_serde::from_str(&shown).unwrap();
        assert_eq!(back, doc, "read back as the same document");
        assert_eq!(yaml(&serde_json::json!({"a": "b"})).unwrap(), "a: b\n");
    }

    #[test]
    fn tables_align_their_columns() {
        let docs = [
            json!({"kind": "llm", "name": "claude-fast", "type": "anthropic", "model": "claude-haiku-4-5", "tier": "fast",
                   "apiKeyRef": {"name": "anthropic", "key": "API_KEY"}, "extra": {}, "resourceVersion": 1,
                   "createdAt": jiff::Timestamp::now().to_string()}),
            json!({"kind": "llm", "name": "local", "type": "ollama", "model": "llama3", "tier": "heavy", "extra": {},
                   "resourceVersion": 2, "createdAt": "bad"}),
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
    fn a_document_mcpctl_cannot_read_is_an_error_naming_it_not_a_row_of_blanks() {
        let docs = [json!({"kind": "llm", "name": "odd", "type": "teapot", "resourceVersion": 1})];
        let err = table(Kind::Llm, &docs, false).unwrap_err().to_string();
        assert!(err.starts_with("cannot read the llm document odd the server sent: "), "{err}");
    }

    #[test]
    fn role_rules_read_as_verbs_on_resources() {
        let doc = json!({"kind": "role", "name": "ops", "description": "", "resourceVersion": 0, "rules": [
            {"verbs": ["view", "edit"], "resources": ["llms"], "names": ["a", "b"]},
            {"operations": ["reveal:secrets"]},
        ]});
        let shown = described(wire::Kind::Role, &doc).unwrap();
        assert_eq!(shown, [("Rules", "view,edit llms[a,b]; reveal:secrets".to_owned())]);
    }

    #[test]
    fn ages_read_like_kubectl() {
        let ago = |s: i64| (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(s)).to_string();
        assert_eq!(age(&ago(5)), "5s");
        assert_eq!(age(&ago(600)), "10m");
        assert_eq!(age(&ago(5 * 3600)), "5h");
        assert_eq!(age(&ago(3 * 86400)), "3d");
    }
}

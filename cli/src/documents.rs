//! Reading resource documents for `apply`, `diff` and `delete -f`: files, directories or
//! standard input; YAML (multi-document) or JSON; single documents, arrays, and the grouped
//! form `{secretbackends: [...], secrets: [...], llms: [...]}`. Every error names the file and
//! the document.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value;

use crate::args::Kind;

/// One resource document and where it came from.
#[derive(Debug, Clone)]
pub struct Document {
    /// `file.yaml: document 3`, for messages.
    pub source: String,
    pub kind: Kind,
    pub name: String,
    pub body: Value,
}

impl Document {
    /// `llm/claude-fast`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind.singular(), self.name)
    }
}

/// Every document in `paths`, checked for a known kind and a name, in file order.
pub fn load(paths: &[PathBuf]) -> anyhow::Result<Vec<Document>> {
    let mut documents = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("reading standard input")?;
            let json = text.trim_start().starts_with(['{', '[']);
            documents.extend(parse("<stdin>", &text, json)?);
        } else if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot read directory {}", path.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && matches!(extension(p).as_str(), "yaml" | "yml" | "json"))
                .collect();
            files.sort();
            for file in files {
                documents.extend(read_file(&file)?);
            }
        } else {
            documents.extend(read_file(path)?);
        }
    }
    if documents.is_empty() {
        bail!(
            "no resource documents found in {}",
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(documents)
}

fn extension(path: &Path) -> String {
    path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase()
}

fn read_file(path: &Path) -> anyhow::Result<Vec<Document>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&path.display().to_string(), &text, extension(path) == "json")
}

/// Parses one file's text into documents.
pub fn parse(file: &str, text: &str, json: bool) -> anyhow::Result<Vec<Document>> {
    let mut tops = Vec::new();
    if json {
        tops.push(serde_json::from_str::<Value>(text).map_err(|e| anyhow::anyhow!("{file}: invalid JSON: {e}"))?);
    } else {
        for (i, document) in yaml_serde::Deserializer::from_str(text).enumerate() {
            let value = Value::deserialize(document)
                .map_err(|e| anyhow::anyhow!("{file}: document {}: invalid YAML: {e}", i + 1))?;
            tops.push(value);
        }
    }
    let mut bodies = Vec::new();
    for top in tops {
        expand(file, top, &mut bodies)?;
    }
    bodies.into_iter().enumerate().map(|(i, body)| check(format!("{file}: document {}", i + 1), body)).collect()
}

/// Flattens arrays and the grouped form into single documents.
fn expand(file: &str, top: Value, out: &mut Vec<Value>) -> anyhow::Result<()> {
    match top {
        Value::Null => {}
        Value::Array(items) => out.extend(items),
        Value::Object(map)
            if !map.contains_key("kind") && !map.is_empty() && map.keys().all(|k| Kind::from_document(k).is_some()) =>
        {
            for (group, items) in map {
                let Value::Array(items) = items else {
                    bail!("{file}: {group:?} must be a list of documents");
                };
                for mut item in items {
                    if let Value::Object(fields) = &mut item {
                        fields.entry("kind").or_insert_with(|| Value::String(group.clone()));
                    }
                    out.push(item);
                }
            }
        }
        other => out.push(other),
    }
    Ok(())
}

fn check(source: String, body: Value) -> anyhow::Result<Document> {
    let Value::Object(fields) = &body else {
        bail!("{source}: a document must be a mapping with kind and name");
    };
    let kind = match fields.get("kind") {
        Some(Value::String(kind)) => Kind::from_document(kind).with_context(|| {
            format!("{source}: unknown kind {kind:?} (expected llm, secret, secretbackend, role or rolebinding)")
        })?,
        Some(other) => bail!("{source}: kind must be a string, not {other}"),
        None => bail!("{source}: kind is required (llm, secret, secretbackend, role or rolebinding)"),
    };
    let name = match fields.get("name") {
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        _ => bail!("{source}: name is required"),
    };
    Ok(Document { source, kind, name, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(docs: &[Document]) -> Vec<String> {
        docs.iter().map(Document::id).collect()
    }

    /// An alias bomb ("billion laughs": each level refers to the one below ten times) is refused
    /// with a clear error instead of being expanded into gigabytes.
    #[test]
    fn an_alias_bomb_is_refused_not_expanded() {
        let mut bomb =
            String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
        for level in 1..9 {
            let refs = vec![format!("*{}", (b'a' + level - 1) as char); 9].join(",");
            bomb.push_str(&format!("{}: &{} [{refs}]\n", (b'a' + level) as char, (b'a' + level) as char));
        }
        bomb.push_str("kind: llm\nname: x\n");
        let error = parse("bomb.yaml", &bomb, false).unwrap_err().to_string();
        assert!(error.starts_with("bomb.yaml: document 1: invalid YAML"), "{error}");
        // Nesting deep enough to overflow a recursive parser's stack is refused too.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse("deep.yaml", &deep, false).is_err());
        assert!(parse("deep.json", &deep, true).is_err());
    }

    /// Fuzzed: any text built of YAML's and JSON's own tokens, and arbitrary characters, parses
    /// or is refused with an error naming the file; never a panic.
    #[test]
    fn any_text_parses_or_is_refused_naming_the_file() {
        use proptest::prelude::*;
        let token = prop_oneof![
            Just("kind: llm\n".to_owned()),
            Just("name: x\n".to_owned()),
            Just("---\n".to_owned()),
            Just("- ".to_owned()),
            Just("&a ".to_owned()),
            Just("*a".to_owned()),
            Just("<<: *a\n".to_owned()),
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just("[".to_owned()),
            Just("]".to_owned()),
            Just(": ".to_owned()),
            Just("\"".to_owned()),
            Just("  ".to_owned()),
            Just("\n".to_owned()),
            Just("!!binary ".to_owned()),
            "[a-z]{1,6}",
            "\\PC{1,4}",
        ];
        let text = proptest::collection::vec(token, 0..60).prop_map(|t| t.concat());
        let seed = std::env::var("MCPD_PROPTEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(7, |d| d.as_nanos() as u64)
        });
        let cases = std::env::var("MCPD_PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(512);
        eprintln!("document parser: proptest seed {seed}, {cases} cases (replay with MCPD_PROPTEST_SEED={seed})");
        let config = proptest::test_runner::Config {
            cases,
            rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        };
        proptest::test_runner::TestRunner::new(config)
            .run(&(text, any::<bool>()), |(text, json)| {
                if let Err(e) = parse("f.yaml", &text, json) {
                    prop_assert!(e.to_string().starts_with("f.yaml"), "{}", e);
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn multi_document_yaml() {
        let docs = parse("f.yaml", "kind: llm\nname: a\n---\nkind: Secrets\nname: b\n---\n", false).unwrap();
        assert_eq!(ids(&docs), ["llm/a", "secret/b"]);
        assert_eq!(docs[1].source, "f.yaml: document 2");
    }

    #[test]
    fn json_arrays_and_the_grouped_form() {
        let docs = parse("f.json", r#"[{"kind": "sb", "name": "x"}]"#, true);
        assert!(docs.unwrap_err().to_string().contains("unknown kind \"sb\""));
        let docs = parse("f.json", r#"[{"kind": "secretbackend", "name": "x"}]"#, true).unwrap();
        assert_eq!(ids(&docs), ["secretbackend/x"]);
        let grouped = "llms: [{name: a}]\nsecrets: [{name: b}]\n";
        assert_eq!(ids(&parse("g.yaml", grouped, false).unwrap()), ["llm/a", "secret/b"]);
    }

    #[test]
    fn errors_name_the_file_and_document() {
        let err = parse("f.yaml", "kind: llm\nname: a\n---\nkind: widget\nname: b\n", false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.yaml: document 2: unknown kind \"widget\" (expected llm, secret, secretbackend, role or rolebinding)"
        );
        let err = parse("f.yaml", "kind: llm\n", false).unwrap_err();
        assert_eq!(err.to_string(), "f.yaml: document 1: name is required");
        let err = parse("f.yaml", "kind: [unclosed\n", false).unwrap_err();
        assert!(err.to_string().starts_with("f.yaml: document 1: invalid YAML"), "{err}");
    }
}

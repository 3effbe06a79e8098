//! `mcpctl explain KIND[.FIELD]`: a kind's fields, their types and what they mean, from the
//! server's OpenAPI description (`/api/v1/openapi.json`), as kubectl explains from the API
//! server's. A kind that takes documents is explained as one is written (what `apply -f`
//! takes); tokens and migration runs, which are not written as documents, as mcpd shows them.

use anyhow::{Context, bail};
use serde_json::Value;

use crate::client::Client;

pub fn run(client: &Client, target: &str) -> anyhow::Result<()> {
    let doc = client.get("/api/v1/openapi.json")?.into_success().context("reading the server's API description")?;
    print!("{}", explain(&doc, target)?);
    Ok(())
}

/// The explanation of `target` (`llm`, `llm.apiKeyRef`, `secretbackend.config.url`).
pub fn explain(doc: &Value, target: &str) -> anyhow::Result<String> {
    let mut parts = target.split('.');
    let raw_kind = parts.next().unwrap_or_default();
    let Some(kind) = wire::Kind::parse(raw_kind) else {
        let kinds: Vec<&str> = wire::Kind::ALL.iter().map(|k| k.info().singular).collect();
        bail!("no resource kind {raw_kind:?}; one of {}", kinds.join(", "));
    };
    let info = kind.info();
    let (mut schema, written) = kind_schema(doc, kind)?;
    let mut field_path = Vec::new();
    for part in parts {
        let resolved = object_branch(doc, &schema);
        let Some(next) = resolved.get("properties").and_then(|p| p.get(part)) else {
            let known = field_names(&resolved);
            let at = if field_path.is_empty() {
                info.singular.to_owned()
            } else {
                format!("{}.{}", info.singular, field_path.join("."))
            };
            bail!(
                "{at} has no field {part:?}; its fields: {}",
                if known.is_empty() { "none".into() } else { known.join(", ") }
            );
        };
        schema = next.clone();
        field_path.push(part);
    }
    let mut out = format!("KIND:       {}\nRESOURCE:   {} ({})\n", info.singular, info.plural, kind.path());
    if !written {
        out.push_str("            (read-only: shown by mcpd, never written as a document)\n");
    }
    out.push('\n');
    let resolved = object_branch(doc, &schema);
    if let Some(field) = field_path.last() {
        out.push_str(&format!("FIELD: {field} <{}>\n\n", type_name(doc, &schema)));
    }
    let text = if field_path.is_empty() { info.help.to_owned() } else { description(doc, &schema) };
    out.push_str("DESCRIPTION:\n");
    out.push_str(&indent(if text.is_empty() { "<empty>" } else { &text }, 4));
    let values = choices(doc, &schema);
    if !values.is_empty() {
        out.push_str(&format!("    One of: {}.\n", values.join(", ")));
    }
    let fields = resolved.get("properties").and_then(Value::as_object);
    if let Some(fields) = fields.filter(|f| !f.is_empty()) {
        let required: Vec<&str> = resolved
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        out.push_str("\nFIELDS:\n");
        for (name, field) in fields {
            let mut line = format!("  {name}\t<{}>", type_name(doc, field));
            if required.contains(&name.as_str()) {
                line.push_str(" -required-");
            }
            if field.get("readOnly") == Some(&Value::Bool(true)) {
                line.push_str(" -read-only-");
            }
            out.push_str(&line);
            out.push('\n');
            let text = description(doc, field);
            if !text.is_empty() {
                out.push_str(&indent(&text, 4));
            }
            let values = choices(doc, field);
            if !values.is_empty() {
                out.push_str(&format!("    One of: {}.\n", values.join(", ")));
            }
            out.push('\n');
        }
    }
    Ok(out)
}

/// The schema of `kind`'s document: the create body where the kind has one (`true`), else
/// what GET answers.
fn kind_schema(doc: &Value, kind: wire::Kind) -> anyhow::Result<(Value, bool)> {
    let paths = &doc["paths"];
    let create = &paths[kind.path()]["post"]["requestBody"]["content"]["application/json"]["schema"];
    if create.is_object() && kind != wire::Kind::Token {
        return Ok((create.clone(), true));
    }
    let one =
        &paths[format!("{}/{{name}}", kind.path())]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    let one = if one.is_object() {
        one
    } else {
        &paths[format!("{}/{{id}}", kind.path())]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    };
    if !one.is_object() {
        bail!("the server's API description does not describe {} documents", kind.info().singular);
    }
    Ok((one.clone(), false))
}

/// `schema` with `$ref`s followed and, for an optional value (`T` or null), `T`'s branch; for
/// a list, its items' (so `role.rules.verbs` explains a rule's verbs).
fn object_branch(doc: &Value, schema: &Value) -> Value {
    let schema = resolve(doc, schema);
    if schema["items"].is_object() && schema.get("properties").is_none() {
        return object_branch(doc, &schema["items"]);
    }
    // Its own fields first: anyOf / oneOf beside them only add rules about them.
    if schema.get("properties").is_some() && schema.get("allOf").is_none() {
        return schema;
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(branch) = schema[key]
            .as_array()
            .and_then(|branches| branches.iter().map(|b| resolve(doc, b)).find(|b| b.get("properties").is_some()))
        {
            return branch;
        }
    }
    // A document of a kind whose fields are flattened in (allOf): their properties together.
    if let Some(parts) = schema["allOf"].as_array() {
        let mut merged = schema.clone();
        let mut properties = schema["properties"].as_object().cloned().unwrap_or_default();
        for part in parts {
            if let Some(more) = object_branch(doc, part)["properties"].as_object() {
                properties.extend(more.clone());
            }
        }
        merged["properties"] = Value::Object(properties);
        return merged;
    }
    schema
}

fn resolve(doc: &Value, schema: &Value) -> Value {
    match schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/")) {
        Some(name) => resolve(doc, &doc["components"]["schemas"][name]),
        None => schema.clone(),
    }
}

fn field_names(schema: &Value) -> Vec<String> {
    schema.get("properties").and_then(Value::as_object).map(|p| p.keys().cloned().collect()).unwrap_or_default()
}

/// kubectl's names for a type: `string`, `integer`, `boolean`, `Object`, `[]string`, `map[string]string`.
fn type_name(doc: &Value, schema: &Value) -> String {
    let schema = resolve(doc, schema);
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect(),
        _ => Vec::new(),
    };
    match types.first().copied() {
        Some("array") => format!("[]{}", type_name(doc, &schema["items"])),
        // A map, with perhaps some keys of its own described (an Llm's extra.timeoutSeconds).
        Some("object") if schema["additionalProperties"].is_object() => {
            format!("map[string]{}", type_name(doc, &schema["additionalProperties"]))
        }
        Some("object") => "Object".into(),
        Some(t) => t.into(),
        None if schema["enum"].as_array().is_some_and(|values| values.iter().all(Value::is_string)) => "string".into(),
        None => {
            let branches = schema["anyOf"].as_array().or(schema["oneOf"].as_array());
            let named: Vec<String> = branches
                .into_iter()
                .flatten()
                .filter(|b| b["type"] != "null")
                .map(|b| type_name(doc, b))
                .filter(|t| t != "any")
                .collect();
            match named.first() {
                Some(first) if named.iter().all(|t| t == first) => first.clone(),
                _ if schema.get("properties").is_some() => "Object".into(),
                _ => "any".into(),
            }
        }
    }
}

/// A field's description, from it or (for a `$ref`, an optional value or a list) the schema
/// it names.
fn description(doc: &Value, schema: &Value) -> String {
    if let Some(text) = schema["description"].as_str() {
        return text.to_owned();
    }
    let resolved = resolve(doc, schema);
    if let Some(text) = resolved["description"].as_str() {
        return text.to_owned();
    }
    object_branch(doc, schema)["description"].as_str().unwrap_or_default().to_owned()
}

/// The values a field (or each item of a list) takes when they are a fixed set (`enum`, or
/// `const` branches).
fn choices(doc: &Value, schema: &Value) -> Vec<String> {
    let schema = resolve(doc, schema);
    if schema["items"].is_object() {
        return choices(doc, &schema["items"]);
    }
    let show = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    if let Some(values) = schema["enum"].as_array() {
        return values.iter().map(show).collect();
    }
    let mut values = Vec::new();
    for branch in schema["oneOf"].as_array().or(schema["anyOf"].as_array()).into_iter().flatten() {
        let branch = resolve(doc, branch);
        match (&branch["const"], branch["enum"].as_array()) {
            (Value::Null, Some(more)) => values.extend(more.iter().map(show)),
            (Value::Null, None) => {}
            (one, _) => values.push(show(one)),
        }
    }
    values
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(&pad);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

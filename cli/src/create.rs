//! `mcpctl create <kind> <name> --flags`: one resource from the command line.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::args::{Create, CreateLlm, CreateSecret, CreateSecretBackend, Kind};
use crate::client::Client;

fn text(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

pub fn run(client: &Client, create: Create) -> anyhow::Result<()> {
    let (kind, body) = match create {
        Create::Secretbackend(args) => (Kind::SecretBackend, secret_backend(args)?),
        Create::Secret(args) => (Kind::Secret, secret(args)?),
        Create::Llm(args) => (Kind::Llm, llm(args)?),
        Create::User(args) => {
            (Kind::User, json!({"name": args.name, "description": args.description.unwrap_or_default()}))
        }
        Create::Role(args) => {
            let mut rules = Vec::new();
            if !args.resources.is_empty() || !args.verbs.is_empty() {
                let mut rule = json!({"resources": args.resources, "verbs": args.verbs});
                if !args.resource_names.is_empty() {
                    rule["names"] = json!(args.resource_names);
                }
                rules.push(rule);
            } else if !args.resource_names.is_empty() {
                bail!("--resource-name needs --resource and --verb");
            }
            if !args.operations.is_empty() {
                rules.push(json!({"operations": args.operations}));
            }
            if rules.is_empty() {
                bail!("give --verb and --resource, or --operation");
            }
            (
                Kind::Role,
                json!({"name": args.name, "rules": rules, "description": args.description.unwrap_or_default()}),
            )
        }
        Create::Rolebinding(args) => (
            Kind::RoleBinding,
            json!({"name": args.name, "role": args.role, "users": args.users, "description": args.description.unwrap_or_default()}),
        ),
        Create::Token(args) => {
            let mut body = json!({"user": args.user, "description": args.description.unwrap_or_default()});
            if let Some(expires) = args.expires {
                body["expires"] = json!(expires);
            }
            let issued = client.send(Method::POST, &Kind::Token.path(), Some(&body))?.into_success()?;
            out!("token/{} created for user {}", text(&issued["name"]), text(&issued["user"]));
            out!("{}", text(&issued["token"]));
            eprintln!("This is the only time the token is shown: store it now (mcpctl login --token <token>).");
            return Ok(());
        }
    };
    let created = client.send(Method::POST, &kind.path(), Some(&body))?.into_success()?;
    out!("{}/{} created", kind.singular(), created["name"].as_str().unwrap_or_default());
    Ok(())
}

fn secret_backend(args: CreateSecretBackend) -> anyhow::Result<Value> {
    let mut body = json!({"name": args.name, "type": args.backend_type});
    if args.default {
        body["isDefault"] = json!(true);
    }
    if let Some(description) = args.description {
        body["description"] = json!(description);
    }
    if args.backend_type == "openbao" {
        let mut config = json!({"url": args.url});
        if let Some(reference) = &args.token_secret {
            let Some((name, key)) = reference.split_once('/') else {
                bail!("--token-secret {reference:?} must be SECRET/KEY");
            };
            config["tokenSecretRef"] = json!({"name": name, "key": key});
        }
        let optional = [
            ("mount", args.mount.map(Value::from)),
            ("pathPrefix", args.path_prefix.map(Value::from)),
            ("namespace", args.namespace.map(Value::from)),
            ("timeoutSeconds", args.timeout_seconds.map(Value::from)),
            ("softDelete", args.soft_delete.then_some(Value::Bool(true))),
        ];
        for (field, value) in optional {
            if let Some(value) = value {
                config[field] = value;
            }
        }
        body["config"] = config;
    } else if args.url.is_some() || args.token_secret.is_some() || args.mount.is_some() || args.path_prefix.is_some() {
        bail!("--url, --token-secret, --mount and --path-prefix apply to --type openbao only");
    }
    Ok(body)
}

fn secret(args: CreateSecret) -> anyhow::Result<Value> {
    let mut data = BTreeMap::new();
    if let Some(file) = &args.from_env_file {
        for (key, value) in read_env_file(file)? {
            data.insert(key, value);
        }
    }
    let mut stdin_used = false;
    for pair in &args.data {
        let (key, value) = split_pair(pair, "--data", "KEY=VALUE")?;
        let value = if value == "-" {
            if stdin_used {
                bail!("--data {key}=-: only one value can be read from standard input");
            }
            stdin_used = true;
            read_stdin_value()?
        } else {
            value.to_owned()
        };
        if data.insert(key.to_owned(), value).is_some() {
            bail!("--data {key}: the key is given twice");
        }
    }
    let mut body = json!({"name": args.name, "data": data});
    if let Some(backend) = args.backend {
        body["backend"] = json!(backend);
    }
    if let Some(description) = args.description {
        body["description"] = json!(description);
    }
    Ok(body)
}

fn llm(args: CreateLlm) -> anyhow::Result<Value> {
    let mut body = json!({"name": args.name, "type": args.llm_type, "model": args.model, "tier": args.tier});
    if let Some(reference) = &args.api_key_ref {
        let Some((name, key)) = reference.split_once('/') else {
            bail!("--api-key-ref {reference:?} must be SECRET/KEY");
        };
        body["apiKeyRef"] = json!({"name": name, "key": key});
    }
    if let Some(url) = args.url {
        body["url"] = json!(url);
    }
    if let Some(description) = args.description {
        body["description"] = json!(description);
    }
    let mut extra = Map::new();
    for pair in &args.extra {
        let (key, value) = split_pair(pair, "--extra", "k=v")?;
        extra.insert(key.to_owned(), json!(value));
    }
    body["extra"] = Value::Object(extra);
    Ok(body)
}

fn split_pair<'a>(pair: &'a str, flag: &str, shape: &str) -> anyhow::Result<(&'a str, &'a str)> {
    match pair.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key, value)),
        // The value is never echoed: it may be a secret typed in the wrong place.
        _ => bail!("{flag} takes {shape}; one of the given values has no key"),
    }
}

/// A value piped in: everything on standard input, less one trailing newline.
fn read_stdin_value() -> anyhow::Result<String> {
    let mut value = String::new();
    std::io::stdin().read_to_string(&mut value).context("reading the value from standard input")?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    Ok(value)
}

/// `KEY=VALUE` lines; blank lines and `#` comments are skipped, `export ` and matching quotes
/// around the value are removed.
fn read_env_file(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut pairs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            bail!("{}:{}: expected KEY=VALUE", path.display(), number + 1);
        };
        let value = value.trim();
        let unquoted =
            ['"', '\''].iter().find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q))).unwrap_or(value);
        pairs.push((key.trim().to_owned(), unquoted.to_owned()));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_skip_comments_and_unquote() {
        let dir = std::env::temp_dir().join(format!("mcpctl-env-{}", std::process::id()));
        std::fs::write(&dir, "# keys\nAPI_KEY=sk-1\n\nexport ORG=\"org-2\"\nQUOTE='a=b'\n").unwrap();
        let pairs = read_env_file(&dir).unwrap();
        std::fs::remove_file(&dir).unwrap();
        let expected = [("API_KEY", "sk-1"), ("ORG", "org-2"), ("QUOTE", "a=b")];
        assert_eq!(pairs, expected.map(|(k, v)| (k.to_owned(), v.to_owned())));
    }

    #[test]
    fn a_pair_without_a_key_is_refused_without_echoing_it() {
        let err = split_pair("=hunter2", "--data", "KEY=VALUE").unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        assert!(split_pair("novalue", "--data", "KEY=VALUE").is_err());
    }
}

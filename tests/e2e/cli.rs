//! mcpctl end to end: the real binary against the real mcpd, on SQLite and PostgreSQL.

use serde_json::{Value, json};

use crate::ctl::Ctl;
use crate::support::{StoreKind, TestServer};

testkit::on_both_stores!(
    every_verb_works_for_every_kind,
    apply_takes_every_document_form_in_dependency_order,
    exported_documents_apply_back_unchanged_and_recreate_a_server,
    dry_runs_change_nothing,
    diff_shows_what_apply_would_change,
    bad_input_is_reported_with_file_document_and_field,
    get_fetches_long_lists_in_chunks,
    explain_shows_fields_types_and_descriptions,
);

/// `get` asks for a list a chunk at a time (`--chunk-size`, 500 by default, as kubectl) and
/// prints every resource once, one header; JSON and YAML still print one list.
async fn get_fetches_long_lists_in_chunks(kind: StoreKind) {
    let server = TestServer::start(kind).await;
    let ctl = Ctl::new(&server);
    for i in 0..7 {
        let name = format!("l-{i}");
        let args = [
            "create",
            "llm",
            &name,
            "--type",
            "ollama",
            "--model",
            "m",
            "--tier",
            "fast",
            "--url",
            "http://127.0.0.1:1",
        ];
        ctl.run(&args).ok();
    }
    let names = |stdout: &str| -> Vec<String> {
        stdout.lines().skip(1).map(|l| l.split_whitespace().next().unwrap().to_owned()).collect()
    };
    let whole = ctl.run(&["get", "llms", "--chunk-size", "0"]).ok();
    for size in ["1", "3", "7", "500"] {
        let chunked = ctl.run(&["get", "llms", "--chunk-size", size]).ok();
        assert_eq!(names(&chunked.stdout), names(&whole.stdout), "--chunk-size {size}");
        assert_eq!(chunked.stdout.matches("NAME").count(), 1, "one header:\n{}", chunked.stdout);
    }
    assert_eq!(names(&whole.stdout), ["l-0", "l-1", "l-2", "l-3", "l-4", "l-5", "l-6"]);
    let json: Value =
        serde_json::from_str(&ctl.run(&["get", "llms", "-o", "json", "--chunk-size", "2"]).ok().stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 7);
    let named = ctl.run(&["get", "llms", "-o", "name", "--chunk-size", "3"]).ok();
    assert_eq!(named.lines().len(), 7);
    assert_eq!(named.lines()[6], "llm/l-6");
}

async fn every_verb_works_for_every_kind(kind: StoreKind) {
    let server = TestServer::start(kind).await;
    let ctl = Ctl::new(&server);
    let env = ctl.file("openai.env", "# team key\nAPI_KEY=sk-from-file\nexport ORG=\"org-1\"\n");

    assert_eq!(
        ctl.run(&["create", "sb", "archive", "--type", "plaintext", "--description", "old keys"]).ok().stdout,
        "secretbackend/archive created\n"
    );
    ctl.run(&["create", "secret", "anthropic", "--data", "API_KEY=sk-ant-1"]).ok();
    let piped = ctl.run_with_stdin(
        &["create", "secret", "piped", "--data", "TOKEN=-", "--backend", "archive"],
        Some("from-stdin\n"),
    );
    assert_eq!(piped.ok().stdout, "secret/piped created\n");
    ctl.run(&["create", "secret", "openai", "--from-env-file", env.to_str().unwrap()]).ok();
    let llm = [
        "create",
        "llm",
        "claude-fast",
        "--type",
        "anthropic",
        "--model",
        "claude-haiku-4-5",
        "--tier",
        "fast",
        "--api-key-ref",
        "anthropic/API_KEY",
        "--extra",
        "maxTokens=4096",
    ];
    assert_eq!(ctl.run(&llm).ok().stdout, "llm/claude-fast created\n");
    ctl.run(&[
        "create",
        "llm",
        "local",
        "--type",
        "ollama",
        "--model",
        "llama3",
        "--tier",
        "heavy",
        "--url",
        "http://127.0.0.1:11434",
    ])
    .ok();

    // Values went where they should, and `get` shows them only when asked.
    let (_, piped) = server.get("/api/v1/secrets/piped?reveal=true").await;
    assert_eq!(piped["data"], json!({"TOKEN": "from-stdin"}));
    assert_eq!(piped["backend"], "archive");
    let (_, openai) = server.get("/api/v1/secrets/openai?reveal=true").await;
    assert_eq!(openai["data"], json!({"API_KEY": "sk-from-file", "ORG": "org-1"}));
    let table = ctl.run(&["get", "secrets"]).ok();
    assert!(!table.stdout.contains("sk-ant-1") && !table.stdout.contains("sk-from-file"));
    let yaml = ctl.run(&["get", "secret", "openai", "-o", "yaml"]).ok();
    assert!(!yaml.stdout.contains("sk-from-file"), "{}", yaml.stdout);
    let revealed = ctl.run(&["get", "secret", "openai", "-o", "yaml", "--reveal"]).ok();
    assert!(revealed.stdout.contains("API_KEY: sk-from-file"), "{}", revealed.stdout);

    // Tables: kubectl-style headers and aligned columns.
    let llms = ctl.run(&["get", "llms"]).ok();
    let lines = llms.lines();
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["NAME", "TYPE", "MODEL", "TIER", "API", "KEY", "AGE"]);
    assert_eq!(lines[1].find("claude-haiku-4-5"), lines[0].find("MODEL"));
    assert!(lines[1].contains("anthropic/API_KEY") && lines[2].contains("<none>"), "{}", llms.stdout);
    let wide = ctl.run(&["get", "llm", "-o", "wide"]).ok();
    assert!(
        wide.lines()[0].contains("URL")
            && wide.stdout.contains("maxTokens=4096")
            && wide.stdout.contains("http://127.0.0.1:11434")
    );
    let secrets = ctl.run(&["get", "secrets"]).ok();
    assert_eq!(secrets.lines()[0].split_whitespace().collect::<Vec<_>>(), ["NAME", "BACKEND", "KEYS", "AGE"]);
    assert!(secrets.stdout.contains("API_KEY,ORG"));
    let backends = ctl.run(&["get", "sb"]).ok();
    assert_eq!(backends.lines()[0].split_whitespace().collect::<Vec<_>>(), ["NAME", "TYPE", "DEFAULT", "AGE"]);
    assert!(backends.lines()[2].starts_with("default") && backends.lines()[2].contains("yes"));

    // Documents and names.
    let json: Value = serde_json::from_str(&ctl.run(&["get", "llms", "-o", "json"]).ok().stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    let one: Value = serde_json::from_str(&ctl.run(&["get", "llm", "claude-fast", "-o", "json"]).ok().stdout).unwrap();
    assert_eq!(one["apiKeyRef"], json!({"name": "anthropic", "key": "API_KEY"}));
    let yaml: Value = yaml_serde::from_str(&ctl.run(&["get", "sb", "archive", "-o", "yaml"]).ok().stdout).unwrap();
    assert_eq!(yaml["description"], "old keys");
    assert_eq!(
        ctl.run(&["get", "secrets", "-o", "name"]).ok().lines(),
        ["secret/anthropic", "secret/openai", "secret/piped"]
    );

    // describe: fields, what refers to it, history.
    let described = ctl.run(&["describe", "secret", "anthropic"]).ok().stdout;
    for expected in [
        "Name:",
        "anthropic",
        "Backend:",
        "default",
        "Used By:",
        "llm/claude-fast",
        "Events:",
        "SecretCreated",
        "admin",
    ] {
        assert!(described.contains(expected), "{expected} missing from:\n{described}");
    }
    assert!(!described.contains("sk-ant-1"));
    let described = ctl.run(&["describe", "sb", "archive"]).ok().stdout;
    assert!(described.contains("Holds:") && described.contains("secret/piped"), "{described}");

    // delete, and what a missing resource looks like.
    let refused = ctl.run(&["delete", "secret", "anthropic"]);
    assert_eq!(refused.code, 1);
    assert_eq!(refused.stderr, "Error: secret \"anthropic\" is used by llm \"claude-fast\"\n");
    assert_eq!(
        ctl.run(&["delete", "llm", "claude-fast", "local"]).ok().lines(),
        ["llm/claude-fast deleted", "llm/local deleted"]
    );
    ctl.run(&["delete", "secrets", "anthropic", "openai", "piped"]).ok();
    ctl.run(&["delete", "secretbackend", "archive"]).ok();
    let missing = ctl.run(&["get", "llm", "claude-fast"]);
    assert_eq!(missing.code, 1);
    assert_eq!(missing.stderr, "Error: llm \"claude-fast\" not found\n");
    assert_eq!(ctl.run(&["delete", "llm", "claude-fast"]).code, 1);
    assert_eq!(ctl.run(&["delete", "llm", "claude-fast", "--ignore-not-found"]).code, 0);
    let empty = ctl.run(&["get", "llms"]).ok();
    assert_eq!((empty.stdout.as_str(), empty.stderr.as_str()), ("", "No resources found.\n"));
    let version = ctl.run(&["version"]).ok().stdout;
    assert!(version.contains(&format!("Server Version: {}", env!("CARGO_PKG_VERSION"))), "{version}");
}

const CATALOGUE: &str = "\
kind: llm
name: gpt
type: openai
model: gpt-5-mini
tier: fast
apiKeyRef: {name: openai, key: API_KEY}
---
kind: Secret
name: openai
backend: archive
data: {API_KEY: sk-openai}
---
kind: secretbackends
name: archive
type: plaintext
";

async fn apply_takes_every_document_form_in_dependency_order(kind: StoreKind) {
    let server = TestServer::start(kind).await;
    let ctl = Ctl::new(&server);
    // The llm comes first in the file, its secret and backend after it: applied in dependency order.
    let file = ctl.file("catalogue.yaml", CATALOGUE);
    let applied = ctl.run(&["apply", "-f", file.to_str().unwrap()]).ok();
    assert_eq!(applied.lines(), ["secretbackend/archive created", "secret/openai created", "llm/gpt created"]);
    let again = ctl.run(&["apply", "-f", file.to_str().unwrap()]).ok();
    assert_eq!(again.lines(), ["secretbackend/archive unchanged", "secret/openai unchanged", "llm/gpt unchanged"]);
    let changed = ctl.file("catalogue.yaml", &CATALOGUE.replace("gpt-5-mini", "gpt-5"));
    let changed = ctl.run(&["apply", "-f", changed.to_str().unwrap()]).ok();
    assert_eq!(changed.lines(), ["secretbackend/archive unchanged", "secret/openai unchanged", "llm/gpt configured"]);
    assert_eq!(server.get("/api/v1/llms/gpt").await.1["model"], "gpt-5");

    // A JSON array, the grouped form, a directory of both kinds of file, and standard input.
    let array = ctl.file("docs/1-array.json", r#"[{"kind": "secret", "name": "from-json", "data": {"K": "v"}}]"#);
    let grouped = "secrets:\n- name: grouped\n  data: {K: v}\nllms:\n- name: local\n  type: ollama\n  model: llama3\n  tier: fast\n  url: http://127.0.0.1:11434\n";
    ctl.file("docs/2-grouped.yml", grouped);
    ctl.file("docs/ignored.txt", "not a document");
    let dir = array.parent().unwrap().to_str().unwrap().to_owned();
    let applied = ctl.run(&["apply", "-f", &dir]).ok();
    assert_eq!(applied.lines(), ["secret/from-json created", "secret/grouped created", "llm/local created"]);
    let stdin = ctl.run_with_stdin(
        &["apply", "-f", "-"],
        Some("{\"kind\": \"secretbackend\", \"name\": \"piped\", \"type\": \"plaintext\"}"),
    );
    assert_eq!(stdin.ok().stdout, "secretbackend/piped created\n");

    // delete -f goes in reverse dependency order.
    let deleted = ctl.run(&["delete", "-f", file.to_str().unwrap()]).ok();
    assert_eq!(deleted.lines(), ["llm/gpt deleted", "secret/openai deleted", "secretbackend/archive deleted"]);
}

async fn exported_documents_apply_back_unchanged_and_recreate_a_server(kind: StoreKind) {
    let server = TestServer::start(kind).await;
    let ctl = Ctl::new(&server);
    ctl.run(&["apply", "-f", ctl.file("c.yaml", CATALOGUE).to_str().unwrap()]).ok();
    ctl.run(&["create", "secret", "anthropic", "--data", "API_KEY=sk-ant", "--description", "prod"]).ok();

    let llms = ctl.run(&["get", "llms", "-o", "yaml"]).ok().stdout;
    let file = ctl.file("llms.yaml", &llms);
    assert_eq!(ctl.run(&["apply", "-f", file.to_str().unwrap()]).ok().lines(), ["llm/gpt unchanged"]);
    let json = ctl.file("all.json", &ctl.run(&["get", "all", "-o", "json"]).ok().stdout);
    let unchanged = ctl.run(&["apply", "-f", json.to_str().unwrap()]).ok();
    assert!(unchanged.lines().iter().all(|l| l.ends_with(" unchanged")), "{}", unchanged.stdout);

    // Without --reveal a secret document has no data, and applying it keeps the values.
    assert_eq!(server.get("/api/v1/secrets/anthropic?reveal=true").await.1["data"]["API_KEY"], "sk-ant");

    // With --reveal the export recreates everything on an empty server.
    let backup = ctl.file("backup.yaml", &ctl.run(&["get", "all", "-o", "yaml", "--reveal"]).ok().stdout);
    let fresh = TestServer::start(kind).await;
    let fresh_ctl = Ctl::new(&fresh);
    let restored = fresh_ctl.run(&["apply", "-f", backup.to_str().unwrap()]).ok();
    assert!(restored.stdout.contains("llm/gpt created") && restored.stdout.contains("secret/anthropic created"));
    let comparable = |mut docs: Value| {
        for doc in docs.as_array_mut().unwrap() {
            for field in ["resourceVersion", "createdAt", "updatedAt"] {
                doc.as_object_mut().unwrap().remove(field);
            }
        }
        docs
    };
    for kind in ["llms", "secrets?reveal=true", "secretbackends"] {
        let (_, old) = server.get(&format!("/api/v1/{kind}")).await;
        let (_, new) = fresh.get(&format!("/api/v1/{kind}")).await;
        assert_eq!(comparable(new["items"].clone()), comparable(old["items"].clone()), "{kind}");
    }
}

async fn dry_runs_change_nothing(kind: StoreKind) {
    let server = TestServer::start(kind).await;
    let ctl = Ctl::new(&server);
    let file = ctl.file("c.yaml", CATALOGUE);
    let client = ctl.run(&["apply", "-f", file.to_str().unwrap(), "--dry-run=client"]).ok();
    assert_eq!(
        client.lines(),
        ["secretbackend/archive created (dry run)", "secret/openai created (dry run)", "llm/gpt created (dry run)"]
    );
    let backend_only = ctl.file("sb.yaml", "kind: secretbackend\nname: archive\ntype: plaintext\n");
    let server_dry = ctl.run(&["apply", "-f", backend_only.to_str().unwrap(), "--dry-run=server"]).ok();
    assert_eq!(server_dry.stdout, "secretbackend/archive created (server dry run)\n");
    for path in ["/api/v1/llms/gpt", "/api/v1/secrets/openai", "/api/v1/secretbackends/archive"] {
        assert_eq!(server.get(path).await.0, 404, "{path} exists after a dry run");
    }

    ctl.run(&["apply", "-f", file.to_str().unwrap()]).ok();
    let changed = ctl.file("c.yaml", &CATALOGUE.replace("gpt-5-mini", "gpt-5").replace("sk-openai", "sk-rotated"));
    for mode in ["--dry-run=client", "--dry-run=server"] {
        let run = ctl.run(&["apply", "-f", changed.to_str().unwrap(), mode]).ok();
        assert!(
            run.stdout.contains("llm/gpt configured") && run.stdout.contains("secret/openai configured"),
            "{mode}: {}",
            run.stdout
        );
        assert!(run.stdout.contains("secretbackend/archive unchanged"), "{mode}: {}", run.stdout);
    }
    assert_eq!(server.get("/api/v1/llms/gpt").await.1["model"], "gpt-5-mini");
    assert_eq!(server.get("/api/v1/secrets/openai?reveal=true").await.1["data"]["API_KEY"], "sk-openai");
    let (_, history) = server.get("/api/v1/llms/gpt/history").await;
    assert_eq!(history["items"].as_array().unwrap().len(), 1, "no event was recorded");
    // A server dry run checks references: an llm whose secret does not exist is refused.
    let dangling =
        ctl.file("d.yaml", "kind: llm\nname: x\ntype: openai\nmodel: m\ntier: fast\napiKeyRef: {name: nope, key: K}\n");
    let refused = ctl.run(&["apply", "-f", dangling.to_str().unwrap(), "--dry-run=server"]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("spec.apiKeyRef.name: secret \"nope\""), "{}", refused.stderr);
}

async fn diff_shows_what_apply_would_change(kind: StoreKind) {
    let server = TestServer::start(kind).await;
    let ctl = Ctl::new(&server);
    let file = ctl.file("c.yaml", CATALOGUE);
    ctl.run(&["apply", "-f", file.to_str().unwrap()]).ok();
    let same = ctl.run(&["diff", "-f", file.to_str().unwrap()]);
    assert_eq!((same.code, same.stdout.as_str()), (0, ""));
    let changed = ctl.file("c.yaml", &CATALOGUE.replace("gpt-5-mini", "gpt-5"));
    let diff = ctl.run(&["diff", "-f", changed.to_str().unwrap()]);
    assert_eq!(diff.code, 1, "{}", diff.stderr);
    assert!(diff.stdout.contains("--- live/llm/gpt") && diff.stdout.contains("+++ merged/llm/gpt"), "{}", diff.stdout);
    assert!(diff.stdout.contains("-model: gpt-5-mini\n+model: gpt-5\n"), "{}", diff.stdout);
    assert!(!diff.stdout.contains("secret/openai"), "an unchanged secret is not shown");
    assert_eq!(server.get("/api/v1/llms/gpt").await.1["model"], "gpt-5-mini");
    let broken = ctl.run(&["diff", "-f", "missing.yaml"]);
    assert_eq!(broken.code, 2);
}

async fn bad_input_is_reported_with_file_document_and_field(kind: StoreKind) {
    let server = TestServer::start(kind).await;
    let ctl = Ctl::new(&server);
    let good_then_bad = "kind: secret\nname: fine\ndata: {K: v}\n---\nkind: widget\nname: w\n";
    let cases = [
        ("missing.yaml", None, "Error: cannot read missing.yaml: No such file or directory"),
        ("broken.yaml", Some("kind: llm\nname: [unclosed\n"), "Error: broken.yaml: document 1: invalid YAML"),
        ("kinds.yaml", Some(good_then_bad), "Error: kinds.yaml: document 2: unknown kind \"widget\""),
    ];
    for (name, content, expected) in cases {
        if let Some(content) = content {
            ctl.file(name, content);
        }
        let run = ctl.run(&["apply", "-f", name]);
        assert_eq!(run.code, 1, "{name}");
        assert!(run.stderr.starts_with(expected), "{name}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked") && !run.stderr.contains("RUST_BACKTRACE"));
    }
    assert_eq!(server.get("/api/v1/secrets/fine").await.0, 404, "nothing is applied from a file with a bad document");

    let fields = ctl.file("fields.yaml", "kind: llm\nname: x\ntype: openai\nmodle: gpt\ntier: medium\n");
    let run = ctl.run(&["apply", "-f", fields.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("fields.yaml: document 1 (llm/x): spec.modle: unknown field `modle`"),
        "{}",
        run.stderr
    );
    let invalid = ctl.file("invalid.yaml", "kind: llm\nname: x\ntype: openai\ntier: medium\n");
    let run = ctl.run(&["apply", "-f", invalid.to_str().unwrap()]);
    assert!(
        run.stderr.contains(
            "document 1 (llm/x): invalid llm: spec.model: is required; spec.tier: must be one of fast, heavy"
        ),
        "{}",
        run.stderr
    );

    // Server down: a plain message and a failure status, after a bounded retry.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = Ctl::for_url(&format!("http://127.0.0.1:{closed}"));
    let mut command = down.command(&["get", "llms"]);
    command.env("MCPCTL_RETRY_TIMEOUT", "300ms");
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.starts_with(&format!("Error: cannot reach mcpd at http://127.0.0.1:{closed}: connection refused")),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// `mcpctl explain` reads the server's OpenAPI description, as kubectl explain reads the API
/// server's: a kind's fields with their types, what is required, and what a field means,
/// down to nested fields and list items.
async fn explain_shows_fields_types_and_descriptions(kind: StoreKind) {
    let server = TestServer::start(kind).await;
    let ctl = Ctl::new(&server);
    let llm = ctl.run(&["explain", "llm"]).ok().stdout;
    assert!(llm.starts_with("KIND:       llm\nRESOURCE:   llms (/api/v1/llms)\n"), "{llm}");
    assert!(llm.contains("  type\t<string> -required-\n    The provider: anthropic"), "{llm}");
    assert!(llm.contains("    One of: anthropic, openai, deepseek, vllm, ollama, gemini-cli.\n"), "{llm}");
    assert!(llm.contains("  apiKeyRef\t<Object>\n    The Secret key holding the API key"), "{llm}");
    assert!(llm.contains("  extra\t<map[string]string>\n"), "{llm}");
    assert!(llm.contains("  resourceVersion\t<any> -read-only-\n"), "{llm}");

    let key = ctl.run(&["explain", "LLMs.apiKeyRef"]).ok().stdout;
    assert!(key.contains("FIELD: apiKeyRef <Object>\n"), "{key}");
    assert!(key.contains("  name\t<string> -required-\n    The Secret's name.\n"), "{key}");
    assert!(key.contains("  key\t<string> -required-\n    The key inside the Secret.\n"), "{key}");

    let verbs = ctl.run(&["explain", "role.rules.verbs"]).ok().stdout;
    assert!(verbs.contains("FIELD: verbs <[]string>\n"), "{verbs}");
    assert!(verbs.contains("One of: view, create, edit, delete, *."), "{verbs}");

    let url = ctl.run(&["explain", "sb.config.url"]).ok().stdout;
    assert!(
        url.contains("FIELD: url <string>\n\nDESCRIPTION:\n    The server: an http:// or https:// URL.\n"),
        "{url}"
    );

    // A kind never written as a document is explained as mcpd shows it.
    let token = ctl.run(&["explain", "token"]).ok().stdout;
    assert!(token.contains("(read-only: shown by mcpd, never written as a document)"), "{token}");
    assert!(token.contains("  revoked\t<boolean> -required-\n    Whether it was revoked"), "{token}");

    let bad = ctl.run(&["explain", "llm.apiKeyRef.nope"]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("llm.apiKeyRef has no field \"nope\"; its fields: name, key"), "{}", bad.stderr);
    let bad = ctl.run(&["explain", "widget"]);
    assert!(bad.stderr.contains("no resource kind \"widget\""), "{}", bad.stderr);
}

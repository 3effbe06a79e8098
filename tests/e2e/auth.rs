//! Authentication with the real binaries: the first start of an empty store makes an admin and
//! a token, written where the README says; mcpctl logs in, manages users and tokens, and a
//! revoked token stops working at once.

use std::os::unix::fs::PermissionsExt;

use serde_json::{Value, json};

use crate::ctl::Ctl;
use crate::support::{StoreKind, TestServer};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_makes_an_admin_token_and_mcpctl_logs_in_with_it() {
    // No MCPD_BOOTSTRAP_TOKEN: mcpd makes one up.
    let mut server = TestServer::start_with_env(StoreKind::Sqlite, &[("MCPD_BOOTSTRAP_TOKEN", "")]).await;
    let token_file = server.data_dir().join("admin-token");
    assert_eq!(mode(&token_file), 0o600, "only its owner may read the token file");
    let token = std::fs::read_to_string(&token_file).unwrap().trim().to_owned();
    assert!(token.starts_with("mcpd_tok-") && token.len() > 64, "{token}");
    let written: Value = serde_json::from_str(&std::fs::read_to_string(server.client_config()).unwrap()).unwrap();
    assert_eq!(written["token"], token.as_str());
    assert_eq!(written["server"], server.url(""));
    assert_eq!(mode(&server.client_config()), 0o600);
    assert!(server.logs().contains("admin-token"), "mcpd says where the token is");
    assert!(!server.logs().contains(&token), "but never prints it");

    // A client with no token is refused, with a hint.
    let mut ctl = Ctl::new(&server);
    ctl.token = None;
    let refused = ctl.run(&["get", "llms"]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("mcpctl login"), "{}", refused.stderr);

    // A wrong token is not stored.
    let wrong = ctl.run(&["login", "--token", "mcpd_tok-0000000000000000_00"]);
    assert_eq!(wrong.code, 1, "{}", wrong.stdout);
    assert!(!ctl.config.exists());
    let login = ctl.run(&["login", "--token", &token]).ok();
    assert!(login.stdout.contains("as admin"), "{}", login.stdout);
    assert_eq!(mode(&ctl.config), 0o600);
    ctl.run(&["get", "llms"]).ok();
    let view = ctl.run(&["config", "view"]).ok();
    assert!(!view.stdout.contains(&token) && view.stdout.contains("(hidden)"), "{}", view.stdout);

    // Users and tokens from the CLI; the token is printed once.
    ctl.run(&["create", "user", "alice", "--description", "SRE"]).ok();
    ctl.run(&["create", "role", "claude-fast-reader", "--verb=view", "--resource=llms", "--resource-name=claude-fast"])
        .ok();
    ctl.run(&["create", "rolebinding", "alice-reads", "--role=claude-fast-reader", "--user=alice"]).ok();
    // Roles and bindings from documents too, as kubectl does it; applying again changes nothing.
    let rbac = ctl.file(
        "rbac.yaml",
        "kind: rolebinding\nname: alice-llm-viewer\nrole: llm-viewer\nusers: [alice]\n---\n\
         kind: role\nname: llm-viewer\nrules:\n  - resources: [llms]\n    verbs: [view]\n",
    );
    let rbac = rbac.to_str().unwrap();
    let applied = ctl.run(&["apply", "-f", rbac]).ok().stdout;
    assert_eq!(
        applied.lines().collect::<Vec<_>>(),
        ["role/llm-viewer created", "rolebinding/alice-llm-viewer created"]
    );
    let again = ctl.run(&["apply", "-f", rbac]).ok().stdout;
    assert!(
        again.contains("role/llm-viewer unchanged") && again.contains("rolebinding/alice-llm-viewer unchanged"),
        "{again}"
    );
    assert_eq!(ctl.run(&["diff", "-f", rbac]).code, 0);
    let wider = ctl.file(
        "wider.yaml",
        "kind: role\nname: llm-viewer\nrules:\n  - resources: [llms, secrets]\n    verbs: [view]\n",
    );
    let dry = ctl.run(&["apply", "-f", wider.to_str().unwrap(), "--dry-run=server"]).ok().stdout;
    assert!(dry.contains("role/llm-viewer configured (server dry run)"), "{dry}");
    let kept = ctl.run(&["get", "role", "llm-viewer", "-o", "json"]).ok().stdout;
    assert!(!kept.contains("secrets"), "a server dry run changes nothing: {kept}");
    ctl.run(&["delete", "rolebinding", "alice-llm-viewer"]).ok();
    ctl.run(&["delete", "role", "llm-viewer"]).ok();
    let roles = ctl.run(&["get", "roles"]).ok().stdout;
    assert!(roles.contains("admin") && roles.contains("view llms[claude-fast]"), "{roles}");
    let bindings = ctl.run(&["get", "rolebindings"]).ok().stdout;
    assert!(bindings.contains("alice-reads") && bindings.contains("claude-fast-reader"), "{bindings}");
    let issued = ctl.run(&["create", "token", "--user", "alice", "--expires", "30d", "--description", "laptop"]).ok();
    let lines = issued.lines();
    let alices = lines[1].to_owned();
    assert!(alices.starts_with("mcpd_tok-"), "{}", issued.stdout);
    let id = lines[0].trim_start_matches("token/").split_whitespace().next().unwrap().to_owned();
    let tokens = ctl.run(&["get", "tokens"]).ok().stdout;
    assert!(tokens.contains(&id) && tokens.contains("alice") && tokens.contains("laptop"), "{tokens}");
    assert!(!tokens.contains(&alices), "a listed token never shows the token");
    let users = ctl.run(&["get", "users"]).ok().stdout;
    assert!(users.contains("admin") && users.contains("alice"), "{users}");

    let mut as_alice = Ctl::new(&server);
    as_alice.token = Some(alices);
    as_alice.run(&["get", "llms"]).ok();
    assert_eq!(as_alice.run(&["auth", "can-i", "view", "llms", "claude-fast"]).ok().stdout.trim(), "yes");
    let no = as_alice.run(&["auth", "can-i", "edit", "llm", "claude-fast"]);
    assert_eq!((no.code, no.stdout.trim()), (1, "no"));
    assert_eq!(as_alice.run(&["auth", "can-i", "reveal:secrets"]).stdout.trim(), "no");
    assert_eq!(ctl.run(&["auth", "can-i", "reveal:secrets"]).ok().stdout.trim(), "yes");
    let denied = as_alice.run(&["get", "secrets"]);
    assert_eq!(denied.code, 1);
    assert!(denied.stderr.contains("may not view secrets"), "{}", denied.stderr);
    ctl.run(&["delete", "token", &id]).ok();
    let revoked = as_alice.run(&["get", "llms"]);
    assert_eq!(revoked.code, 1, "revoked: refused on the very next request");
    assert!(revoked.stderr.contains("not valid"), "{}", revoked.stderr);

    // The audit trail: what alice's admin did, newest first, as JSON; and followed live.
    let audit = ctl.run(&["audit", "--kind", "rolebinding", "-o", "json"]).ok().stdout;
    let rows: Vec<Value> = serde_json::from_str(&audit).unwrap();
    let names: Vec<_> = rows.iter().map(|r| (r["eventType"].clone(), r["name"].clone(), r["actor"].clone())).collect();
    assert_eq!(
        names,
        [
            // Applied, applied again (no event: unchanged), dry-run (no event), deleted.
            (json!("RoleBindingDeleted"), json!("alice-llm-viewer"), json!("admin")),
            (json!("RoleBindingCreated"), json!("alice-llm-viewer"), json!("admin")),
            (json!("RoleBindingCreated"), json!("alice-reads"), json!("admin")),
            (json!("RoleBindingCreated"), json!("admin"), json!("mcpd")),
        ]
    );
    let table = ctl.run(&["audit", "--actor", "admin", "--type", "TokenRevoked"]).ok().stdout;
    assert!(table.contains("token/") && table.contains("TokenRevoked") && table.lines().count() == 2, "{table}");
    let mut follower = ctl
        .command(&["audit", "--follow", "-o", "json", "--kind", "llm"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    ctl.run(&["create", "secret", "followed", "--data", "K=v"]).ok();
    ctl.run(&[
        "create",
        "llm",
        "followed",
        "--type",
        "ollama",
        "--model",
        "llama3",
        "--tier",
        "fast",
        "--url",
        "http://127.0.0.1:11434",
    ])
    .ok();
    let line = rx.recv_timeout(std::time::Duration::from_secs(20)).expect("the follower prints the new event");
    let _ = follower.kill();
    let _ = follower.wait();
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!((event["eventType"].as_str(), event["name"].as_str()), (Some("LlmCreated"), Some("followed")));

    // A restart changes nothing: same token, no second admin token.
    server.terminate();
    server.spawn().await;
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), token);
    ctl.run(&["get", "llms"]).ok();
    let listed = ctl.run(&["get", "tokens"]).ok().stdout;
    let admins = listed.lines().filter(|l| l.split_whitespace().nth(1) == Some("admin")).count();
    assert_eq!(admins, 1, "{listed}");
}

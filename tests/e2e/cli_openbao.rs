//! mcpctl with an openbao backend: the token bootstrap, the default flag, reachability in
//! describe, and values that live only in OpenBao.

use serde_json::json;

use crate::ctl::Ctl;
use crate::support::{StoreKind, TestServer};

testkit::on_both_stores!(an_openbao_backend_from_the_command_line);

async fn an_openbao_backend_from_the_command_line(kind: StoreKind) {
    let bao = tokio::task::block_in_place(testkit::openbao::shared);
    let prefix = format!("e2e{}/", std::process::id() as u64 * 1000 + kind as u64);
    let token = bao.token_for_prefix(&prefix).await;
    let server = TestServer::start(kind).await;
    let ctl = Ctl::new(&server);

    let created =
        ctl.run_with_stdin(&["create", "secret", "bao-token", "--data", "token=-"], Some(&format!("{token}\n")));
    assert_eq!(created.ok().stdout, "secret/bao-token created\n");
    let create = [
        "create",
        "secretbackend",
        "bao",
        "--type",
        "openbao",
        "--url",
        &bao.addr,
        "--token-secret",
        "bao-token/token",
        "--path-prefix",
        &prefix,
        "--timeout-seconds",
        "5",
        "--default",
    ];
    assert_eq!(ctl.run(&create).ok().stdout, "secretbackend/bao created\n");
    let table = ctl.run(&["get", "sb", "-o", "wide"]).ok().stdout;
    let bao_line = table.lines().find(|l| l.starts_with("bao ")).unwrap();
    assert!(bao_line.contains("openbao") && bao_line.contains("yes") && bao_line.contains(&bao.addr), "{table}");
    let described = ctl.run(&["describe", "sb", "bao"]).ok().stdout;
    assert!(described.contains("Reachability:") && described.contains("ok (reachable at"), "{described}");
    assert!(!described.contains(&token), "describe never shows the token");

    // New secrets go to the default, which is now OpenBao.
    ctl.run(&["create", "secret", "anthropic", "--data", "API_KEY=sk-in-bao"]).ok();
    assert_eq!(bao.read(&format!("{prefix}anthropic")).await, Some(json!({"API_KEY": "sk-in-bao"})));
    let yaml = ctl.run(&["get", "secret", "anthropic", "-o", "yaml"]).ok().stdout;
    assert!(
        yaml.contains("backend: bao") && yaml.contains(&format!("externalRef: secret/data/{prefix}anthropic")),
        "{yaml}"
    );
    let revealed = ctl.run(&["get", "secret", "anthropic", "-o", "json", "--reveal"]).ok().stdout;
    assert!(revealed.contains("sk-in-bao"));

    // The backend's document round-trips.
    let doc = ctl.file("bao.yaml", &ctl.run(&["get", "sb", "bao", "-o", "yaml"]).ok().stdout);
    assert_eq!(ctl.run(&["apply", "-f", doc.to_str().unwrap()]).ok().stdout, "secretbackend/bao unchanged\n");

    // The token's secret and the default backend stay while they are needed.
    let refused = ctl.run(&["delete", "secret", "bao-token"]);
    assert_eq!(refused.stderr, "Error: secret \"bao-token\" is used by secretbackend \"bao\"\n");
    let refused = ctl.run(&["delete", "sb", "bao"]);
    assert!(refused.stderr.contains("is the default"), "{}", refused.stderr);

    ctl.run(&["delete", "secret", "anthropic"]).ok();
    assert!(!bao.exists(&format!("{prefix}anthropic")).await, "deleted from OpenBao too");
    // Moving the default back frees the openbao backend.
    let back = ctl.file("default.yaml", "kind: secretbackend\nname: default\ntype: plaintext\ndescription: values stored in mcpd's own database\nisDefault: true\n");
    assert_eq!(ctl.run(&["apply", "-f", back.to_str().unwrap()]).ok().stdout, "secretbackend/default configured\n");
    assert_eq!(ctl.run(&["delete", "sb", "bao"]).ok().stdout, "secretbackend/bao deleted\n");
}

//! Operating the read models with the real binaries: `mcpctl admin projections` against a
//! running server, `mcpd projections` offline on a stopped one, and the projector moving to
//! the surviving replica when the one running it is killed.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::ctl::{Ctl, Run};
use crate::support::{StoreKind, TestServer, binary};

testkit::on_both_stores!(
    offline_verify_and_rebuild_repair_a_stopped_store,
    mcpctl_rebuilds_and_verifies_a_running_server,
);

#[tokio::test]
async fn the_projector_moves_to_the_surviving_replica_when_its_holder_is_killed() {
    let mut first = TestServer::start(StoreKind::Postgres).await;
    let second = first.replica().await;
    let here = |items: &Value| -> Vec<bool> {
        items["items"].as_array().unwrap().iter().map(|i| i["runningHere"].as_bool().unwrap()).collect()
    };
    // The first replica took every read model; the second waits.
    assert_eq!(here(&first.get("/api/v1/projections").await.1), vec![true; 7]);
    assert_eq!(here(&second.get("/api/v1/projections").await.1), vec![false; 7]);

    // Both serve their own and each other's writes.
    let (status, body) = second.post("/api/v1/secrets", json!({"name": "key", "data": {"API_KEY": "v"}})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(second.post("/api/v1/llms", llm("from-second")).await.0, 201);
    assert_eq!(first.get("/api/v1/llms/from-second").await.0, 200);
    assert_eq!(first.post("/api/v1/llms", llm("from-first")).await.0, 201);
    assert_eq!(second.get("/api/v1/llms/from-first").await.0, 200);

    first.kill9();
    let killed = Instant::now();
    loop {
        let (status, body) = second.get("/api/v1/projections").await;
        assert_eq!(status, 200, "{body}");
        if here(&body) == vec![true; 7] {
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(30), "no takeover 30 s after the kill: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("the surviving replica took over the projector {:?} after the kill", killed.elapsed());
    // It projects on its own now: a write is shown at once.
    let (status, body) = second.post("/api/v1/llms", llm("after-failover")).await;
    assert_eq!(status, 201, "{body}");
    let names: Vec<String> = second.get("/api/v1/llms").await.1["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["after-failover", "from-first", "from-second"]);
    let status = second.get("/api/v1/projections").await.1;
    assert!(status["items"].as_array().unwrap().iter().all(|i| i["lagEvents"] == 0), "{status}");
}

fn llm(name: &str) -> Value {
    json!({"name": name, "type": "anthropic", "model": "claude-haiku-4-5", "tier": "fast",
           "apiKeyRef": {"name": "key", "key": "API_KEY"}})
}

/// `mcpd projections …` on the server's store, as an operator runs it with mcpd stopped.
fn mcpd(server: &TestServer, args: &[&str]) -> Run {
    let output = Command::new(binary("mcpd"))
        .arg("projections")
        .args(args)
        .arg("--database-url")
        .arg(server.store_url())
        .env_remove("MCPD_DATABASE_URL")
        .output()
        .expect("mcpd runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Changes the store behind mcpd's back.
async fn tamper(server: &TestServer, statements: &[&str]) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&server.store_url()).await.unwrap();
    for sql in statements {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;
}

async fn populate(server: &TestServer) {
    let (status, body) = server.post("/api/v1/secrets", json!({"name": "key", "data": {"API_KEY": "v"}})).await;
    assert_eq!(status, 201, "{body}");
    for i in 0..5 {
        assert_eq!(server.post("/api/v1/llms", llm(&format!("llm-{i}"))).await.0, 201);
    }
}

const TAMPERING: [&str; 2] =
    ["DELETE FROM llms WHERE name = 'llm-1'", "UPDATE llms SET model = 'tampered' WHERE name = 'llm-2'"];

async fn offline_verify_and_rebuild_repair_a_stopped_store(kind: StoreKind) {
    let mut server = TestServer::start(kind).await;
    populate(&server).await;
    assert!(server.terminate().success());

    let healthy = mcpd(&server, &["verify"]);
    assert_eq!(healthy.code, 0, "{healthy:?}");
    assert_eq!(
        healthy.lines(),
        ["secret_backends, secrets, llms, migrations, users, tokens, rbac: the tables match a replay of the log"]
    );

    tamper(&server, &TAMPERING).await;
    let broken = mcpd(&server, &["verify", "llms"]);
    assert_eq!(broken.code, 1, "{broken:?}");
    assert_eq!(
        broken.lines(),
        [
            r#"llms "llm-1": missing from the table"#,
            r#"llms "llm-2": model is "tampered" in the table, "claude-haiku-4-5" in a replay of the log"#,
        ]
    );
    assert_eq!(broken.stderr.trim(), "2 difference(s) between the tables and a replay of the log");

    let unknown = mcpd(&server, &["rebuild", "nosuch"]);
    assert_eq!(unknown.code, 2, "{unknown:?}");
    assert!(unknown.stderr.contains(r#"no projection "nosuch"; one of secret_backends, secrets, llms"#), "{unknown:?}");

    let rebuilt = mcpd(&server, &["rebuild", "--all"]);
    assert_eq!(rebuilt.code, 0, "{rebuilt:?}");
    let line = rebuilt.stdout.trim();
    assert!(
        line.starts_with("rebuilt secret_backends, secrets, llms, migrations, users, tokens, rbac from "),
        "{line}"
    );
    assert!(line.contains("llms=5"), "{line}");
    assert_eq!(mcpd(&server, &["verify"]).code, 0);
    let status = mcpd(&server, &["status"]);
    assert_eq!(status.code, 0, "{status:?}");
    let llms = status.lines().into_iter().find(|l| l.starts_with("llms ")).unwrap().to_owned();
    assert!(llms.contains("completed"), "{llms}");

    // mcpd starts on the repaired store and serves every Llm as it was written.
    server.spawn().await;
    let items = server.get("/api/v1/llms").await.1["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 5);
    assert!(items.iter().all(|i| i["model"] == "claude-haiku-4-5"));
}

async fn mcpctl_rebuilds_and_verifies_a_running_server(kind: StoreKind) {
    let server = TestServer::start(kind).await;
    populate(&server).await;
    let ctl = Ctl::new(&server);

    let status = ctl.run(&["admin", "projections", "status"]).ok();
    let lines = status.lines();
    assert!(lines[0].starts_with("NAME"), "{lines:?}");
    assert_eq!(lines.len(), 8, "{lines:?}");
    let llms: Vec<&str> = lines.iter().find(|l| l.starts_with("llms ")).unwrap().split_whitespace().collect();
    // NAME CHECKPOINT HEAD LAG LAG(S) HERE REBUILD ERROR
    assert_eq!((llms[3], llms[5], llms[6], llms[7]), ("0", "yes", "-", "-"), "{llms:?}");

    let rebuilt = ctl.run(&["admin", "projections", "rebuild", "--all"]).ok();
    assert!(
        rebuilt.stdout.starts_with("rebuilt secret_backends, secrets, llms, migrations, users, tokens, rbac from "),
        "{rebuilt:?}"
    );
    let json: Value =
        serde_json::from_str(&ctl.run(&["admin", "projections", "status", "-o", "json"]).ok().stdout).unwrap();
    for item in json.as_array().unwrap() {
        assert_eq!(item["rebuild"]["status"], "completed", "{item}");
        assert_eq!(item["rebuild"]["requestedBy"], "admin", "{item}");
    }

    assert_eq!(ctl.run(&["admin", "projections", "verify"]).ok().stdout.lines().count(), 1);
    tamper(&server, &TAMPERING).await;
    let broken = ctl.run(&["admin", "projections", "verify", "llms", "secrets"]);
    assert_eq!(broken.code, 1, "{broken:?}");
    assert_eq!(broken.lines().len(), 2, "{broken:?}");
    assert!(broken.stdout.contains(r#"llms "llm-1": missing from the table"#), "{broken:?}");

    ctl.run(&["admin", "projections", "rebuild", "llms"]).ok();
    let healthy = ctl.run(&["admin", "projections", "verify", "llms"]).ok();
    assert!(healthy.stdout.starts_with("llms: the tables match a replay of "), "{healthy:?}");
    assert_eq!(server.get("/api/v1/llms/llm-1").await.0, 200);

    // Mistakes get clear errors.
    let nothing = ctl.run(&["admin", "projections", "rebuild"]);
    assert_eq!(nothing.code, 2, "{nothing:?}");
    let unknown = ctl.run(&["admin", "projections", "rebuild", "nosuch"]);
    assert_eq!(unknown.code, 1, "{unknown:?}");
    assert!(
        unknown.stderr.contains(r#"no projection \"nosuch\""#) || unknown.stderr.contains(r#"no projection "nosuch""#),
        "{unknown:?}"
    );
    // A viewer may not.
    let mut viewer = Ctl::new(&server);
    assert_eq!(server.post("/api/v1/users", json!({"name": "vera"})).await.0, 201);
    let binding = json!({"name": "vera-view", "role": "viewer", "users": ["vera"]});
    assert_eq!(server.post("/api/v1/rolebindings", binding).await.0, 201);
    viewer.token =
        Some(server.post("/api/v1/tokens", json!({"user": "vera"})).await.1["token"].as_str().unwrap().to_owned());
    let denied = viewer.run(&["admin", "projections", "status"]);
    assert_eq!(denied.code, 1, "{denied:?}");
    assert!(denied.stderr.contains("may not run:rebuild-projections"), "{denied:?}");
}

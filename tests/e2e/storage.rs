//! The store's own faults and procedures: a full disk under the embedded SQLite, and the
//! database-level backups of docs/operations.md taken as written while clients write, restored,
//! and checked (every write acknowledged before the backup is there, `verify` is clean).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::{AnyConnection, Connection};

use crate::support::{StoreKind, TestServer};

/// A tmpfs of `size` mounted on a directory for the length of a test: a disk that fills up.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(path: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(path)
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "mounting a {size} tmpfs on {} (the tests run as root)",
            path.display()
        );
        SmallDisk { path: path.to_owned() }
    }

    fn grow(&self, size: &str) {
        let status =
            Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(&self.path).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

async fn integrity(store_url: &str) -> String {
    sqlx::any::install_default_drivers();
    let mut db = AnyConnection::connect(store_url).await.unwrap();
    sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut db).await.unwrap()
}

async fn verify_is_clean(server: &TestServer) {
    let (status, body) = server.post("/api/v1/projections/verify", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["differences"], json!([]), "the read models differ from a replay of the log");
}

/// SQLite on a disk that fills up: the write that finds no space is 507 `StorageFull` with a
/// message saying so (before, a 500), nothing acknowledged is lost, reads go on, the file stays
/// intact, and once there is space again every write works without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gives_a_clear_error_loses_nothing_and_recovers() {
    let mut disk = None;
    let server =
        TestServer::start_prepared(StoreKind::Sqlite, &[], |dir| disk = Some(SmallDisk::mount(dir, "3m"))).await;
    let disk = disk.unwrap();
    let big = "x".repeat(100_000);
    let mut acknowledged = Vec::new();
    let full = loop {
        let name = format!("s{}", acknowledged.len());
        let (status, body) = server.post("/api/v1/secrets", json!({"name": name, "data": {"K": big}})).await;
        match status {
            201 => acknowledged.push(name),
            _ => break (status, body),
        }
        assert!(acknowledged.len() < 100, "3 MiB never filled up");
    };
    assert!(!acknowledged.is_empty(), "the first write already failed: {full:?}");
    assert_eq!(full.0, 507, "{}", full.1);
    assert_eq!(full.1["error"]["code"], "StorageFull", "{}", full.1);
    assert!(full.1["error"]["message"].as_str().unwrap().contains("out of disk space"), "{}", full.1);
    // Reads are served meanwhile, and every acknowledged write is there.
    for name in &acknowledged {
        assert_eq!(server.get(&format!("/api/v1/secrets/{name}")).await.0, 200, "{name}");
    }
    assert_eq!(
        server.get(&format!("/api/v1/secrets/s{}", acknowledged.len())).await.0,
        404,
        "the refused write left nothing"
    );
    assert!(!server.logs().contains("panicked"), "{}", server.logs());

    disk.grow("64m");
    let (status, body) = server.post("/api/v1/secrets", json!({"name": "after", "data": {"K": big}})).await;
    assert_eq!(status, 201, "writes work again once there is space: {body}");
    for name in acknowledged.iter().chain(std::iter::once(&"after".to_owned())) {
        let (status, body) = server.get(&format!("/api/v1/secrets/{name}?reveal=true")).await;
        assert_eq!((status, body["data"]["K"].as_str().map(str::len)), (200, Some(big.len())), "{name}");
    }
    verify_is_clean(&server).await;
    assert_eq!(integrity(&server.store_url()).await, "ok");
}

/// Clients writing secrets until told to stop: what each was told was created, in order.
fn writers(server: &TestServer, stop: Arc<AtomicBool>) -> (Arc<Mutex<Vec<String>>>, Vec<tokio::task::JoinHandle<()>>) {
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let tasks = (0..3)
        .map(|id| {
            let (base, token, stop, acknowledged) =
                (server.url(""), server.admin_token().to_owned(), stop.clone(), acknowledged.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let name = format!("w{id}-{i}");
                    let body = json!({"name": name, "data": {"K": format!("value-{name}")}});
                    let r = http
                        .post(format!("{base}/api/v1/secrets"))
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
                    acknowledged.lock().unwrap().push(name);
                }
            })
        })
        .collect();
    (acknowledged, tasks)
}

/// Waits until the writers have had `count` writes acknowledged.
async fn until_acknowledged(acknowledged: &Mutex<Vec<String>>, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < count {
        assert!(Instant::now() < deadline, "the writers made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Lets the writers go on past the backup (ten more writes), then stops them.
async fn keep_writing_then_stop(
    acknowledged: &Mutex<Vec<String>>,
    before: usize,
    stop: &AtomicBool,
    tasks: Vec<tokio::task::JoinHandle<()>>,
) {
    until_acknowledged(acknowledged, before + 10).await;
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    eprintln!("{before} writes acknowledged before the backup, {} in all", acknowledged.lock().unwrap().len());
}

/// Every write acknowledged before the backup began is in the restored store with its value.
async fn restored_holds(server: &TestServer, before: &[String]) {
    let (status, all) = server.get("/api/v1/secrets?reveal=true&limit=1000").await;
    assert_eq!(status, 200, "{all}");
    let values: std::collections::HashMap<&str, &Value> =
        all["items"].as_array().unwrap().iter().map(|s| (s["name"].as_str().unwrap(), &s["data"]["K"])).collect();
    for name in before {
        assert_eq!(
            values.get(name.as_str()).and_then(|v| v.as_str()),
            Some(format!("value-{name}").as_str()),
            "{name}"
        );
    }
}

/// The SQLite backup of operations.md, `sqlite3 mcpd.db ".backup …"`, taken while three clients
/// write: mcpd started on the copy holds every write acknowledged before it began, and verify
/// finds its read models in step with its log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_sqlite_backup_under_writes_restores_every_acknowledged_write() {
    let server = TestServer::start(StoreKind::Sqlite).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (acknowledged, tasks) = writers(&server, stop.clone());
    until_acknowledged(&acknowledged, 30).await;
    let before = acknowledged.lock().unwrap().clone();
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("mcpd.db");
    let out = Command::new("sqlite3")
        .arg(server.data_dir().join("mcpd.db"))
        .arg(format!(".backup {}", backup.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    keep_writing_then_stop(&acknowledged, before.len(), &stop, tasks).await;

    let env = [("MCPD_BOOTSTRAP_TOKEN", server.admin_token())];
    let restored = TestServer::start_prepared(StoreKind::Sqlite, &env, |dir| {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::copy(&backup, dir.join("mcpd.db")).unwrap();
    })
    .await;
    restored_holds(&restored, &before).await;
    verify_is_clean(&restored).await;
    assert_eq!(integrity(&restored.store_url()).await, "ok");
}

/// The PostgreSQL backup of operations.md, `pg_dump -Fc`, taken while three clients write, and
/// restored with `pg_restore` into an empty database: mcpd started there holds every write
/// acknowledged before the dump began, and verify is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pg_dump_under_writes_restores_every_acknowledged_write() {
    let server = TestServer::start(StoreKind::Postgres).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (acknowledged, tasks) = writers(&server, stop.clone());
    until_acknowledged(&acknowledged, 30).await;
    let before = acknowledged.lock().unwrap().clone();
    let scratch = tempfile::tempdir().unwrap();
    let dump = scratch.path().join("mcpd.dump");
    let out = Command::new("pg_dump").arg("-Fc").arg("-f").arg(&dump).arg(server.store_url()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    keep_writing_then_stop(&acknowledged, before.len(), &stop, tasks).await;

    let target = testkit::TestDb::new(StoreKind::Postgres).await;
    let out = Command::new("pg_restore").args(["--no-owner", "-d"]).arg(&target.url).arg(&dump).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let env = [("MCPD_BOOTSTRAP_TOKEN", server.admin_token())];
    let restored = TestServer::start_on_database(target, StoreKind::Postgres, &env).await;
    restored_holds(&restored, &before).await;
    verify_is_clean(&restored).await;
}

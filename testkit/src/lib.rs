//! Test support shared by the API and end-to-end suites: a real database per test (a SQLite
//! file in a temp dir, or a PostgreSQL database of its own, dropped afterwards), and the macro
//! that runs one test body on both stores.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod openbao;
pub mod proxy;

use std::path::PathBuf;

use sqlx::{Connection, PgConnection};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests create their databases on: `DATABASE_URL`, else the local one.
/// The first admin's token in every test store (`MCPD_BOOTSTRAP_TOKEN`).
pub const ADMIN_TOKEN: &str = "mcpd-test-admin-token-0123456789abcdef0123";

pub fn postgres_admin_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database that exists for one test.
pub struct TestDb {
    pub url: String,
    /// The temp dir holding the SQLite file (also a scratch dir for the test on PostgreSQL).
    pub dir: tempfile::TempDir,
    postgres_name: Option<String>,
    _cluster: Option<cluster::Guard>,
}

impl TestDb {
    pub async fn new(kind: StoreKind) -> TestDb {
        let guard = match kind {
            StoreKind::Sqlite => None,
            StoreKind::Postgres => Some(cluster::shared().await),
        };
        Self::create(kind, guard).await
    }

    /// A database for a test that holds a PostgreSQL transaction open (or a lock, or a stalled
    /// statement): while it runs, no other test of this binary uses the cluster. A transaction
    /// open anywhere on the cluster holds back every projector on it (the reader's horizon,
    /// `pg_snapshot_xmin`, is cluster-wide), so other tests' writes would be answered 202 where
    /// they assert 201.
    pub async fn holding_the_cluster(kind: StoreKind) -> TestDb {
        let guard = match kind {
            StoreKind::Sqlite => None,
            StoreKind::Postgres => Some(cluster::exclusive().await),
        };
        Self::create(kind, guard).await
    }

    async fn create(kind: StoreKind, cluster: Option<cluster::Guard>) -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        match kind {
            StoreKind::Sqlite => TestDb {
                url: format!("sqlite://{}", dir.path().join("mcpd.db").display()),
                dir,
                postgres_name: None,
                _cluster: cluster,
            },
            StoreKind::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("mcpd_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("connecting to PostgreSQL at {admin}: {e}"));
                sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut conn)
                    .await
                    .expect("creating the test database");
                let base = admin.split('?').next().unwrap_or(&admin);
                let base = &base[..base.rfind('/').expect("a database URL has a path")];
                TestDb { url: format!("{base}/{name}"), dir, postgres_name: Some(name), _cluster: cluster }
            }
        }
    }

    /// This test database reached through a proxy the test can cut (PostgreSQL only): the URL
    /// to give the app, and the proxy.
    pub async fn behind_proxy(&self) -> (String, proxy::Proxy) {
        assert!(self.postgres_name.is_some(), "only a PostgreSQL database can be cut off");
        let (proxy, url) = proxy::Proxy::in_front_of(&self.url).await;
        (url, proxy)
    }

    /// Another handle on the same database that does not drop it.
    pub fn share(&self) -> TestDb {
        TestDb {
            url: self.url.clone(),
            dir: tempfile::tempdir().expect("temp dir"),
            postgres_name: None,
            _cluster: None,
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        // Drop runs outside async; a short-lived runtime on its own thread does the clean-up.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&postgres_admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// Runs each listed `async fn(StoreKind)` as one test on SQLite and one on PostgreSQL.
#[macro_export]
macro_rules! on_both_stores {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::StoreKind::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::StoreKind::Postgres).await
                }
            )*
        }
    };
}

/// The configuration of a fuzzed (property-based) test: seeded (the seed is printed;
/// `MCPD_PROPTEST_SEED=<seed>` replays a run) and short unless `MCPD_PROPTEST_CASES` asks for
/// more (docs/reliability.md).
pub fn fuzz_config(name: &str) -> proptest::test_runner::Config {
    let seed = std::env::var("MCPD_PROPTEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(7, |d| d.as_nanos() as u64)
    });
    let cases = std::env::var("MCPD_PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256);
    eprintln!("{name}: proptest seed {seed}, {cases} cases (replay with MCPD_PROPTEST_SEED={seed})");
    proptest::test_runner::Config {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

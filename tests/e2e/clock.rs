//! Clock skew between replicas: one replica's wall clock set ten minutes ahead (libfaketime; its
//! monotonic clock left alone, as NTP would). What several replicas compare is judged by the
//! database's clock, so the skew cannot make one replica take over another's work; what one
//! replica judges alone (a token's expiry) is off by the skew and no more (docs/reliability.md).

use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::support::{StoreKind, TestServer};

async fn rebuild(server: &TestServer) -> (u16, Value) {
    server.post("/api/v1/projections/rebuild", json!({"names": ["llms"]})).await
}

/// A rebuild running on one replica, its claim stamped a moment ago by the database's clock: a
/// replica whose clock is ten minutes ahead does not find it stale and start a second one
/// (before, it judged the claim by its own clock, and took over any claim after 30 s of skew).
/// Once the claim really is stale (its holder stopped reporting 30 s ago), any replica may
/// take it over, whatever its clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_clock_runs_ahead_does_not_take_over_a_running_rebuild() {
    let normal = TestServer::start(StoreKind::Postgres).await;
    let ahead = normal.replica_with_clock("+10m").await;
    let mut db = PgConnection::connect(&normal.store_url()).await.unwrap();
    // The claim a replica running a rebuild keeps fresh (it reports progress every second).
    let running = "INSERT INTO projection_rebuilds (name, status, replayed, total, requested_by, started_at, updated_at) \
                   VALUES ('llms', 'running', 10, 1000, 'admin', $1, $1) \
                   ON CONFLICT (name) DO UPDATE SET status = 'running', updated_at = excluded.updated_at";
    let db_now = "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
    let now: String = sqlx::query_scalar(db_now).fetch_one(&mut db).await.unwrap();
    sqlx::query(running).bind(&now).execute(&mut db).await.unwrap();

    for server in [&ahead, &normal] {
        let (status, body) = rebuild(server).await;
        assert_eq!(status, 409, "a running rebuild is not taken over: {body}");
        let (_, projections) = server.get("/api/v1/projections").await;
        let llms = projections["items"].as_array().unwrap().iter().find(|i| i["name"] == "llms").unwrap().clone();
        assert_eq!(llms["rebuild"]["status"], "running", "and is not shown as interrupted: {llms}");
    }

    // Its holder stopped reporting 31 s ago (by the database's clock): stale for everyone.
    let stale = "SELECT to_char((clock_timestamp() - interval '31 seconds') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
    let then: String = sqlx::query_scalar(stale).fetch_one(&mut db).await.unwrap();
    sqlx::query(running).bind(&then).execute(&mut db).await.unwrap();
    let (status, body) = rebuild(&ahead).await;
    assert_eq!(status, 202, "a stale claim is taken over: {body}");
}

/// What one replica judges by its own clock is off by the skew, no more: a token that expires
/// in five minutes works on the replica with the right time and is already refused by the one
/// ten minutes ahead. The log's times are the database's, whichever replica wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skewed_replica_is_off_by_its_skew_and_the_log_keeps_the_databases_time() {
    let normal = TestServer::start(StoreKind::Postgres).await;
    let ahead = normal.replica_with_clock("+10m").await;
    let (status, user) = normal.post("/api/v1/users", json!({"name": "alice"})).await;
    assert_eq!(status, 201, "{user}");
    let (status, binding) =
        normal.post("/api/v1/rolebindings", json!({"name": "alice-reads", "role": "viewer", "users": ["alice"]})).await;
    assert_eq!(status, 201, "{binding}");
    let (status, issued) = normal.post("/api/v1/tokens", json!({"user": "alice", "expires": "5m"})).await;
    assert_eq!(status, 201, "{issued}");
    let token = issued["token"].as_str().unwrap();
    let as_alice = async |server: &TestServer| {
        server.http.get(server.url("/api/v1/llms")).bearer_auth(token).send().await.unwrap().status().as_u16()
    };
    assert_eq!(as_alice(&normal).await, 200, "not expired by the right clock");
    assert_eq!(as_alice(&ahead).await, 401, "expired by a clock ten minutes ahead: early by the skew");

    // A write through the replica that is ahead is recorded at the database's time.
    let (status, body) = ahead.post("/api/v1/secrets", json!({"name": "written-ahead", "data": {"K": "v"}})).await;
    assert_eq!(status, 201, "{body}");
    let mut db = PgConnection::connect(&normal.store_url()).await.unwrap();
    let future: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = 'written-ahead' AND recorded_at > clock_timestamp()",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(future, 0, "no event is stamped in the database's future");
}

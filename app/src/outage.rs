//! What a database error says about the database (unreachable, out of space), and when this
//! process last found it unreachable: for a while after that, the pools check every connection
//! before handing it out, since idle ones may have broken in the same outage. Depends on
//! nothing else in the crate: the error conversion notes an outage here, the pools read it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// For this long after a request found the database unreachable, every connection is pinged
/// before it is handed out.
const PING_AFTER_OUTAGE: Duration = Duration::from_secs(30);

/// When a request last found the database unreachable, in milliseconds since `STARTED` (0:
/// never).
static LAST_OUTAGE_MS: AtomicU64 = AtomicU64::new(0);
static STARTED: OnceLock<std::time::Instant> = OnceLock::new();

fn now_ms() -> u64 {
    STARTED.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64 + 1
}

/// Whether this process found the database unreachable within the last [`PING_AFTER_OUTAGE`].
pub fn recent() -> bool {
    let last = LAST_OUTAGE_MS.load(Ordering::Relaxed);
    last != 0 && now_ms().saturating_sub(last) < PING_AFTER_OUTAGE.as_millis() as u64
}

/// Whether `error` says the database's disk is full: SQLite's `SQLITE_FULL` (13), PostgreSQL's
/// `disk_full` (53100), or the OS's ENOSPC.
pub fn out_of_space(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(e) => e.code().is_some_and(|c| matches!(&*c, "13" | "53100")),
        sqlx::Error::Io(e) => e.raw_os_error() == Some(28),
        _ => false,
    }
}

/// Whether `error` says the database could not be reached (rather than that a query failed);
/// when it does, the outage is noted (see [`recent`]).
pub fn unreachable(error: &sqlx::Error) -> bool {
    let unreachable = match error {
        // `Protocol`: the connection broke mid-handshake (what a dropped connection looks like).
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed => true,
        // PostgreSQL: connection exceptions (08…), shutting down or starting up (57P01-57P03).
        sqlx::Error::Database(e) => {
            e.code().is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03"))
        }
        _ => false,
    };
    if unreachable {
        LAST_OUTAGE_MS.store(now_ms(), Ordering::Relaxed);
    }
    unreachable
}

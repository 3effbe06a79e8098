//! Who uses the PostgreSQL cluster: every PostgreSQL test of a binary shares it, except a test
//! that holds a transaction open, which has it to itself (see `TestDb::holding_the_cluster`).
//!
//! Readers never wait for a waiting holder, only for a running one: a test that opens a second
//! database while a holder waits cannot deadlock. A holder waits until no reader is left, which
//! with cargo's one test per core comes between two tests.

use std::sync::Mutex;

use tokio::sync::Notify;

#[derive(Default)]
struct State {
    readers: usize,
    held: bool,
}

static STATE: Mutex<State> = Mutex::new(State { readers: 0, held: false });
static CHANGED: Notify = Notify::const_new();

/// A share of the cluster, or the whole of it; given back when dropped.
pub struct Guard {
    exclusive: bool,
}

pub async fn shared() -> Guard {
    acquire(false).await
}

pub async fn exclusive() -> Guard {
    acquire(true).await
}

async fn acquire(exclusive: bool) -> Guard {
    loop {
        // Registered before the check, so a release between the check and the wait is not missed.
        let changed = CHANGED.notified();
        {
            let mut state = STATE.lock().expect("cluster lock");
            let free = if exclusive { !state.held && state.readers == 0 } else { !state.held };
            if free {
                if exclusive {
                    state.held = true;
                } else {
                    state.readers += 1;
                }
                return Guard { exclusive };
            }
        }
        changed.await;
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut state = STATE.lock().expect("cluster lock");
        if self.exclusive {
            state.held = false;
        } else {
            state.readers -= 1;
        }
        drop(state);
        CHANGED.notify_waiters();
    }
}

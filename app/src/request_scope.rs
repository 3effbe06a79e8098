//! What the code serving a request may learn about it without being handed it: the request id
//! (for error answers and logs) and how far it got: whether it has begun changing anything
//! (a secret backend write, an append) and whether it has recorded a change (after which its
//! answer is 2xx or 202). Task-locals set by the request-context middleware; depends on nothing
//! else in the crate, so that errors and the context can both use it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

tokio::task_local! {
    static REQUEST_ID: String;
    static PROGRESS: Arc<AtomicU8>;
}

const CHANGING: u8 = 1;
const RECORDED: u8 = 2;

/// The request id of the request being served, or `-` outside one.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_else(|_| "-".to_owned())
}

/// Notes that the request being served has begun changing something outside itself (a value
/// written to a secret backend, an append under way): from here on it is not cut short.
pub fn mark_changing() {
    let _ = PROGRESS.try_with(|progress| progress.fetch_max(CHANGING, Ordering::Relaxed));
}

/// Notes that the request being served has recorded a change (an event is in the log).
pub fn mark_recorded() {
    let _ = PROGRESS.try_with(|progress| progress.store(RECORDED, Ordering::Relaxed));
}

/// Whether the request being served has recorded a change so far.
pub fn recorded() -> bool {
    PROGRESS.try_with(|progress| progress.load(Ordering::Relaxed) == RECORDED).unwrap_or(false)
}

/// The request ran past its timeout before it changed anything, and was stopped.
#[derive(Debug)]
pub struct TimedOut;

/// Runs `serve` as request `request_id`; its output, and whether it recorded a change. Past
/// `timeout` a request that has changed nothing is dropped ([`TimedOut`]); one that has begun a
/// change runs to its end, which its own time limits (database, backends) bound.
pub async fn run<F: Future>(
    request_id: String,
    serve: F,
    timeout: Option<Duration>,
) -> Result<(F::Output, bool), TimedOut> {
    let progress = Arc::new(AtomicU8::new(0));
    let serve = REQUEST_ID.scope(request_id, PROGRESS.scope(progress.clone(), serve));
    tokio::pin!(serve);
    let output = match timeout {
        None => serve.await,
        Some(limit) => match tokio::time::timeout(limit, &mut serve).await {
            Ok(output) => output,
            Err(_) if progress.load(Ordering::Relaxed) == 0 => return Err(TimedOut),
            Err(_) => serve.await,
        },
    };
    Ok((output, progress.load(Ordering::Relaxed) == RECORDED))
}

/// Runs `f` as request `request_id` (outside the async scope, e.g. to build an answer after it).
pub fn with_id<R>(request_id: String, f: impl FnOnce() -> R) -> R {
    REQUEST_ID.sync_scope(request_id, f)
}

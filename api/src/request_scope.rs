//! What the code serving a request may learn about it without being handed it: the request id
//! (for error answers and logs) and whether it has recorded a change yet (after which its answer
//! is 2xx or 202). Task-locals set by the request-context middleware; depends on nothing else in
//! the crate, so that errors and the context can both use it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

tokio::task_local! {
    static REQUEST_ID: String;
    static RECORDED: Arc<AtomicBool>;
}

/// The request id of the request being served, or `-` outside one.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_else(|_| "-".to_owned())
}

/// Notes that the request being served has recorded a change (an event is in the log).
pub fn mark_recorded() {
    let _ = RECORDED.try_with(|recorded| recorded.store(true, Ordering::Relaxed));
}

/// Runs `serve` as request `request_id`; its output, and whether it recorded a change.
pub async fn run<F: Future>(request_id: String, serve: F) -> (F::Output, bool) {
    let recorded = Arc::new(AtomicBool::new(false));
    let output = REQUEST_ID.scope(request_id, RECORDED.scope(recorded.clone(), serve)).await;
    (output, recorded.load(Ordering::Relaxed))
}

/// Runs `f` as request `request_id` (outside the async scope, e.g. to build an answer after it).
pub fn with_id<R>(request_id: String, f: impl FnOnce() -> R) -> R {
    REQUEST_ID.sync_scope(request_id, f)
}

//! The HTTP listener: hyper's HTTP/1.1 connections under limits that keep one slow or hostile
//! client from starving the rest. A client must send a request's headers within the header-read
//! timeout (which also bounds how long an idle keep-alive connection waits for its next
//! request); at most `max_connections` are open at once (more wait in the kernel's accept
//! queue); on SIGTERM the listener closes, requests in flight get the grace period to finish,
//! and whatever is still open after it is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// How the listener treats its connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
}

/// Serves `router` on `listener` until `shutdown` completes, then drains within the grace.
pub async fn run(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::<()>::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let (stream, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        // The router for this connection, with the client's address in every request.
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo::<SocketAddr>(remote));
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        while connections.try_join_next().is_some() {}
        connections.spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(remote = %remote, error = %e, "a connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!(grace_seconds = limits.shutdown_grace.as_secs_f64(), "shutting down: finishing requests in flight");
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(open = connections.len(), "the shutdown grace period ended with connections open; closing them");
    }
    connections.abort_all();
}

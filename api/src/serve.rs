//! The HTTP listener: hyper's HTTP/1.1 connections under limits that keep one slow or hostile
//! client from starving the rest. A client must send a request's headers within the header-read
//! timeout (which also bounds how long an idle keep-alive connection waits for its next
//! request); at most `max_connections` are open at once (more wait in the kernel's accept
//! queue); on SIGTERM the listener closes, requests in flight get the grace period to finish,
//! and whatever is still open after it is dropped. With TLS, the handshake must also finish
//! within the header-read timeout.

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

/// Serves `router` on `listener` (over TLS when `tls` is set) until `shutdown` completes, then
/// drains within the grace.
pub async fn run(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    tls: Option<Arc<crate::tls::Tls>>,
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
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let acceptor = tls.as_ref().map(|tls| tls.acceptor());
        while connections.try_join_next().is_some() {}
        connections.spawn(async move {
            let result = match acceptor {
                None => serve_connection(&builder, watcher, stream, router, remote, None).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let certificate = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|chain| chain.first())
                                .and_then(crate::tls::client_certificate);
                            serve_connection(&builder, watcher, stream, router, remote, certificate).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(remote = %remote, error = %e, "a TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => {
                            tracing::debug!(remote = %remote, "a TLS handshake did not finish in time");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = result {
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

/// One connection's requests, each with the client's address (and its certificate's user).
async fn serve_connection<I>(
    builder: &hyper::server::conn::http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
    io: I,
    router: axum::Router,
    remote: SocketAddr,
    certificate: Option<crate::tls::ClientCertificate>,
) -> hyper::Result<()>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo::<SocketAddr>(remote));
        if let Some(certificate) = &certificate {
            request.extensions_mut().insert(certificate.clone());
        }
        router.clone().oneshot(request.map(axum::body::Body::new))
    });
    watcher.watch(builder.serve_connection(TokioIo::new(io), service)).await
}

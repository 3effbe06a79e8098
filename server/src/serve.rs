//! The HTTP listener: hyper's HTTP/1.1 connections under limits that keep one slow or hostile
//! client from starving the rest. A client must send a request's headers within the header-read
//! timeout (which also bounds how long an idle keep-alive connection waits for its next
//! request); at most `max_connections` are open at once (more wait in the kernel's accept
//! queue), and when all are taken a newcomer closes the oldest connection that has not sent a
//! request yet (so idle sockets opened first cannot hold everyone else out for the header-read
//! timeout); on SIGTERM the listener closes, requests in flight get the grace period to finish,
//! and whatever is still open after it is dropped. With TLS, the handshake must also finish
//! within the header-read timeout.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
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

/// A connection as the listener keeps track of it: whether it has sent a request yet, and how
/// to close it.
#[derive(Default)]
struct Connection {
    /// No request has arrived on it yet.
    fresh: AtomicBool,
    close: tokio::sync::Notify,
}

/// The open connections, oldest first.
#[derive(Default)]
struct Open(Mutex<VecDeque<Arc<Connection>>>);

impl Open {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Connection>>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Closes the oldest connection that has sent no request yet; whether there was one.
    fn evict_oldest_fresh(&self) -> bool {
        let mut open = self.lock();
        let Some(at) = open.iter().position(|c| c.fresh.load(Ordering::SeqCst)) else { return false };
        let connection = open.remove(at).expect("found");
        connection.close.notify_one();
        true
    }

    fn remove(&self, connection: &Arc<Connection>) {
        self.lock().retain(|c| !Arc::ptr_eq(c, connection));
    }
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
    let open = Arc::new(Open::default());
    tokio::pin!(shutdown);
    loop {
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
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if open.evict_oldest_fresh() {
                    tracing::info!(remote = %remote, "every connection is taken: closed the oldest that sent no request");
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
                }
            }
        };
        let connection = Arc::new(Connection { fresh: AtomicBool::new(true), ..Default::default() });
        open.lock().push_back(connection.clone());
        let open = open.clone();
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let acceptor = tls.as_ref().map(|tls| tls.acceptor());
        while connections.try_join_next().is_some() {}
        connections.spawn(async move {
            let served = async {
                let result = match acceptor {
                    None => serve_connection(&builder, watcher, stream, router, remote, None, &connection).await,
                    Some(acceptor) => {
                        let peer = Peer { builder: &builder, router, remote, connection: &connection };
                        serve_tls(peer, watcher, acceptor, stream, limits.header_read_timeout).await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(remote = %remote, error = %e, "a connection ended with an error");
                }
            };
            // Closed when a newcomer needs its place and it has sent nothing yet.
            tokio::select! {
                () = served => {}
                () = connection.close.notified() => {}
            }
            open.remove(&connection);
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

/// One accepted connection, for [`serve_tls`].
struct Peer<'a> {
    builder: &'a hyper::server::conn::http1::Builder,
    router: axum::Router,
    remote: SocketAddr,
    connection: &'a Arc<Connection>,
}

/// A TLS handshake within `timeout`, then the connection served with the client certificate it
/// presented (when `--client-ca` verified one).
async fn serve_tls(
    peer: Peer<'_>,
    watcher: hyper_util::server::graceful::Watcher,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    timeout: Duration,
) -> hyper::Result<()> {
    let Peer { builder, router, remote, connection } = peer;
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => {
            let certificate = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(crate::tls::client_certificate);
            serve_connection(builder, watcher, stream, router, remote, certificate, connection).await
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

/// One connection's requests, each with the client's address (and its certificate's user).
async fn serve_connection<I>(
    builder: &hyper::server::conn::http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
    io: I,
    router: axum::Router,
    remote: SocketAddr,
    certificate: Option<crate::tls::ClientCertificate>,
    connection: &Arc<Connection>,
) -> hyper::Result<()>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let connection = connection.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        connection.fresh.store(false, Ordering::SeqCst);
        request.extensions_mut().insert(ConnectInfo::<SocketAddr>(remote));
        if let Some(certificate) = &certificate {
            request.extensions_mut().insert(certificate.clone());
        }
        router.clone().oneshot(request.map(axum::body::Body::new))
    });
    watcher.watch(builder.serve_connection(TokioIo::new(io), service)).await
}

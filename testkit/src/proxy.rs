//! A TCP proxy a test controls, for the faults a real server cannot be asked for without losing
//! its data or stalling other tests: PostgreSQL or OpenBao cut off (connections closed, new ones
//! refused), stalled (connections held open, nothing forwarded) or reset (closed with RST),
//! while the server itself keeps running for every other test.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// What the proxy does with its traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forwards every byte both ways.
    Up,
    /// Closes every connection (FIN) and every new one at once.
    Cut,
    /// Closes every connection and every new one with a reset (RST).
    Reset,
    /// Holds every connection, old and new, open and forwards nothing until the mode changes:
    /// a server that hangs.
    Stall,
}

/// A one-shot fault: on the first connection whose client sends `after` and then `then`, the
/// bytes carrying `then` reach the server, and the client's side of that connection is closed
/// before any answer reaches it (the server's side stays open, so the server does not notice).
/// With `INSERT INTO events` and `COMMIT`: a commit the server makes and the client never hears
/// of.
#[derive(Clone)]
struct Trap {
    after: Vec<u8>,
    then: Vec<u8>,
    /// Set when sprung, to make the database unreachable from then on (`Mode::Cut`).
    then_down: Option<Arc<watch::Sender<Mode>>>,
}

#[derive(Default)]
struct Traps {
    armed: Option<Trap>,
    sprung: u64,
    /// The server sides of the connections a trap cut, kept open until the proxy goes.
    held: Vec<Arc<TcpStream>>,
}

/// Each open connection's task, and its client side (weak: it closes when its task ends).
type Connections = Arc<Mutex<Vec<(AbortHandle, Weak<TcpStream>)>>>;

pub struct Proxy {
    pub addr: SocketAddr,
    mode: Arc<watch::Sender<Mode>>,
    traps: Arc<Mutex<Traps>>,
    connections: Connections,
    accepted: Arc<AtomicU64>,
    accept: AbortHandle,
}

impl Proxy {
    /// Forwards every connection to `target` until told otherwise ([`Proxy::set`]).
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let (mode, watching) = watch::channel(Mode::Up);
        let mode = Arc::new(mode);
        let connections: Connections = Arc::default();
        let accepted = Arc::new(AtomicU64::new(0));
        let traps: Arc<Mutex<Traps>> = Arc::default();
        let (live, count, set) = (connections.clone(), accepted.clone(), traps.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                match *watching.borrow() {
                    Mode::Cut => continue,
                    Mode::Reset => {
                        let _ = client.set_zero_linger();
                        continue;
                    }
                    Mode::Up | Mode::Stall => {}
                }
                let client = Arc::new(client);
                let task = tokio::spawn(forward(client.clone(), target, watching.clone(), set.clone()));
                // Weak: the connection closes when its task ends, whoever else looks at it.
                live.lock().expect("proxy lock").push((task.abort_handle(), Arc::downgrade(&client)));
            }
        })
        .abort_handle();
        Proxy { addr, mode, traps, connections, accepted, accept }
    }

    /// A proxy in front of `url`'s host and port (`http://127.0.0.1:8200`): the proxy and the
    /// same URL with the proxy's address in their place.
    pub async fn in_front_of(url: &str) -> (Proxy, String) {
        let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
        let (host_port, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
        let (userinfo, host_port) = host_port.rsplit_once('@').map_or(("", host_port), |(u, h)| (u, h));
        let target = tokio::net::lookup_host(host_port).await.ok().and_then(|mut a| a.next()).expect("an address");
        let proxy = Proxy::start(target).await;
        let userinfo = if userinfo.is_empty() { String::new() } else { format!("{userinfo}@") };
        let slash = if path.is_empty() && !rest.contains('/') { "" } else { "/" };
        let url = format!("{scheme}://{userinfo}{}{slash}{path}", proxy.addr);
        (proxy, url)
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
        if matches!(mode, Mode::Cut | Mode::Reset) {
            for (task, client) in self.connections.lock().expect("proxy lock").drain(..) {
                if mode == Mode::Reset
                    && let Some(client) = client.upgrade()
                {
                    let _ = client.set_zero_linger();
                }
                task.abort();
            }
        }
    }

    /// Cuts every connection and refuses new ones (`true`), or serves again (`false`).
    pub fn set_down(&self, down: bool) {
        self.set(if down { Mode::Cut } else { Mode::Up });
    }

    /// Arms the one-shot fault [`Trap`] describes: the next connection whose client sends
    /// `after`, then `then`, loses its client side right after `then` reaches the server.
    pub fn cut_client_after(&self, after: &[u8], then: &[u8]) {
        let trap = Trap { after: after.to_vec(), then: then.to_vec(), then_down: None };
        self.traps.lock().expect("proxy lock").armed = Some(trap);
    }

    /// [`Proxy::cut_client_after`], and from that moment the proxy is down ([`Mode::Cut`]) until
    /// told otherwise: the client cannot find out what became of what it sent.
    pub fn cut_client_and_go_down_after(&self, after: &[u8], then: &[u8]) {
        let trap = Trap { after: after.to_vec(), then: then.to_vec(), then_down: Some(self.mode.clone()) };
        self.traps.lock().expect("proxy lock").armed = Some(trap);
    }

    /// How many times an armed trap has been sprung.
    pub fn sprung(&self) -> u64 {
        self.traps.lock().expect("proxy lock").sprung
    }

    /// How many connections the proxy has accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Copies both ways between `client` and `target`, pausing while the mode is `Stall`.
async fn forward(client: Arc<TcpStream>, target: SocketAddr, mode: watch::Receiver<Mode>, traps: Arc<Mutex<Traps>>) {
    let Ok(server) = TcpStream::connect(target).await else { return };
    let server = Arc::new(server);
    let one = pump(client.clone(), server.clone(), mode.clone(), Some(traps.clone()));
    let other = pump(server.clone(), client, mode, None);
    tokio::select! {
        sprung = one => if sprung {
            // The client's side closes as this returns; the server's is kept open.
            traps.lock().expect("proxy lock").held.push(server);
        },
        _ = other => {}
    }
}

/// Copies `from` to `to` until either closes; `true` when a trap (client to server only) cut it.
async fn pump(
    from: Arc<TcpStream>,
    to: Arc<TcpStream>,
    mut mode: watch::Receiver<Mode>,
    traps: Option<Arc<Mutex<Traps>>>,
) -> bool {
    let mut buf = vec![0u8; 16 * 1024];
    // Whether this connection has sent the armed trap's `after` yet.
    let mut primed = false;
    loop {
        if mode.wait_for(|m| *m == Mode::Up).await.is_err() {
            return false;
        }
        if from.readable().await.is_err() {
            return false;
        }
        let n = match from.try_read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return false,
        };
        // What was read is held, not forwarded, while the proxy stalls.
        if mode.wait_for(|m| *m == Mode::Up).await.is_err() {
            return false;
        }
        if write_all(&to, &buf[..n]).await.is_err() {
            return false;
        }
        if let Some(traps) = &traps {
            let mut traps = traps.lock().expect("proxy lock");
            if let Some(trap) = traps.armed.clone() {
                let chunk = &buf[..n];
                if primed && contains(chunk, &trap.then) {
                    traps.armed = None;
                    traps.sprung += 1;
                    if let Some(mode) = trap.then_down {
                        // New connections are refused; open ones stop forwarding.
                        mode.send_replace(Mode::Cut);
                    }
                    return true;
                }
                primed |= contains(chunk, &trap.after);
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

async fn write_all(to: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        to.writable().await?;
        match to.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.set(Mode::Cut);
        self.traps.lock().expect("proxy lock").held.clear();
    }
}

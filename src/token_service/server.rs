//! Accepting token service connections: a listener under a connection cap
//! (one more gets a code 13 line and is closed), and dedicated threads,
//! each a single-threaded runtime, that run the connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::connection::Connection;
use super::limits::Limits;
use super::reply::busy_line;
use crate::app::App;

/// Connections over the cap that may be told "busy" at once (the rest are
/// just closed).
const MAX_REFUSALS: usize = 64;

/// An accepted connection, as handed to its thread.
struct Accepted {
    socket: std::net::TcpStream,
    peer: SocketAddr,
    /// Its place under the connection cap, or (over the cap) a refusal
    /// permit: it is to be told "busy".
    slot: Result<OwnedSemaphorePermit, OwnedSemaphorePermit>,
    /// When its hello is due.
    hello_by: Instant,
}

/// Accepts connections until `stop` is cancelled, and hands them to
/// `token_service.threads` dedicated threads, each running a single-threaded
/// runtime: a connection lives on one thread, so its hot path has no
/// cross-thread wake-ups (the shape of Redis's event loop).
///
/// Connections past `token_service.max_connections` get one line with code
/// 13 (server busy) and are closed.
pub async fn serve(
    app: App,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
) {
    let cfg = &app.config.token_service;
    let limits = Arc::new(Limits {
        connections: Arc::new(Semaphore::new(cfg.max_connections)),
        db_tasks: Semaphore::new(cfg.max_db_tasks),
        refusals: Arc::new(Semaphore::new(MAX_REFUSALS)),
        hello_timeout: Duration::from_secs(cfg.hello_timeout.max(1)),
        idle_timeout: Duration::from_secs(cfg.idle_timeout.max(1)),
        max_in_flight: cfg.max_in_flight.max(1),
        max_line: cfg.max_line_bytes.max(64),
    });
    let threads = cfg.threads.max(1);
    let mut workers = Vec::with_capacity(threads);
    for i in 0..threads {
        let (tx, rx) = mpsc::unbounded_channel::<Accepted>();
        let (app, tls, stop, limits) = (app.clone(), tls.clone(), stop.clone(), limits.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("jidgate-tokens-{i}"))
            .spawn(move || worker(app, limits, tls, stop, rx));
        match spawned {
            Ok(_) => workers.push(tx),
            Err(e) => tracing::error!(error = %e, "cannot start a token service thread"),
        }
    }
    if workers.is_empty() {
        return;
    }
    let mut next = 0;
    let mut at_cap = false;
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "token service accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tracing::trace!(%peer, "token service connection accepted");
        let hello_by = Instant::now() + limits.hello_timeout;
        let slot = match limits.connections.clone().try_acquire_owned() {
            Ok(slot) => {
                at_cap = false;
                Ok(slot)
            }
            Err(_) => {
                if !at_cap {
                    tracing::warn!(
                        max_connections = cfg.max_connections,
                        "token service connection cap reached; refusing connections"
                    );
                    at_cap = true;
                }
                match limits.refusals.clone().try_acquire_owned() {
                    Ok(refusal) => Err(refusal),
                    Err(_) => {
                        // Too many refusals at once: a line only if it fits now.
                        if tls.is_none() {
                            let _ = socket.try_write(&busy_line());
                        }
                        continue;
                    }
                }
            }
        };
        let _ = socket.set_nodelay(true);
        match socket.into_std() {
            Ok(socket) => {
                let _ = workers[next % workers.len()].send(Accepted {
                    socket,
                    peer,
                    slot,
                    hello_by,
                });
                next = next.wrapping_add(1);
            }
            Err(e) => tracing::warn!(error = %e, "token service hand-off failed"),
        }
    }
}

/// One token service thread.
fn worker(
    app: App,
    limits: Arc<Limits>,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
    mut sockets: mpsc::UnboundedReceiver<Accepted>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start a token service runtime");
            return;
        }
    };
    runtime.block_on(async move {
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => return,
                s = sockets.recv() => match s {
                    Some(s) => s,
                    None => return,
                },
            };
            let socket = match TcpStream::from_std(accepted.socket) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "token service socket unusable");
                    continue;
                }
            };
            let Accepted {
                peer,
                slot,
                hello_by,
                ..
            } = accepted;
            match slot {
                Ok(slot) => {
                    // Every log line of the connection says whose it is. The
                    // span is the parent of its events and of its database
                    // look-ups, but is not entered at each poll: that would
                    // cost the hot path.
                    let span = tracing::info_span!("token_service", %peer);
                    tokio::spawn(connection(
                        Connection::new(app.clone(), limits.clone(), slot, span),
                        socket,
                        hello_by,
                        tls.clone(),
                        stop.clone(),
                    ))
                }
                Err(refusal) => tokio::spawn(refuse(socket, tls.clone(), hello_by, refusal)),
            };
        }
    });
}

async fn connection(
    conn: Connection,
    socket: TcpStream,
    hello_by: Instant,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
) {
    let span = conn.span().clone();
    let result = match tls {
        None => conn.run(socket, hello_by, stop).await,
        Some(acceptor) => {
            // The handshake counts against the hello deadline.
            match tokio::time::timeout_at(hello_by, acceptor.accept(socket)).await {
                Ok(Ok(stream)) => conn.run(stream, hello_by, stop).await,
                Ok(Err(e)) => Err(e),
                Err(_) => Ok(()),
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(parent: &span, error = %e, "token service connection ended");
    }
}

/// Tells a connection over the cap that the service is busy, and closes it
/// (after reading what the client had sent, so that it sees the line rather
/// than a reset). At most until its hello deadline.
async fn refuse(
    socket: TcpStream,
    tls: Option<TlsAcceptor>,
    until: Instant,
    _refusal: OwnedSemaphorePermit,
) {
    async fn tell<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> std::io::Result<()> {
        s.write_all(&busy_line()).await?;
        s.shutdown().await?;
        let mut sink = [0u8; 512];
        while s.read(&mut sink).await? > 0 {}
        Ok(())
    }
    let _ = tokio::time::timeout_at(until, async {
        match tls {
            None => tell(socket).await,
            Some(acceptor) => tell(acceptor.accept(socket).await?).await,
        }
    })
    .await;
}

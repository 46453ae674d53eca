//! The register API's HTTP server: hyper's HTTP/1 and HTTP/2 under
//! jidgate's connection cap and deadlines.
//!
//! A `Listener` accepts under a connection cap (a semaphore, as in
//! mini-redis's `server.rs`): past `http.max_connections` it stops accepting,
//! so new connections wait in the kernel's accept queue, cost no file
//! descriptor of ours, and are served in turn as slots free up. Each
//! connection then has deadlines, so that one that sends nothing useful
//! gives its slot back:
//!
//! - the TLS handshake within `http.tls_handshake_timeout`;
//! - the headers of each request within `http.header_read_timeout` of the
//!   connection's start or of the previous answer (hyper's HTTP/1 header
//!   timer, which also bounds the idle wait between kept-alive requests);
//! - a watchdog for what hyper's timer does not see (the protocol detection
//!   that waits for an HTTP/2 preface, and HTTP/2 connections): a connection
//!   with no request in progress that starts none for a whole
//!   `header_read_timeout` is shut down gracefully, and dropped if it is
//!   still there one period later.
//!
//! HTTP/2 connections also have a cap on concurrent streams and keep-alive
//! pings.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::HttpConfig;

/// Serves `router` on `listener` (TLS when `tls` is given) until `stop` is
/// cancelled, then lets connections finish the request in progress (at
/// most `http.request_timeout`).
pub async fn serve(
    router: Router,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    cfg: &HttpConfig,
    stop: CancellationToken,
) {
    let listener = Listener {
        listener,
        slots: Arc::new(Semaphore::new(cfg.max_connections)),
        shared: Arc::new(Shared {
            router,
            builder: builder(cfg),
            tls: tls.map(TlsAcceptor::from),
            header_timeout: Duration::from_secs(cfg.header_read_timeout),
            handshake_timeout: Duration::from_secs(cfg.tls_handshake_timeout),
            stop: stop.clone(),
        }),
        max_connections: cfg.max_connections,
    };
    listener.run(&stop).await;
    let Listener {
        listener: socket,
        slots,
        ..
    } = listener;
    drop(socket);
    // Every slot back: every connection has ended.
    let grace = Duration::from_secs(cfg.request_timeout.max(1) + 1);
    let all = u32::try_from(cfg.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections still open after the shutdown grace period");
    }
}

/// hyper's HTTP/1 and HTTP/2 server with jidgate's limits.
fn builder(cfg: &HttpConfig) -> auto::Builder<TokioExecutor> {
    let header_timeout = Duration::from_secs(cfg.header_read_timeout);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let mut h2 = builder.http2();
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(cfg.http2_max_concurrent_streams)
        .max_header_list_size(16 * 1024);
    if cfg.http2_keep_alive_interval > 0 {
        h2.keep_alive_interval(Duration::from_secs(cfg.http2_keep_alive_interval))
            .keep_alive_timeout(header_timeout);
    }
    builder
}

/// What every connection of the server shares.
struct Shared {
    router: Router,
    builder: auto::Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
    header_timeout: Duration,
    handshake_timeout: Duration,
    stop: CancellationToken,
}

/// Accepts connections, one slot of the cap each.
struct Listener {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    shared: Arc<Shared>,
    max_connections: usize,
}

impl Listener {
    async fn run(&self, stop: &CancellationToken) {
        let mut at_cap = false;
        loop {
            // A slot first, then a connection: at the cap, connections wait
            // in the kernel's accept queue.
            let slot = match self.slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    at_cap = false;
                    slot
                }
                Err(_) => {
                    if !at_cap {
                        tracing::warn!(
                            max_connections = self.max_connections,
                            "HTTP connection cap reached; new connections wait to be accepted"
                        );
                        at_cap = true;
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        slot = self.slots.clone().acquire_owned() => match slot {
                            Ok(slot) => slot,
                            Err(_) => return,
                        },
                    }
                }
            };
            let (socket, peer) = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // E.g. out of file descriptors: wait for some to close.
                        tracing::warn!(error = %e, "HTTP accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            tracing::trace!(%peer, "HTTP connection accepted");
            tokio::spawn(Handler::new(self.shared.clone(), peer, slot).run(socket));
        }
    }
}

/// One connection: its deadlines and its requests.
struct Handler {
    shared: Arc<Shared>,
    peer: SocketAddr,
    _slot: OwnedSemaphorePermit,
}

impl Handler {
    fn new(shared: Arc<Shared>, peer: SocketAddr, slot: OwnedSemaphorePermit) -> Handler {
        Handler {
            shared,
            peer,
            _slot: slot,
        }
    }

    async fn run(self, socket: TcpStream) {
        let _ = socket.set_nodelay(true);
        let Some(acceptor) = self.shared.tls.clone() else {
            return self.serve(TokioIo::new(socket)).await;
        };
        let handshake =
            tokio::time::timeout(self.shared.handshake_timeout, acceptor.accept(socket));
        tokio::select! {
            _ = self.shared.stop.cancelled() => {}
            done = handshake => match done {
                Ok(Ok(stream)) => self.serve(TokioIo::new(stream)).await,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed");
                }
                Err(_) => tracing::debug!(peer = %self.peer, "TLS handshake timed out"),
            },
        }
    }

    async fn serve<I>(&self, io: I)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let activity = Arc::new(Activity::default());
        let service = Service {
            router: self.shared.router.clone(),
            peer: self.peer,
            activity: activity.clone(),
        };
        let conn = self
            .shared
            .builder
            .serve_connection_with_upgrades(io, service);
        tokio::pin!(conn);
        let period = self.shared.header_timeout;
        let watchdog = tokio::time::sleep(period);
        tokio::pin!(watchdog);
        let mut closing = false;
        loop {
            tokio::select! {
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        tracing::debug!(peer = %self.peer, error = %e, "HTTP connection ended");
                    }
                    return;
                }
                _ = self.shared.stop.cancelled(), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                _ = &mut watchdog => {
                    if activity.idle_since_last_look() {
                        if closing {
                            tracing::debug!(peer = %self.peer, "idle HTTP connection dropped");
                            return;
                        }
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                    watchdog.as_mut().reset(tokio::time::Instant::now() + period);
                }
            }
        }
    }
}

/// Requests of one connection, for the watchdog.
#[derive(Default)]
struct Activity {
    in_progress: AtomicUsize,
    started: AtomicBool,
}

impl Activity {
    /// No request in progress, and none started since the last look.
    fn idle_since_last_look(&self) -> bool {
        let started = self.started.swap(false, Ordering::Relaxed);
        !started && self.in_progress.load(Ordering::Relaxed) == 0
    }
}

/// Counts a request in progress until dropped.
struct InProgress(Arc<Activity>);

impl InProgress {
    fn start(activity: &Arc<Activity>) -> InProgress {
        activity.started.store(true, Ordering::Relaxed);
        activity.in_progress.fetch_add(1, Ordering::Relaxed);
        InProgress(activity.clone())
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.in_progress.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The router as a hyper service, with the peer's address for
/// [`crate::api::ClientIp`].
#[derive(Clone)]
struct Service {
    router: Router,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let in_progress = InProgress::start(&self.activity);
        let answer = tower::ServiceExt::oneshot(self.router.clone(), req);
        Box::pin(async move {
            let response = answer.await;
            drop(in_progress);
            response
        })
    }
}

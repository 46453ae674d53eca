//! The token service: newline-delimited JSON over TCP (TLS when configured),
//! for other back-end services.
//!
//! One JSON object per line; each carries a client `seq` (number or string)
//! that the reply echoes. Requests are pipelined: a client may send many
//! before reading, and replies may come back out of order (a verification
//! answered from memory overtakes one that needs the database).
//!
//! A connection first sends a signed `hello` (an app of kind `service`,
//! signed like an HTTP request: every member but `param_sign`, canonical
//! form, `ts` and `nonce` rules). Then: `verify_access_token`, `get_users`,
//! `ping`. Bad lines get an error reply and the connection stays usable.
//!
//! Limits, so that connections that authenticate nothing cannot hold the
//! service: a connection must complete a good hello within
//! `token_service.hello_timeout` of being accepted (TLS handshake included);
//! one that completes no request line for `token_service.idle_timeout` is
//! closed (bytes without a newline do not count); at most
//! `token_service.max_connections` are open over all threads (one more gets
//! a code 13 line and is closed); a connection has at most
//! `token_service.max_in_flight` requests waiting for the database, and the
//! service at most `token_service.max_db_tasks` look-ups in progress: at
//! either cap the connection handles and reads nothing more until one ends.

use std::sync::Arc;

use std::time::Duration;

use bytes::{Buf, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::accounts::lookup_users;
use crate::app::App;
use crate::config::{AppKind, MAX_LOOKUP_NAMES};
use crate::db::nonce;
use crate::error::Error;
use crate::fields::parse_name_list;
use crate::params::{Params, strict_json};

/// Connections over the cap that may be told "busy" at once (the rest are
/// just closed).
const MAX_REFUSALS: usize = 64;

/// The limits every connection of the token service shares, over all its
/// threads.
struct Limits {
    /// One permit per open connection (`token_service.max_connections`).
    connections: Arc<Semaphore>,
    /// One permit per database look-up in progress
    /// (`token_service.max_db_tasks`).
    db_tasks: Semaphore,
    /// Connections over the cap being told "busy".
    refusals: Arc<Semaphore>,
    hello_timeout: Duration,
    idle_timeout: Duration,
    max_in_flight: usize,
    max_line: usize,
}

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
                Ok(slot) => tokio::spawn(connection(
                    Connection::new(app.clone(), limits.clone(), slot),
                    socket,
                    peer,
                    hello_by,
                    tls.clone(),
                    stop.clone(),
                )),
                Err(refusal) => tokio::spawn(refuse(socket, tls.clone(), hello_by, refusal)),
            };
        }
    });
}

async fn connection(
    conn: Connection,
    socket: TcpStream,
    peer: SocketAddr,
    hello_by: Instant,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
) {
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
        tracing::debug!(%peer, error = %e, "token service connection ended");
    }
}

/// `{"seq":null,"result":13,"error":"server busy, retry later"}` and a newline.
fn busy_line() -> Vec<u8> {
    let mut out = Vec::with_capacity(80);
    error_reply(&mut out, "null", &Error::Busy);
    out
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

/// The members of a request line that commands read.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow, default)]
    seq: Option<&'a RawValue>,
    #[serde(borrow, default)]
    cmd: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    access_token: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    user_name_ls: Option<&'a RawValue>,
}

/// One connection of the token service (the handler): its hello, its
/// idle timer and its requests in flight.
struct Connection {
    app: App,
    limits: Arc<Limits>,
    _slot: OwnedSemaphorePermit,
    /// The app that said hello.
    peer_app: Option<String>,
    replies_tx: mpsc::UnboundedSender<Vec<u8>>,
    replies_rx: mpsc::UnboundedReceiver<Vec<u8>>,
    /// Requests waiting for the database.
    in_flight: usize,
    /// A database permit taken while waiting, not yet used.
    spare_db_permit: bool,
    /// Complete lines wait in the input: a cap was reached.
    paused: bool,
    /// Paused for a database permit (rather than for a reply).
    waiting_for_db: bool,
    /// A request line was completed since the idle timer last looked.
    active: bool,
    /// The rest of an over-long line is being skipped.
    discarding: bool,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.spare_db_permit {
            self.limits.db_tasks.add_permits(1);
        }
    }
}

/// What became of a request line.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Done,
    /// A cap is reached: the line must be handled again later.
    Later,
}

/// Gives a database permit back when the look-up is over.
struct DbPermit(Arc<Limits>);

impl Drop for DbPermit {
    fn drop(&mut self) {
        self.0.db_tasks.add_permits(1);
    }
}

/// Starts a reply: `{"seq":<seq>,"result":<code>`.
fn head(out: &mut Vec<u8>, seq: &str, result: i64) {
    out.extend_from_slice(b"{\"seq\":");
    out.extend_from_slice(seq.as_bytes());
    out.extend_from_slice(b",\"result\":");
    out.extend_from_slice(itoa::Buffer::new().format(result).as_bytes());
}

/// Writes one reply line: `{"seq":<seq>,` then `members` (a value that
/// serializes as an object), then `}` and a newline.
fn write_line(out: &mut Vec<u8>, seq: &str, members: &impl Serialize) {
    #[derive(Serialize)]
    struct Line<'a, T> {
        seq: &'a RawValue,
        #[serde(flatten)]
        members: &'a T,
    }
    let seq = RawValue::from_string(seq.to_owned()).expect("seq is JSON");
    serde_json::to_writer(&mut *out, &Line { seq: &seq, members }).expect("replies serialize");
    out.push(b'\n');
}

/// An error reply: the [`Outcome`] every transport writes.
fn error_reply(out: &mut Vec<u8>, seq: &str, e: &Error) {
    write_line(out, seq, &e.outcome());
}

fn verify_reply(
    out: &mut Vec<u8>,
    seq: &str,
    r: Result<(&crate::tokens::TokenInfo, &[u8]), Error>,
) {
    match r {
        Ok((_, tail)) => {
            head(out, seq, 0);
            out.extend_from_slice(tail);
        }
        Err(e @ (Error::AccessToken | Error::AccessTokenExpired)) => {
            head(out, seq, e.code());
            out.extend_from_slice(b",\"validate\":false}\n");
        }
        Err(e) => error_reply(out, seq, &e),
    }
}

/// The members of a flat request line, found without a full JSON parse.
#[derive(Debug, Default, PartialEq)]
struct Flat<'a> {
    seq: Option<&'a str>,
    cmd: Option<&'a str>,
    access_token: Option<&'a str>,
}

/// Reads a flat JSON object whose members are plain strings (printable
/// ASCII, no escapes) or numbers: the shape of every verification a client
/// sends. `None` for anything else, which the general JSON parser handles.
fn scan_flat(line: &[u8]) -> Option<Flat<'_>> {
    let b = line;
    let n = b.len();
    let mut i = 0;
    macro_rules! skip_ws {
        () => {
            while i < n && matches!(b[i], b' ' | b'\t' | b'\r') {
                i += 1;
            }
        };
    }
    // A plain string at `i`: its content's range, `i` after the quote.
    macro_rules! plain_string {
        () => {{
            if b.get(i) != Some(&b'"') {
                return None;
            }
            // One pass: find the closing quote, refuse escapes, control
            // characters and anything not ASCII.
            let start = i + 1;
            let mut end = start;
            loop {
                match *b.get(end)? {
                    b'"' => break,
                    b'\\' | 0..=0x1f | 0x7f..=0xff => return None,
                    _ => end += 1,
                }
            }
            i = end + 1;
            (start, end)
        }};
    }
    let mut flat = Flat::default();
    // Other members' names, to see one given twice (the general parser
    // refuses that line); more of them than this also go to that parser.
    let mut others = [(0usize, 0usize); 8];
    let mut n_others = 0;
    skip_ws!();
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    skip_ws!();
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            skip_ws!();
            let (ks, ke) = plain_string!();
            skip_ws!();
            if b.get(i) != Some(&b':') {
                return None;
            }
            i += 1;
            skip_ws!();
            let (vs, ve, quoted) = match *b.get(i)? {
                b'"' => {
                    let (s, e) = plain_string!();
                    (s - 1, e + 1, true)
                }
                c if c.is_ascii_digit() || c == b'-' => {
                    let s = i;
                    i = json_number_end(b, i)?;
                    (s, i, false)
                }
                _ => return None,
            };
            let key = &b[ks..ke];
            if !matches!(key, b"seq" | b"cmd" | b"access_token") {
                if n_others == others.len()
                    || others[..n_others].iter().any(|&(s, e)| &b[s..e] == key)
                {
                    return None;
                }
                others[n_others] = (ks, ke);
                n_others += 1;
            }
            let (slot, wants_string) = match key {
                b"seq" => (&mut flat.seq, None),
                b"cmd" => (&mut flat.cmd, Some(true)),
                b"access_token" => (&mut flat.access_token, Some(true)),
                _ => (&mut None, None),
            };
            if slot.is_some() {
                return None;
            }
            // Only ASCII was accepted, so these conversions cannot fail.
            *slot = Some(match wants_string {
                // seq: echoed as written, quotes included.
                None => std::str::from_utf8(&b[vs..ve]).ok()?,
                Some(_) if quoted => std::str::from_utf8(&b[vs + 1..ve - 1]).ok()?,
                Some(_) => return None,
            });
            skip_ws!();
            match *b.get(i)? {
                b',' => i += 1,
                b'}' => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    skip_ws!();
    if i != n || flat.seq.is_some_and(|s| s.len() > 64) {
        return None;
    }
    Some(flat)
}

/// The end of the JSON number starting at `i` (RFC 8259 grammar).
fn json_number_end(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > s
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => {
            digits(&mut i);
        }
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return None;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return None;
        }
    }
    Some(i)
}

/// A `seq` is echoed verbatim: a JSON number or string, short.
fn valid_seq(raw: &RawValue) -> bool {
    let t = raw.get();
    t.len() <= 64 && (t.starts_with('"') || t.starts_with('-') || t.as_bytes()[0].is_ascii_digit())
}

impl Connection {
    fn new(app: App, limits: Arc<Limits>, slot: OwnedSemaphorePermit) -> Connection {
        let (replies_tx, replies_rx) = mpsc::unbounded_channel();
        Connection {
            app,
            limits,
            _slot: slot,
            peer_app: None,
            replies_tx,
            replies_rx,
            in_flight: 0,
            spare_db_permit: false,
            paused: false,
            waiting_for_db: false,
            active: false,
            discarding: false,
        }
    }

    async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        mut self,
        mut stream: S,
        hello_by: Instant,
        stop: CancellationToken,
    ) -> std::io::Result<()> {
        let idle = self.limits.idle_timeout;
        let limits = self.limits.clone();
        let mut input = BytesMut::with_capacity(64 * 1024);
        let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut reading = true;
        // One timer and one cancellation future for the connection's life:
        // making them anew each round costs more than the request itself.
        // It looks at the hello deadline and at `active` when it fires, and
        // is re-armed then (not for each request).
        let timer = tokio::time::sleep_until(hello_by.min(Instant::now() + idle));
        tokio::pin!(timer);
        let stopped = stop.cancelled();
        tokio::pin!(stopped);
        // One task owns the stream: it reads in the select, and writes what a
        // round produced after it (no split, no lock per poll).
        while reading || self.in_flight > 0 || self.paused {
            tokio::select! {
                biased;
                reply = self.replies_rx.recv(), if self.in_flight > 0 => {
                    if let Some(reply) = reply {
                        self.in_flight -= 1;
                        out.extend_from_slice(&reply);
                    }
                    while let Ok(reply) = self.replies_rx.try_recv() {
                        self.in_flight -= 1;
                        out.extend_from_slice(&reply);
                    }
                }
                permit = limits.db_tasks.acquire(), if self.waiting_for_db => {
                    if let Ok(permit) = permit {
                        permit.forget();
                        self.spare_db_permit = true;
                    }
                    self.waiting_for_db = false;
                }
                n = stream.read_buf(&mut input), if reading && !self.paused => {
                    let n = n?;
                    if n == 0 {
                        reading = false;
                        if !input.is_empty() {
                            // The last line, unterminated.
                            input.extend_from_slice(b"\n");
                            self.lines(&mut input, &mut out).await;
                        }
                    } else {
                        self.lines(&mut input, &mut out).await;
                    }
                }
                _ = &mut timer, if reading => {
                    let now = Instant::now();
                    let active = std::mem::take(&mut self.active);
                    if self.peer_app.is_none() && now >= hello_by {
                        tracing::debug!("token service connection without hello in time; closing");
                        break;
                    }
                    if !active && self.in_flight == 0 && !self.paused {
                        tracing::debug!("token service connection idle; closing");
                        break;
                    }
                    let next = now + idle;
                    timer.as_mut().reset(if self.peer_app.is_none() { next.min(hello_by) } else { next });
                }
                _ = &mut stopped => break,
            }
            if self.paused && !self.waiting_for_db && self.in_flight < self.limits.max_in_flight {
                self.lines(&mut input, &mut out).await;
            }
            if !out.is_empty() {
                stream.write_all(&out).await?;
                out.clear();
                if out.capacity() > 1 << 20 {
                    out.shrink_to(64 * 1024);
                }
            }
        }
        let _ = stream.shutdown().await;
        Ok(())
    }

    /// Handles the complete lines in `input`, leaving a partial one, or
    /// stopping (`paused`) at a line that must wait for a cap.
    async fn lines(&mut self, input: &mut BytesMut, out: &mut Vec<u8>) {
        let now = crate::clock::now();
        let max_line = self.limits.max_line;
        let mut start = 0;
        self.paused = false;
        while let Some(i) = memchr::memchr(b'\n', &input[start..]) {
            let end = start + i;
            if self.discarding {
                self.discarding = false;
            } else if i > max_line {
                self.active = true;
                self.too_long(out);
            } else if self.line(&input[start..end], out, now).await == Step::Later {
                self.paused = true;
                break;
            }
            start = end + 1;
        }
        input.advance(start);
        if !self.paused && input.len() > max_line {
            if !self.discarding {
                self.too_long(out);
            }
            self.discarding = true;
            input.clear();
        }
    }

    fn too_long(&self, out: &mut Vec<u8>) {
        error_reply(
            out,
            "null",
            &Error::Params(format!("line longer than {} bytes", self.limits.max_line)),
        );
    }

    async fn line(&mut self, line: &[u8], out: &mut Vec<u8>, now: i64) -> Step {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Step::Done;
        }
        self.active = true;
        // The hot path: a verification, answered from memory.
        if self.peer_app.is_some()
            && let Some(flat) = scan_flat(line)
            && flat.cmd == Some("verify_access_token")
            && let Some(token) = flat.access_token
        {
            return self.verify(flat.seq.unwrap_or("null"), token, now, out);
        }
        let parsed: Line<'_> = match serde_json::from_slice(line) {
            Ok(p) => p,
            Err(_) => {
                error_reply(out, "null", &Error::Params("not a JSON object".into()));
                return Step::Done;
            }
        };
        let seq = match parsed.seq {
            None => "null",
            Some(raw) if valid_seq(raw) => raw.get(),
            Some(_) => {
                error_reply(
                    out,
                    "null",
                    &Error::Params("seq must be a number or a short string".into()),
                );
                return Step::Done;
            }
        };
        // A member given twice anywhere in the line is refused, as in HTTP
        // bodies (the typed parse above only sees the members it reads).
        if let Err(e) = strict_json(line) {
            {
                error_reply(out, seq, &e);
                return Step::Done;
            }
        }
        let cmd = parsed.cmd.as_deref().unwrap_or("");
        if self.peer_app.is_none() {
            if cmd != "hello" {
                error_reply(out, seq, &Error::NotPermitted("send a signed hello first"));
                return Step::Done;
            }
            match self.hello(line).await {
                Ok(app_id) => {
                    head(out, seq, 0);
                    out.extend_from_slice(b",\"app_id\":");
                    serde_json::to_writer(&mut *out, &app_id).expect("strings serialize");
                    out.extend_from_slice(b"}\n");
                    self.peer_app = Some(app_id);
                }
                Err(e) => error_reply(out, seq, &e),
            }
            return Step::Done;
        }
        match cmd {
            "verify_access_token" => {
                let Some(token) = parsed.access_token else {
                    error_reply(out, seq, &Error::Params("access_token is required".into()));
                    return Step::Done;
                };
                return self.verify(seq, &token, now, out);
            }
            "get_users" => {
                let names = match parsed.user_name_ls.map(user_list) {
                    Some(Ok(names)) => names,
                    Some(Err(e)) => {
                        error_reply(out, seq, &e);
                        return Step::Done;
                    }
                    None => {
                        error_reply(out, seq, &Error::Params("user_name_ls is required".into()));
                        return Step::Done;
                    }
                };
                let Some(permit) = self.db_permit() else {
                    return Step::Later;
                };
                let app = self.app.clone();
                let seq = seq.to_owned();
                self.spawn(permit, async move {
                    let mut reply = Vec::with_capacity(256);
                    match lookup_users(&app, &names).await {
                        Ok((found, unknown)) => {
                            head(&mut reply, &seq, 0);
                            reply.extend_from_slice(b",\"user_info_ls\":");
                            serde_json::to_writer(&mut reply, &found).expect("serializes");
                            reply.extend_from_slice(b",\"unknown_ls\":");
                            serde_json::to_writer(&mut reply, &unknown).expect("serializes");
                            reply.extend_from_slice(b"}\n");
                        }
                        Err(e) => error_reply(&mut reply, &seq, &e),
                    }
                    reply
                });
            }
            "ping" => {
                head(out, seq, 0);
                out.extend_from_slice(b"}\n");
            }
            "hello" => error_reply(out, seq, &Error::NotPermitted("already said hello")),
            _ => error_reply(
                out,
                seq,
                &Error::Params(format!(
                    "unknown cmd {:?}: hello, verify_access_token, get_users, ping",
                    cmd.chars().take(40).collect::<String>()
                )),
            ),
        }
        Step::Done
    }

    /// Answers a verification from memory, or asks the database in a task
    /// of its own (its reply may overtake or be overtaken by others).
    fn verify(&mut self, seq: &str, token: &str, now: i64, out: &mut Vec<u8>) -> Step {
        let tokens = &self.app.tokens;
        if tokens
            .with_cached(token, now, |answer| verify_reply(out, seq, answer))
            .is_some()
        {
            return Step::Done;
        }
        let Some(permit) = self.db_permit() else {
            return Step::Later;
        };
        let app = self.app.clone();
        let (seq, token) = (seq.to_owned(), token.to_owned());
        self.spawn(permit, async move {
            let mut reply = Vec::with_capacity(160);
            match app.tokens.lookup(&token, now).await {
                Ok(info) => {
                    let tail = crate::tokens::reply_tail(&info);
                    verify_reply(&mut reply, &seq, Ok((&info, &tail)))
                }
                Err(e) => verify_reply(&mut reply, &seq, Err(e)),
            }
            reply
        });
        Step::Done
    }

    /// A database permit for one more request in flight, or `None` when
    /// this connection's cap or the service's is reached (then the
    /// connection waits: for a reply, or for a permit).
    fn db_permit(&mut self) -> Option<DbPermit> {
        if self.in_flight >= self.limits.max_in_flight {
            return None;
        }
        if !std::mem::take(&mut self.spare_db_permit) {
            match self.limits.db_tasks.try_acquire() {
                Ok(permit) => permit.forget(),
                Err(_) => {
                    self.waiting_for_db = true;
                    return None;
                }
            }
        }
        Some(DbPermit(self.limits.clone()))
    }

    fn spawn(
        &mut self,
        permit: DbPermit,
        work: impl std::future::Future<Output = Vec<u8>> + Send + 'static,
    ) {
        self.in_flight += 1;
        let tx = self.replies_tx.clone();
        tokio::spawn(async move {
            let reply = work.await;
            // The permit goes back before the reply, so the connection that
            // reads it can take the permit again at once.
            drop(permit);
            let _ = tx.send(reply);
        });
    }

    /// Checks a signed hello; the app must be of kind `service`.
    async fn hello(&self, line: &[u8]) -> Result<String, Error> {
        let params = Params::from_json_bytes(line)?;
        let now = crate::clock::now();
        // The hello's text has no path line: it covers `cmd=hello` instead.
        let verified = self
            .app
            .keyring
            .verify(None, |n| params.get(n), params.iter(), now)?;
        if verified.kind != AppKind::Service {
            return Err(Error::UnknownApp);
        }
        nonce::spend(&self.app.db, &verified).await?;
        Ok(verified.app_id)
    }
}

/// `user_name_ls` as a JSON array, or as a string holding one.
fn user_list(raw: &RawValue) -> Result<Vec<String>, Error> {
    let text = raw.get();
    if text.starts_with('"') {
        let inner: String = serde_json::from_str(text)
            .map_err(|_| Error::Params("user_name_ls must be a JSON array of strings".into()))?;
        parse_name_list(&inner, MAX_LOOKUP_NAMES)
    } else {
        parse_name_list(text, MAX_LOOKUP_NAMES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn replies_are_json_lines() {
        let mut out = Vec::new();
        let info = crate::tokens::TokenInfo {
            account_id: 1,
            session_id: 1,
            user_name: Arc::from("SN\"1"),
            type_: crate::db::UserType::Device,
            expires_at: 99,
            app_id: Arc::from("lamp"),
            app_kind: crate::config::AppKind::Device,
        };
        let tail = crate::tokens::reply_tail(&info);
        verify_reply(&mut out, "7", Ok((&info, &tail)));
        verify_reply(&mut out, "\"a\"", Err(Error::AccessTokenExpired));
        error_reply(&mut out, "null", &Error::Params("x".into()));
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["seq"], 7);
        assert_eq!(lines[0]["user_name"], "SN\"1");
        assert_eq!(lines[0]["validate"], true);
        assert_eq!(lines[1]["seq"], "a");
        assert_eq!(lines[1]["result"], 106);
        assert_eq!(lines[1]["validate"], false);
        assert_eq!(lines[2]["result"], 2);
    }

    #[test]
    fn flat_lines_are_scanned_like_json() {
        let f = scan_flat(
            br#" {"seq": 12, "cmd":"verify_access_token","access_token":"jgt_x","x":-1.5} "#,
        )
        .unwrap();
        assert_eq!(f.seq, Some("12"));
        assert_eq!(f.cmd, Some("verify_access_token"));
        assert_eq!(f.access_token, Some("jgt_x"));
        let f = scan_flat(br#"{"seq":"a-1","cmd":"ping"}"#).unwrap();
        assert_eq!(f.seq, Some("\"a-1\""));
        assert_eq!(scan_flat(b"{}").unwrap(), Flat::default());
        // Anything unusual goes to the full parser.
        for other in [
            &br#"{"seq":1,"cmd":"v\u0065rify"}"#[..],
            br#"{"seq":{"a":1}}"#,
            br#"{"seq":1,"seq":2}"#,
            br#"{"cmd":1}"#,
            br#"{"seq":true}"#,
            br#"{"a":"b"} x"#,
            br#"{"a":"b",}"#,
            br#"{"a":"b""#,
            br#"{"seq":1-2}"#,
            br#"{"seq":01}"#,
            br#"{"seq":1.}"#,
            br#"{"x":-}"#,
            b"[1]",
            "{\"cmd\":\"é\"}".as_bytes(),
        ] {
            assert_eq!(scan_flat(other), None, "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn repeated_members_leave_the_fast_path() {
        for line in [
            &br#"{"seq":1,"cmd":"verify_access_token","access_token":"t","x":1,"x":2}"#[..],
            br#"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9}"#,
        ] {
            assert_eq!(scan_flat(line), None, "{}", String::from_utf8_lossy(line));
        }
        let f = scan_flat(br#"{"seq":1,"x":1,"y":2,"cmd":"ping"}"#).unwrap();
        assert_eq!(f.cmd, Some("ping"));
    }

    #[test]
    fn seq_must_be_number_or_string() {
        let ok: Box<RawValue> = serde_json::from_str("12").unwrap();
        let s: Box<RawValue> = serde_json::from_str("\"x\"").unwrap();
        let obj: Box<RawValue> = serde_json::from_str("{}").unwrap();
        assert!(valid_seq(&ok) && valid_seq(&s) && !valid_seq(&obj));
    }
}

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
//! `ping`. Bad lines get an error reply and the connection stays usable; a
//! connection silent for `token_service.idle_timeout` is closed.

use std::fmt::Write as _;

use std::time::Duration;

use bytes::{Buf, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::accounts::{MAX_LOOKUP_NAMES, lookup_users, parse_name_list};
use crate::app::App;
use crate::config::AppKind;
use crate::error::Error;
use crate::http::Params;
use crate::signing::record_nonce;

/// Accepts connections until `stop` is cancelled, and hands them to
/// `token_service.threads` dedicated threads, each running a single-threaded
/// runtime: a connection lives on one thread, so its hot path has no
/// cross-thread wake-ups (the shape of Redis's event loop).
pub async fn serve(
    app: App,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
) {
    let threads = app.config.token_service.threads.max(1);
    let mut workers = Vec::with_capacity(threads);
    for i in 0..threads {
        let (tx, rx) = mpsc::unbounded_channel::<(std::net::TcpStream, SocketAddr)>();
        let (app, tls, stop) = (app.clone(), tls.clone(), stop.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("jidgate-tokens-{i}"))
            .spawn(move || worker(app, tls, stop, rx));
        match spawned {
            Ok(_) => workers.push(tx),
            Err(e) => tracing::error!(error = %e, "cannot start a token service thread"),
        }
    }
    if workers.is_empty() {
        return;
    }
    let mut next = 0;
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
        let _ = socket.set_nodelay(true);
        match socket.into_std() {
            Ok(std) => {
                let _ = workers[next % workers.len()].send((std, peer));
                next = next.wrapping_add(1);
            }
            Err(e) => tracing::warn!(error = %e, "token service hand-off failed"),
        }
    }
}

/// One token service thread.
fn worker(
    app: App,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
    mut sockets: mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
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
            let (std, peer) = tokio::select! {
                _ = stop.cancelled() => return,
                s = sockets.recv() => match s {
                    Some(s) => s,
                    None => return,
                },
            };
            let socket = match TcpStream::from_std(std) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "token service socket unusable");
                    continue;
                }
            };
            tokio::spawn(connection(
                app.clone(),
                socket,
                peer,
                tls.clone(),
                stop.clone(),
            ));
        }
    });
}

async fn connection(
    app: App,
    socket: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
) {
    let result = match tls {
        None => Connection::new(app).run(socket, stop).await,
        Some(acceptor) => {
            let timeout = Duration::from_secs(app.config.token_service.idle_timeout.max(1));
            match tokio::time::timeout(timeout, acceptor.accept(socket)).await {
                Ok(Ok(stream)) => Connection::new(app).run(stream, stop).await,
                Ok(Err(e)) => Err(e),
                Err(_) => Ok(()),
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "token service connection ended");
    }
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

struct Connection {
    app: App,
    /// The app that said hello.
    peer_app: Option<String>,
    replies_tx: mpsc::UnboundedSender<Vec<u8>>,
    replies_rx: mpsc::UnboundedReceiver<Vec<u8>>,
    in_flight: usize,
    max_line: usize,
}

/// Starts a reply: `{"seq":<seq>,"result":<code>`.
fn head(out: &mut Vec<u8>, seq: &str, result: i64) {
    out.extend_from_slice(b"{\"seq\":");
    out.extend_from_slice(seq.as_bytes());
    out.extend_from_slice(b",\"result\":");
    out.extend_from_slice(itoa::Buffer::new().format(result).as_bytes());
}

fn error_reply(out: &mut Vec<u8>, seq: &str, e: &Error) {
    head(out, seq, e.code());
    out.extend_from_slice(b",\"error\":");
    serde_json::to_writer(&mut *out, &e.public_message()).expect("strings serialize");
    if let Error::RateLimited { retry_after } = e {
        let _ = write!(Utf8Vec(out), ",\"retry_after\":{retry_after}");
    }
    out.extend_from_slice(b"}\n");
}

/// `fmt::Write` into a byte vector.
struct Utf8Vec<'a>(&'a mut Vec<u8>);
impl std::fmt::Write for Utf8Vec<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
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
    fn new(app: App) -> Connection {
        let (replies_tx, replies_rx) = mpsc::unbounded_channel();
        let max_line = app.config.token_service.max_line_bytes.max(64);
        Connection {
            app,
            peer_app: None,
            replies_tx,
            replies_rx,
            in_flight: 0,
            max_line,
        }
    }

    async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        mut self,
        mut stream: S,
        stop: CancellationToken,
    ) -> std::io::Result<()> {
        let idle = Duration::from_secs(self.app.config.token_service.idle_timeout.max(1));
        let mut input = BytesMut::with_capacity(64 * 1024);
        let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut discarding = false;
        let mut reading = true;
        // One timer and one cancellation future for the connection's life:
        // making them anew each round costs more than the request itself.
        let idle_timer = tokio::time::sleep(idle);
        tokio::pin!(idle_timer);
        let mut active = false;
        let stopped = stop.cancelled();
        tokio::pin!(stopped);
        // One task owns the stream: it reads in the select, and writes what a
        // round produced after it (no split, no lock per poll).
        while reading || self.in_flight > 0 {
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
                n = stream.read_buf(&mut input), if reading => {
                    let n = n?;
                    if n == 0 {
                        reading = false;
                        if !input.is_empty() && !discarding {
                            let line = input.split();
                            self.line(&line, &mut out, crate::now()).await;
                        }
                    } else {
                        active = true;
                        self.lines(&mut input, &mut out, &mut discarding).await;
                    }
                }
                _ = &mut idle_timer, if reading => {
                    // Re-armed lazily: only a full quiet period closes.
                    if !std::mem::take(&mut active) {
                        tracing::debug!("token service connection idle; closing");
                        break;
                    }
                    idle_timer.as_mut().reset(tokio::time::Instant::now() + idle);
                }
                _ = &mut stopped => break,
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

    /// Handles every complete line in `input`, leaving a partial one.
    async fn lines(&mut self, input: &mut BytesMut, out: &mut Vec<u8>, discarding: &mut bool) {
        let now = crate::now();
        let mut start = 0;
        while let Some(i) = memchr::memchr(b'\n', &input[start..]) {
            let end = start + i;
            if *discarding {
                *discarding = false;
            } else if i > self.max_line {
                self.too_long(out);
            } else {
                self.line(&input[start..end], out, now).await;
            }
            start = end + 1;
        }
        input.advance(start);
        if input.len() > self.max_line {
            if !*discarding {
                self.too_long(out);
            }
            *discarding = true;
            input.clear();
        }
    }

    fn too_long(&self, out: &mut Vec<u8>) {
        error_reply(
            out,
            "null",
            &Error::Params(format!("line longer than {} bytes", self.max_line)),
        );
    }

    async fn line(&mut self, line: &[u8], out: &mut Vec<u8>, now: i64) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
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
                return error_reply(out, "null", &Error::Params("not a JSON object".into()));
            }
        };
        let seq = match parsed.seq {
            None => "null",
            Some(raw) if valid_seq(raw) => raw.get(),
            Some(_) => {
                return error_reply(
                    out,
                    "null",
                    &Error::Params("seq must be a number or a short string".into()),
                );
            }
        };
        // A member given twice anywhere in the line is refused, as in HTTP
        // bodies (the typed parse above only sees the members it reads).
        if let Err(e) = crate::http::strict_json(line) {
            return error_reply(out, seq, &e);
        }
        let cmd = parsed.cmd.as_deref().unwrap_or("");
        if self.peer_app.is_none() {
            if cmd != "hello" {
                return error_reply(out, seq, &Error::NotPermitted("send a signed hello first"));
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
            return;
        }
        match cmd {
            "verify_access_token" => {
                let Some(token) = parsed.access_token else {
                    return error_reply(
                        out,
                        seq,
                        &Error::Params("access_token is required".into()),
                    );
                };
                self.verify(seq, &token, now, out);
            }
            "get_users" => {
                let names = match parsed.user_name_ls.map(user_list) {
                    Some(Ok(names)) => names,
                    Some(Err(e)) => return error_reply(out, seq, &e),
                    None => {
                        return error_reply(
                            out,
                            seq,
                            &Error::Params("user_name_ls is required".into()),
                        );
                    }
                };
                let app = self.app.clone();
                let seq = seq.to_owned();
                self.spawn(async move {
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
    }

    /// Answers a verification from memory, or asks the database in a task
    /// of its own (its reply may overtake or be overtaken by others).
    fn verify(&mut self, seq: &str, token: &str, now: i64, out: &mut Vec<u8>) {
        let tokens = &self.app.tokens;
        if tokens
            .with_cached(token, now, |answer| verify_reply(out, seq, answer))
            .is_some()
        {
            return;
        }
        let app = self.app.clone();
        let (seq, token) = (seq.to_owned(), token.to_owned());
        self.spawn(async move {
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
    }

    fn spawn(&mut self, work: impl std::future::Future<Output = Vec<u8>> + Send + 'static) {
        self.in_flight += 1;
        let tx = self.replies_tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(work.await);
        });
    }

    /// Checks a signed hello; the app must be of kind `service`.
    async fn hello(&self, line: &[u8]) -> Result<String, Error> {
        let params = Params::from_json_bytes(line)?;
        let now = crate::now();
        // The hello's text has no path line: it covers `cmd=hello` instead.
        let (verified, ts) =
            self.app
                .keyring
                .verify(None, |n| params.get(n), params.iter(), now)?;
        if verified.kind != AppKind::Service {
            return Err(Error::UnknownApp);
        }
        let nonce = params.required("nonce")?;
        let expires = ts + self.app.keyring.window() as i64;
        if !record_nonce(&self.app.db, &verified.nonce_scope, nonce, expires).await? {
            return Err(Error::NonceReused);
        }
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
            type_: 2,
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

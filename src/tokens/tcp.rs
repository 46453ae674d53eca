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
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::accounts::{MAX_LOOKUP_NAMES, lookup_users, parse_name_list};
use crate::app::App;
use crate::config::AppKind;
use crate::error::{Error, code};
use crate::http::Params;
use crate::signing::record_nonce;

/// Accepts connections until `stop` is cancelled.
pub async fn serve(
    app: App,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
) {
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
        let app = app.clone();
        let tls = tls.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
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
        });
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

fn verify_reply(out: &mut Vec<u8>, seq: &str, r: Result<crate::tokens::TokenInfo, Error>) {
    match r {
        Ok(info) => {
            head(out, seq, 0);
            out.extend_from_slice(b",\"validate\":true,\"user_name\":");
            serde_json::to_writer(&mut *out, &*info.user_name).expect("strings serialize");
            out.extend_from_slice(b",\"type\":");
            out.extend_from_slice(itoa::Buffer::new().format(info.type_).as_bytes());
            out.extend_from_slice(b",\"expires_at\":");
            out.extend_from_slice(itoa::Buffer::new().format(info.expires_at).as_bytes());
            out.extend_from_slice(b"}\n");
        }
        Err(e @ (Error::AccessToken | Error::AccessTokenExpired)) => {
            head(out, seq, e.code());
            out.extend_from_slice(b",\"validate\":false}\n");
        }
        Err(e) => error_reply(out, seq, &e),
    }
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
        stream: S,
        stop: CancellationToken,
    ) -> std::io::Result<()> {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let idle = Duration::from_secs(self.app.config.token_service.idle_timeout.max(1));
        let mut input = BytesMut::with_capacity(64 * 1024);
        let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut discarding = false;
        let mut reading = true;
        let mut deadline = tokio::time::Instant::now() + idle;
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
                n = rd.read_buf(&mut input), if reading => {
                    let n = n?;
                    if n == 0 {
                        reading = false;
                        if !input.is_empty() && !discarding {
                            let line = input.split();
                            self.line(&line, &mut out).await;
                        }
                    } else {
                        deadline = tokio::time::Instant::now() + idle;
                        self.lines(&mut input, &mut out, &mut discarding).await;
                    }
                }
                _ = tokio::time::sleep_until(deadline), if reading => {
                    tracing::debug!("token service connection idle; closing");
                    break;
                }
                _ = stop.cancelled() => break,
            }
            if !out.is_empty() {
                wr.write_all(&out).await?;
                out.clear();
                if out.capacity() > 1 << 20 {
                    out.shrink_to(64 * 1024);
                }
            }
        }
        let _ = wr.shutdown().await;
        Ok(())
    }

    /// Handles every complete line in `input`, leaving a partial one.
    async fn lines(&mut self, input: &mut BytesMut, out: &mut Vec<u8>, discarding: &mut bool) {
        loop {
            match memchr::memchr(b'\n', input) {
                Some(i) => {
                    let line = input.split_to(i + 1);
                    if *discarding {
                        *discarding = false;
                        continue;
                    }
                    if i > self.max_line {
                        self.too_long(out);
                        continue;
                    }
                    self.line(&line[..i], out).await;
                }
                None => {
                    if input.len() > self.max_line {
                        if !*discarding {
                            self.too_long(out);
                        }
                        *discarding = true;
                        input.advance(input.len());
                    }
                    return;
                }
            }
        }
    }

    fn too_long(&self, out: &mut Vec<u8>) {
        error_reply(
            out,
            "null",
            &Error::Params(format!("line longer than {} bytes", self.max_line)),
        );
    }

    async fn line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
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
                let now = crate::now();
                match self.app.tokens.verify_cached(&token, now) {
                    Some(answer) => verify_reply(out, seq, answer),
                    None => {
                        let app = self.app.clone();
                        let (seq, token) = (seq.to_owned(), token.into_owned());
                        self.spawn(async move {
                            let mut reply = Vec::with_capacity(160);
                            verify_reply(&mut reply, &seq, app.tokens.verify(&token, now).await);
                            reply
                        });
                    }
                }
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
        let (verified, ts) = self
            .app
            .keyring
            .verify(|n| params.get(n), params.iter(), now)?;
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

/// For tests and the benchmark: the error code of "hello first".
pub const HELLO_FIRST: i64 = code::OPER_NOT_PERMIT;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn replies_are_json_lines() {
        let mut out = Vec::new();
        verify_reply(
            &mut out,
            "7",
            Ok(crate::tokens::TokenInfo {
                account_id: 1,
                session_id: 1,
                user_name: Arc::from("SN\"1"),
                type_: 2,
                expires_at: 99,
            }),
        );
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
    fn seq_must_be_number_or_string() {
        let ok: Box<RawValue> = serde_json::from_str("12").unwrap();
        let s: Box<RawValue> = serde_json::from_str("\"x\"").unwrap();
        let obj: Box<RawValue> = serde_json::from_str("{}").unwrap();
        assert!(valid_seq(&ok) && valid_seq(&s) && !valid_seq(&obj));
    }
}

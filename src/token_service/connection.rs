//! One token service connection (the handler): its hello deadline and idle
//! timer, its pipelined requests (a verification answered from memory
//! overtakes one that waits for the database) and its caps.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::limits::Limits;
use super::reply::{error_reply, verify_reply, write_line};
use super::request::{Command, Request};
use crate::accounts::lookup_users;
use crate::app::App;
use crate::config::AppKind;
use crate::db::nonce;
use crate::error::{Error, Outcome};
use crate::params::Params;
use crate::tokens::reply_tail;

/// One connection of the token service (the handler): its hello, its
/// idle timer and its requests in flight.
pub(super) struct Connection {
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
    /// `token_service{peer}`: the parent of the connection's events and
    /// database look-ups.
    span: tracing::Span,
    /// Counts the connection in the metrics while it lives.
    _counted: crate::metrics::OpenConnection,
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

impl Connection {
    pub(super) fn new(
        app: App,
        limits: Arc<Limits>,
        slot: OwnedSemaphorePermit,
        span: tracing::Span,
    ) -> Connection {
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
            span,
            _counted: crate::metrics::OpenConnection::new(),
        }
    }

    pub(super) fn span(&self) -> &tracing::Span {
        &self.span
    }

    pub(super) async fn run<S: AsyncRead + AsyncWrite + Unpin>(
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
                        tracing::debug!(parent: &self.span, "token service connection without hello in time; closing");
                        break;
                    }
                    if !active && self.in_flight == 0 && !self.paused {
                        tracing::debug!(parent: &self.span, "token service connection idle; closing");
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

    /// Carries out one line: parsed once, dispatched once.
    async fn line(&mut self, line: &[u8], out: &mut Vec<u8>, now: i64) -> Step {
        let Some(Request { seq, command }) = Request::parse(line, self.peer_app.is_some()) else {
            return Step::Done;
        };
        self.active = true;
        match command {
            Command::VerifyAccessToken(token) => return self.verify(seq, &token, now, out),
            Command::GetUsers(names) => {
                let Some(permit) = self.db_permit() else {
                    return Step::Later;
                };
                let app = self.app.clone();
                let seq = seq.to_owned();
                self.spawn(permit, async move {
                    let mut reply = Vec::with_capacity(256);
                    match lookup_users(&app, &names).await {
                        Ok((user_info_ls, unknown_ls)) => {
                            #[derive(Serialize)]
                            struct Users<T, U> {
                                result: i64,
                                user_info_ls: T,
                                unknown_ls: U,
                            }
                            let users = Users {
                                result: 0,
                                user_info_ls,
                                unknown_ls,
                            };
                            write_line(&mut reply, &seq, &users);
                        }
                        Err(e) => error_reply(&mut reply, &seq, &e),
                    }
                    reply
                });
            }
            Command::Hello(params) => match self.hello(&params).await {
                Ok(app_id) => {
                    #[derive(Serialize)]
                    struct Welcome<'a> {
                        result: i64,
                        app_id: &'a str,
                    }
                    let welcome = Welcome {
                        result: 0,
                        app_id: &app_id,
                    };
                    write_line(out, seq, &welcome);
                    self.peer_app = Some(app_id);
                }
                Err(e) => error_reply(out, seq, &e),
            },
            Command::Ping => write_line(out, seq, &Outcome::ok()),
            Command::Refused(e) => error_reply(out, seq, &e),
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
                    let tail = reply_tail(&info);
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
        let task = async move {
            let reply = work.await;
            // The permit goes back before the reply, so the connection that
            // reads it can take the permit again at once.
            drop(permit);
            let _ = tx.send(reply);
        };
        tokio::spawn(task.instrument(self.span.clone()));
    }

    /// Checks a signed hello; the app must be of kind `service`.
    async fn hello(&self, params: &Params) -> Result<String, Error> {
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

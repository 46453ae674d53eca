//! A logged-in session: one task owns the stream; [`Session`] and its
//! cheap [`SessionHandle`]s talk to it over a channel. IQ replies are
//! matched by (sender, id) ([`super::iq`]); the task answers pings and
//! roster pushes itself (RFC 6120 §8.2.3, RFC 6121 §2.1.6) and keeps the
//! stream alive with pings of its own.
//!
//! Inbound stanzas reach the reader in order. By default the queue drops
//! when full (nobody is obliged to read); a [`SessionOptions::lossless`]
//! session waits for its reader instead (backpressure: the task stops
//! reading the stream), and with [`SessionOptions::stream_management`] it
//! acknowledges to the server (XEP-0198, [`super::sm`]) only what the
//! reader marked handled. While a lossless session holds a stanza its
//! reader has no room for, it still sends (a phone that does not
//! acknowledge pushes can still send messages).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_xmpp::xmlstream::{ReadError, XmppStreamElement};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::{FullJid, Jid};
use xmpp_parsers::minidom::Element;
use xmpp_parsers::ping::Ping;
use xmpp_parsers::sm;
use xmpp_parsers::stanza::Stanza;
use xmpp_parsers::stream_error::DefinedCondition as StreamCondition;

use super::sm::Ledger;
use super::software::Software;
use super::{XmppError, iq};

use super::stream::FallibleStream;

/// The payload of an IQ request.
pub enum IqRequest {
    Get(Element),
    Set(Element),
}

enum Command {
    Send(Box<Stanza>, oneshot::Sender<Result<(), XmppError>>),
    Iq(
        Option<Jid>,
        IqRequest,
        oneshot::Sender<Result<Option<Element>, XmppError>>,
    ),
}

/// A logged-in XMPP session, driven by its own task.
///
/// Dropping the session (or calling [`Session::close`]) ends the stream.
pub struct Session {
    handle: SessionHandle,
    /// What the server said it is in its stream features.
    pub(super) software: Software,
    events: mpsc::Receiver<Box<Inbound>>,
    done: Option<oneshot::Receiver<()>>,
    /// Dropped with the session: the task ends even while handles live.
    _quit: oneshot::Sender<()>,
}

/// How a session treats inbound stanzas.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionOptions {
    /// Wait for the reader rather than drop when the queue is full.
    pub lossless: bool,
    /// Enable XEP-0198 and acknowledge only stanzas the reader handled
    /// ([`SessionHandle::handled`]); implies nothing without `lossless`.
    pub stream_management: bool,
}

/// An inbound stanza and its place in the stream (for
/// [`SessionHandle::handled`]).
#[derive(Debug)]
pub struct Inbound {
    pub seq: u64,
    pub stanza: Stanza,
}

/// Why a session's stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// We closed it, or the connection ended.
    Closed,
    /// The server replaced us: another login bound the same resource
    /// (stream error `conflict`, RFC 6120 §4.9.3.3).
    Conflict,
    /// Any other stream error from the server.
    StreamError(String),
}

/// A cheap handle to send on a [`Session`] from several places.
#[derive(Clone)]
pub struct SessionHandle {
    tx: mpsc::Sender<Box<Command>>,
    jid: FullJid,
    timeout: Duration,
    ledger: Arc<Mutex<Ledger>>,
    ended: Arc<OnceLock<Ended>>,
}

/// Incoming stanzas queued for the reader (boxed: a stanza is about 400
/// bytes, and a channel allocates its slots 32 at a time, in every idle
/// session): beyond, a lossy session drops
/// new ones (it never blocks on a reader that is not reading), a lossless
/// one stops reading the stream until the reader catches up.
const EVENT_QUEUE: usize = 256;

impl Session {
    pub(super) fn spawn<S>(
        stream: FallibleStream<S>,
        jid: FullJid,
        timeout: Duration,
        options: SessionOptions,
        early: Vec<Stanza>,
    ) -> Session
    where
        S: AsyncBufRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(64);
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
        let (done_tx, done_rx) = oneshot::channel();
        let (quit_tx, quit_rx) = oneshot::channel();
        let handle = SessionHandle {
            tx,
            jid,
            timeout,
            ledger: Arc::default(),
            ended: Arc::default(),
        };
        let task = Task {
            me: handle.jid.clone(),
            options,
            events: ev_tx,
            ledger: handle.ledger.clone(),
            ended: handle.ended.clone(),
        };
        tokio::spawn(async move {
            task.deliver_early(early).await;
            task.run(stream, rx, quit_rx).await;
            let _ = done_tx.send(());
        });
        Session {
            handle,
            software: Software::Unknown,
            events: ev_rx,
            done: Some(done_rx),
            _quit: quit_tx,
        }
    }

    /// The server's software, as far as its stream features tell.
    pub fn software(&self) -> Software {
        self.software
    }

    /// The full JID the server bound.
    pub fn jid(&self) -> &FullJid {
        &self.handle.jid
    }

    /// A handle for sending from elsewhere.
    pub fn handle(&self) -> SessionHandle {
        self.handle.clone()
    }

    /// Sends an IQ and waits for its result payload.
    pub async fn iq(&self, to: Option<Jid>, req: IqRequest) -> Result<Option<Element>, XmppError> {
        self.handle.iq(to, req).await
    }

    /// Sends a stanza (message or presence).
    pub async fn send(&self, stanza: impl Into<Stanza>) -> Result<(), XmppError> {
        self.handle.send(stanza).await
    }

    /// The next stanza the server pushed to us (messages, presences, IQ
    /// requests other than pings and roster pushes), or `None` once closed.
    pub async fn next_event(&mut self) -> Option<Stanza> {
        self.events.recv().await.map(|i| i.stanza)
    }

    /// The next inbound stanza with its sequence number, for readers that
    /// acknowledge ([`SessionHandle::handled`]); `None` once closed.
    pub async fn next_inbound(&mut self) -> Option<Inbound> {
        self.events.recv().await.map(|i| *i)
    }

    /// Ends the stream politely and waits (briefly) for the task to finish.
    pub async fn close(mut self) {
        let done = self.done.take();
        drop(self);
        if let Some(done) = done {
            let _ = tokio::time::timeout(Duration::from_secs(2), done).await;
        }
    }
}

/// A session is used like its handle (the roster functions take either).
impl std::ops::Deref for Session {
    type Target = SessionHandle;

    fn deref(&self) -> &SessionHandle {
        &self.handle
    }
}

impl SessionHandle {
    /// True once the session's task has ended.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Resolves when the session's task has ended.
    pub async fn closed(&self) {
        self.tx.closed().await
    }

    /// Why the stream ended (`None` while it runs).
    pub fn ended(&self) -> Option<Ended> {
        self.ended.get().cloned()
    }

    /// The reader handled inbound stanza `seq`: with stream management, the
    /// server may now forget it.
    pub fn handled(&self, seq: u64) {
        self.ledger
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .handled(seq);
    }

    /// Sends an IQ and waits (with the session's timeout) for the result.
    pub async fn iq(&self, to: Option<Jid>, req: IqRequest) -> Result<Option<Element>, XmppError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Box::new(Command::Iq(to, req, tx)))
            .await
            .map_err(|_| XmppError::NotConnected)?;
        match tokio::time::timeout(self.timeout, rx).await {
            Err(_) => Err(XmppError::Timeout),
            Ok(Err(_)) => Err(XmppError::Closed),
            Ok(Ok(r)) => r,
        }
    }

    /// Sends a stanza; resolves once it is written.
    pub async fn send(&self, stanza: impl Into<Stanza>) -> Result<(), XmppError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Box::new(Command::Send(Box::new(stanza.into()), tx)))
            .await
            .map_err(|_| XmppError::NotConnected)?;
        match tokio::time::timeout(self.timeout, rx).await {
            Err(_) => Err(XmppError::Timeout),
            Ok(Err(_)) => Err(XmppError::Closed),
            Ok(Ok(r)) => r,
        }
    }
}

/// What the task that owns one stream, bound as `me`, keeps.
struct Task {
    me: FullJid,
    options: SessionOptions,
    events: mpsc::Sender<Box<Inbound>>,
    ledger: Arc<Mutex<Ledger>>,
    ended: Arc<OnceLock<Ended>>,
}

impl Task {
    async fn run<S>(
        self,
        mut stream: FallibleStream<S>,
        mut commands: mpsc::Receiver<Box<Command>>,
        mut quit: oneshot::Receiver<()>,
    ) where
        S: AsyncBufRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut pending = iq::PendingIqs::new(self.me.clone());
        let mut ended = Ended::Closed;
        // A stanza waiting for room in a lossless session's queue: the
        // stream is not read meanwhile (backpressure), but sends go on.
        let mut held: Option<Box<Inbound>> = None;
        loop {
            tokio::select! {
                _ = &mut quit => break,
                permit = self.events.reserve(), if held.is_some() => {
                    let inbound = held.take();
                    if let (Ok(permit), Some(inbound)) = (permit, inbound) {
                        permit.send(inbound);
                    }
                }
                item = stream.next(), if held.is_none() => {
                    let element = match item {
                        None => break,
                        Some(Err(ReadError::SoftTimeout)) => {
                            // Keep the stream alive and prove the server is there.
                            let ping = Iq::from_get(iq::new_id(), Ping);
                            if stream.send(&XmppStreamElement::Stanza(Stanza::Iq(ping))).await.is_err() {
                                break;
                            }
                            continue;
                        }
                        Some(Err(_)) => break,
                        Some(Ok(el)) => match el.into_read_error() {
                            Ok(el) => el,
                            Err(ReadError::ParseError(e)) => {
                                // Still a stanza the server counted.
                                self.ledger().receive(false);
                                tracing::debug!(error = %e, "ignoring unparsable XMPP element");
                                continue;
                            }
                            Err(_) => break,
                        },
                    };
                    match element {
                        XmppStreamElement::Stanza(Stanza::Iq(iq)) => {
                            let (reply, event) = iq::answer_incoming(iq, &self.me, &mut pending);
                            if let Some(reply) = reply
                                && stream.send(&XmppStreamElement::Stanza(Stanza::Iq(reply))).await.is_err()
                            {
                                break;
                            }
                            match event {
                                Some(event) => held = self.offer(event),
                                None => { self.ledger().receive(false); }
                            }
                        }
                        XmppStreamElement::Stanza(other) => held = self.offer(other),
                        XmppStreamElement::SM(sm::Nonza::Req(_)) => {
                            let h = self.ledger().h();
                            tracing::trace!(jid = %self.me, h, "XEP-0198: answering <r/>");
                            if stream.send(&super::sm::ack(h)).await.is_err() {
                                break;
                            }
                        }
                        XmppStreamElement::StreamError(e) => {
                            tracing::warn!(error = %e.0, "XMPP server closed the stream");
                            ended = match e.0.condition {
                                StreamCondition::Conflict => Ended::Conflict,
                                other => Ended::StreamError(format!("{other:?}")),
                            };
                            break;
                        }
                        _ => {}
                    }
                }
                command = commands.recv() => {
                    let Some(command) = command else { break };
                    match *command {
                        Command::Send(stanza, done) => {
                            let r = stream.send(&XmppStreamElement::Stanza(*stanza)).await;
                            let failed = r.is_err();
                            let _ = done.send(r.map_err(XmppError::Io));
                            if failed { break; }
                        }
                        Command::Iq(to, req, reply) => {
                            let id = iq::new_id();
                            let request = match req {
                                IqRequest::Get(payload) => Iq::Get { from: None, to: to.clone(), id: id.clone(), payload },
                                IqRequest::Set(payload) => Iq::Set { from: None, to: to.clone(), id: id.clone(), payload },
                            };
                            match stream.send(&XmppStreamElement::Stanza(Stanza::Iq(request))).await {
                                Ok(()) => pending.expect(id, to, reply),
                                Err(e) => { let _ = reply.send(Err(XmppError::Io(e))); break; }
                            }
                        }
                    }
                }
            }
        }
        let _ = self.ended.set(ended);
        pending.close();
        if self.options.stream_management {
            // What the reader handled, and nothing else: the server keeps
            // (and stores offline) the rest.
            let h = self.ledger().h();
            tracing::debug!(jid = %self.me, h, "XEP-0198: last acknowledgement before closing");
            let _ =
                tokio::time::timeout(Duration::from_secs(1), stream.send(&super::sm::ack(h))).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands the reader what came before stream management was enabled
    /// (the server does not count those): sequence number 0, which no
    /// acknowledgement covers.
    async fn deliver_early(&self, early: Vec<Stanza>) {
        for stanza in early {
            if self
                .events
                .send(Box::new(Inbound { seq: 0, stanza }))
                .await
                .is_err()
            {
                return;
            }
        }
    }

    /// Hands a stanza to the reader. When its queue is full a lossless
    /// session gets it back to hold (and stops reading the stream until
    /// the reader makes room); any other drops it (counted as handled
    /// either way unless the reader acknowledges).
    fn offer(&self, stanza: Stanza) -> Option<Box<Inbound>> {
        let awaits = self.options.lossless && self.options.stream_management;
        let seq = self.ledger().receive(awaits);
        match self.events.try_send(Box::new(Inbound { seq, stanza })) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(inbound)) if self.options.lossless => Some(inbound),
            // Nobody is obliged to read events: dropped when full.
            Err(mpsc::error::TrySendError::Full(_)) => None,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                // No reader any more: nobody will acknowledge it.
                tracing::debug!("inbound stanza for a session nobody reads");
                None
            }
        }
    }
}

//! A logged-in session: one task owns the stream; [`Session`] and its
//! cheap [`SessionHandle`]s talk to it over a channel. IQ replies are
//! matched by (sender, id) ([`super::iq`]); the task answers pings and
//! roster pushes itself (RFC 6120 §8.2.3, RFC 6121 §2.1.6) and keeps the
//! stream alive with pings of its own.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_xmpp::xmlstream::{ReadError, XmlStream, XmppStreamElement};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::{FullJid, Jid};
use xmpp_parsers::minidom::Element;
use xmpp_parsers::ns;
use xmpp_parsers::ping::Ping;
use xmpp_parsers::stanza::Stanza;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};

use super::{XmppError, iq};

/// The XML stream of a session: elements that failed to parse are reported
/// rather than ending the stream.
pub(super) type FallibleStream<S> = XmlStream<S, tokio_xmpp::xmlstream::FallibleStreamElement>;

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
    events: mpsc::Receiver<Stanza>,
    done: Option<oneshot::Receiver<()>>,
}

/// A cheap handle to send on a [`Session`] from several places.
#[derive(Clone)]
pub struct SessionHandle {
    tx: mpsc::Sender<Command>,
    jid: FullJid,
    timeout: Duration,
}

/// Incoming stanzas kept for [`Session::next_event`] before older ones are
/// dropped; the session task never blocks on a reader that is not reading.
const EVENT_QUEUE: usize = 256;

impl Session {
    pub(super) fn spawn<S>(stream: FallibleStream<S>, jid: FullJid, timeout: Duration) -> Session
    where
        S: AsyncBufRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(64);
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
        let (done_tx, done_rx) = oneshot::channel();
        let me = jid.clone();
        tokio::spawn(async move {
            run_session(stream, me, rx, ev_tx).await;
            let _ = done_tx.send(());
        });
        Session {
            handle: SessionHandle { tx, jid, timeout },
            events: ev_rx,
            done: Some(done_rx),
        }
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
        self.events.recv().await
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

    /// Sends an IQ and waits (with the session's timeout) for the result.
    pub async fn iq(&self, to: Option<Jid>, req: IqRequest) -> Result<Option<Element>, XmppError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Iq(to, req, tx))
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
            .send(Command::Send(Box::new(stanza.into()), tx))
            .await
            .map_err(|_| XmppError::NotConnected)?;
        match tokio::time::timeout(self.timeout, rx).await {
            Err(_) => Err(XmppError::Timeout),
            Ok(Err(_)) => Err(XmppError::Closed),
            Ok(Ok(r)) => r,
        }
    }
}

/// The task that owns one stream, bound as `me`.
async fn run_session<S>(
    mut stream: FallibleStream<S>,
    me: FullJid,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Stanza>,
) where
    S: AsyncBufRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut pending = iq::PendingIqs::new(me.clone());
    loop {
        tokio::select! {
            item = stream.next() => {
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
                            tracing::debug!(error = %e, "ignoring unparsable XMPP element");
                            continue;
                        }
                        Err(_) => break,
                    },
                };
                match element {
                    XmppStreamElement::Stanza(Stanza::Iq(iq)) => {
                        if let Some(reply) = handle_incoming_iq(iq, &me, &mut pending, &events) {
                            if stream.send(&XmppStreamElement::Stanza(Stanza::Iq(reply))).await.is_err() {
                                break;
                            }
                        }
                    }
                    XmppStreamElement::Stanza(other) => {
                        // Nobody is obliged to read events: drop when full.
                        let _ = events.try_send(other);
                    }
                    XmppStreamElement::StreamError(e) => {
                        tracing::warn!(error = %e.0, "XMPP server closed the stream");
                        break;
                    }
                    _ => {}
                }
            }
            command = commands.recv() => {
                let Some(command) = command else { break };
                match command {
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
    pending.close();
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
}

/// Completes a waiting IQ (matched by sender and id, see [`iq`]), or answers
/// IQ requests: pings get a result, roster pushes from the server a result,
/// everything else service-unavailable.
fn handle_incoming_iq(
    incoming: Iq,
    me: &FullJid,
    pending: &mut iq::PendingIqs,
    events: &mpsc::Sender<Stanza>,
) -> Option<Iq> {
    match incoming {
        reply @ (Iq::Result { .. } | Iq::Error { .. }) => {
            if pending.complete(reply) == iq::Matched::Unmatched {
                // A late answer after a timeout, or a forgery: never an
                // answer to anything (debug only: a flood must not flood
                // the log).
                tracing::debug!("dropped an IQ reply that answers no request of ours");
            }
            None
        }
        Iq::Get {
            from, id, payload, ..
        } => {
            if payload.is("ping", ns::PING) {
                Some(Iq::empty_result(from?, id))
            } else {
                Some(error_reply(from, id))
            }
        }
        Iq::Set {
            from, id, payload, ..
        } => {
            // RFC 6121 §2.1.6: a roster push comes from the server (no
            // from, or our own bare JID); anyone else's is ignored.
            let from_server = from.as_ref().is_none_or(|f| *f == me.to_bare());
            if payload.is("query", ns::ROSTER) && from_server {
                let _ = events.try_send(Stanza::Iq(Iq::Set {
                    from: from.clone(),
                    to: None,
                    id: id.clone(),
                    payload,
                }));
                // A push from the server carries no from, or our own bare JID.
                Some(Iq::Result {
                    from: None,
                    to: from,
                    id,
                    payload: None,
                })
            } else {
                Some(error_reply(from, id))
            }
        }
    }
}

fn error_reply(to: Option<Jid>, id: String) -> Iq {
    Iq::Error {
        from: None,
        to,
        id,
        error: StanzaError::new(
            ErrorType::Cancel,
            DefinedCondition::ServiceUnavailable,
            "en",
            "",
        ),
        payload: None,
    }
}

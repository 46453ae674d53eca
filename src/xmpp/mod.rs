//! Client-to-server XMPP sessions (RFC 6120), built on tokio-xmpp's XML
//! stream layer.
//!
//! jidgate needs sessions that fail fast and say why: a wrong password must be
//! an error, not an endless reconnect loop, and a dead server must fail the
//! request in flight. So a [`Session`] is one login, with no automatic
//! reconnection (the admin session's supervisor in
//! [`crate::provisioner`] reconnects). One task owns each stream; the rest of
//! the program talks to it over a channel, and IQ replies are matched by
//! (sender, id) with random ids ([`iq`]).
//!
//! - [`adhoc`]: XEP-0050 ad-hoc commands and the XEP-0133 admin commands.
//! - [`iq`]: RFC 6120 IQ semantics: which reply answers which request.
//! - [`roster`]: RFC 6121 roster management and presence subscriptions.

pub mod adhoc;
pub mod iq;
pub mod roster;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use sasl::common::{ChannelBinding, Credentials};
use tokio::io::{AsyncBufRead, AsyncWrite, BufStream};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::ServerName};
use tokio_xmpp::xmlstream::{
    ReadError, StreamHeader, Timeouts, XmlStream, XmppStreamElement, initiate_stream,
};
use xmpp_parsers::bind::{BindQuery, BindResponse};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::{BareJid, FullJid, Jid};
use xmpp_parsers::minidom::Element;
use xmpp_parsers::ns;
use xmpp_parsers::ping::Ping;
use xmpp_parsers::sasl::DefinedCondition as SaslCondition;
use xmpp_parsers::stanza::Stanza;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};
use xmpp_parsers::starttls;
use xmpp_parsers::stream_features::StreamFeatures;

use crate::config::{XmppConfig, XmppSecurity};

type FallibleStream<S> = XmlStream<S, tokio_xmpp::xmlstream::FallibleStreamElement>;

/// What can go wrong talking to the XMPP server.
#[derive(Debug, thiserror::Error)]
pub enum XmppError {
    /// The server could not be reached or the connection broke.
    #[error("XMPP connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("XMPP TLS failed: {0}")]
    Tls(String),
    /// The server refused the password (SASL `not-authorized`): a wrong
    /// password, or no such account.
    #[error("XMPP login refused: not-authorized")]
    NotAuthorized,
    /// The server refused the login for another reason (SASL failure).
    #[error("XMPP login refused: {0}")]
    Auth(String),
    #[error("XMPP protocol error: {0}")]
    Protocol(String),
    /// No answer within the configured timeout.
    #[error("XMPP server did not answer in time")]
    Timeout,
    /// The session ended (server closed it, or it was shut down). A request
    /// in flight may or may not have reached the server.
    #[error("XMPP session closed")]
    Closed,
    /// There is no session: the request was certainly not sent.
    #[error("no XMPP session (server unreachable)")]
    NotConnected,
    /// The server answered an IQ with an error.
    #[error("XMPP server answered {}", describe_stanza_error(.0))]
    Stanza(Box<StanzaError>),
}

/// A stanza error as `Condition text`, for messages.
fn describe_stanza_error(e: &StanzaError) -> String {
    let text = e.texts.values().next().map(String::as_str).unwrap_or("");
    format!("{:?} {text}", e.defined_condition)
        .trim()
        .to_owned()
}

impl XmppError {
    /// The server refused our credentials (as opposed to being unreachable).
    pub fn is_auth(&self) -> bool {
        matches!(self, XmppError::Auth(_) | XmppError::NotAuthorized)
    }

    /// The server refused the password itself (SASL `not-authorized`).
    pub fn is_refused_password(&self) -> bool {
        matches!(self, XmppError::NotAuthorized)
    }

    /// The request certainly did not reach the server (nothing changed).
    pub fn not_sent(&self) -> bool {
        matches!(self, XmppError::NotConnected)
    }
}

/// How to reach the XMPP server: address, domain, TLS.
#[derive(Clone)]
pub struct Connector {
    server: String,
    domain: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    timeout: Duration,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("server", &self.server)
            .field("domain", &self.domain)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Connector {
    /// Builds the connector from configuration: StartTLS with the configured
    /// CA (or the system's roots), or plaintext to a loopback server.
    pub fn from_config(cfg: &XmppConfig) -> anyhow::Result<Connector> {
        let tls = match cfg.security {
            XmppSecurity::Plaintext => {
                let addr: SocketAddr = cfg.server.parse()?;
                anyhow::ensure!(
                    addr.ip().is_loopback(),
                    "plaintext XMPP is only allowed to a loopback address"
                );
                None
            }
            XmppSecurity::Starttls => {
                let mut roots = rustls::RootCertStore::empty();
                if cfg.ca_file.is_empty() {
                    let native = rustls_native_certs::load_native_certs();
                    roots.add_parsable_certificates(native.certs);
                } else {
                    let pem = std::fs::read(&cfg.ca_file).map_err(|e| {
                        anyhow::anyhow!("cannot read xmpp.ca_file {}: {e}", cfg.ca_file)
                    })?;
                    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                        roots.add(cert?)?;
                    }
                }
                anyhow::ensure!(
                    !roots.is_empty(),
                    "no CA certificate to verify the XMPP server"
                );
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
                let name = if cfg.tls_server_name.is_empty() {
                    cfg.domain.clone()
                } else {
                    cfg.tls_server_name.clone()
                };
                Some((
                    TlsConnector::from(Arc::new(config)),
                    ServerName::try_from(name)?,
                ))
            }
        };
        Ok(Connector {
            server: cfg.server.clone(),
            domain: cfg.domain.clone(),
            tls,
            timeout: Duration::from_secs(cfg.timeout.max(1)),
        })
    }

    /// Logs in as `jid` with `password`, binding `resource`. Fails (never
    /// retries) on refused credentials, unreachable server or timeout.
    pub async fn login(
        &self,
        jid: &BareJid,
        password: &str,
        resource: &str,
    ) -> Result<Session, XmppError> {
        tokio::time::timeout(self.timeout, self.login_inner(jid, password, resource))
            .await
            .map_err(|_| XmppError::Timeout)?
    }

    async fn login_inner(
        &self,
        jid: &BareJid,
        password: &str,
        resource: &str,
    ) -> Result<Session, XmppError> {
        let tcp = TcpStream::connect(&self.server).await?;
        // Prosody and tokio-xmpp both leave Nagle on; small stanzas then stall.
        tcp.set_nodelay(true)?;
        let timeouts = Timeouts {
            read_timeout: Duration::from_secs(60),
            response_timeout: self.timeout,
        };
        let pending = initiate_stream(
            BufStream::new(tcp),
            ns::JABBER_CLIENT,
            self.header(),
            timeouts,
        )
        .await?;
        let (features, stream) = pending
            .recv_features()
            .await
            .map_err(|e| XmppError::Protocol(e.to_string()))?;
        match &self.tls {
            None => {
                self.authenticate(
                    stream,
                    features,
                    jid,
                    password,
                    resource,
                    ChannelBinding::None,
                )
                .await
            }
            Some((connector, name)) => {
                if features.starttls.is_none() {
                    return Err(XmppError::Tls("server does not offer StartTLS".into()));
                }
                let tcp = starttls(stream).await?;
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| XmppError::Tls(e.to_string()))?;
                let binding = exporter_binding(&tls);
                let pending = initiate_stream(
                    BufStream::new(tls),
                    ns::JABBER_CLIENT,
                    self.header(),
                    timeouts,
                )
                .await?;
                let (features, stream) = pending
                    .recv_features()
                    .await
                    .map_err(|e| XmppError::Protocol(e.to_string()))?;
                self.authenticate(stream, features, jid, password, resource, binding)
                    .await
            }
        }
    }

    fn header(&self) -> StreamHeader<'_> {
        StreamHeader {
            to: Some(Cow::Borrowed(self.domain.as_str())),
            from: None,
            id: None,
        }
    }

    async fn authenticate<S>(
        &self,
        stream: FallibleStream<S>,
        features: StreamFeatures,
        jid: &BareJid,
        password: &str,
        resource: &str,
        binding: ChannelBinding,
    ) -> Result<Session, XmppError>
    where
        S: AsyncBufRead + AsyncWrite + Unpin + Send + 'static,
    {
        let node = jid
            .node()
            .ok_or_else(|| XmppError::Protocol("JID without localpart".into()))?;
        // Channel binding (tls-exporter) only where the server offers a -PLUS
        // mechanism and says (XEP-0440) that it binds tls-exporter;
        // otherwise a client that announces binding support would make
        // SCRAM refuse (Prosody 0.12 offers no -PLUS and would fall back to
        // PLAIN; ejabberd 23.01 offers SCRAM-SHA-1-PLUS but binds only
        // tls-unique, which TLS 1.3 lacks, and refuses tls-exporter). Without
        // binding the client says "n" (RFC 5802), which every server
        // accepts; the server's certificate is verified either way.
        let plus = features
            .sasl_mechanisms
            .iter()
            .any(|m| m.ends_with("-PLUS"));
        let exporter = features
            .sasl_cb
            .as_ref()
            .is_some_and(|cb| cb.types.contains(&xmpp_parsers::sasl_cb::Type::TlsExporter));
        let binding = if plus && exporter {
            binding
        } else {
            ChannelBinding::None
        };
        let creds = Credentials::default()
            .with_username(node.as_str())
            .with_password(password)
            .with_channel_binding(binding);
        let stream = tokio_xmpp::client_login(stream, features.sasl_mechanisms, creds)
            .await
            .map_err(|e| match e {
                tokio_xmpp::Error::Auth(tokio_xmpp::error::AuthError::Fail(
                    SaslCondition::NotAuthorized,
                )) => XmppError::NotAuthorized,
                tokio_xmpp::Error::Auth(tokio_xmpp::error::AuthError::Fail(cond)) => {
                    XmppError::Auth(sasl_condition(&cond))
                }
                tokio_xmpp::Error::Auth(other) => XmppError::Auth(other.to_string()),
                tokio_xmpp::Error::Io(io) => XmppError::Io(io),
                tokio_xmpp::Error::Disconnected => XmppError::Closed,
                other => XmppError::Protocol(other.to_string()),
            })?;
        let pending = stream.send_header(self.header()).await?;
        let (_features, mut stream): (_, FallibleStream<S>) = pending
            .recv_features()
            .await
            .map_err(|e| XmppError::Protocol(e.to_string()))?;

        // Resource binding (RFC 6120 §7). Before it, only the server can
        // address this stream.
        let bind_id = iq::new_id();
        let bind = Iq::from_set(bind_id.clone(), BindQuery::new(Some(resource.to_owned())));
        stream
            .send(&XmppStreamElement::Stanza(Stanza::Iq(bind)))
            .await?;
        let full = loop {
            match next_element(&mut stream).await? {
                XmppStreamElement::Stanza(Stanza::Iq(Iq::Result {
                    id,
                    payload: Some(payload),
                    ..
                })) if id == bind_id => {
                    let bound = BindResponse::try_from(payload)
                        .map_err(|e| XmppError::Protocol(format!("bad bind result: {e}")))?;
                    break FullJid::from(bound);
                }
                XmppStreamElement::Stanza(Stanza::Iq(Iq::Error { id, error, .. }))
                    if id == bind_id =>
                {
                    return Err(XmppError::Stanza(Box::new(error)));
                }
                _ => continue,
            }
        };
        Ok(Session::spawn(stream, full, self.timeout))
    }
}

fn sasl_condition(cond: &SaslCondition) -> String {
    format!("{cond:?}")
}

/// tls-exporter channel binding data (RFC 9266), TLS 1.3 only.
fn exporter_binding<S>(tls: &tokio_rustls::client::TlsStream<S>) -> ChannelBinding {
    let (_, conn) = tls.get_ref();
    if conn.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
        return ChannelBinding::None;
    }
    match conn.export_keying_material(vec![0u8; 32], b"EXPORTER-Channel-Binding", None) {
        Ok(data) => ChannelBinding::TlsExporter(data),
        Err(_) => ChannelBinding::None,
    }
}

/// Sends `<starttls/>`, waits for `<proceed/>` and returns the bare TCP stream.
async fn starttls(
    mut stream: FallibleStream<BufStream<TcpStream>>,
) -> Result<TcpStream, XmppError> {
    stream
        .send(&XmppStreamElement::Starttls(starttls::Nonza::Request(
            starttls::Request,
        )))
        .await?;
    loop {
        match next_element(&mut stream).await? {
            XmppStreamElement::Starttls(starttls::Nonza::Proceed(_)) => break,
            XmppStreamElement::Starttls(_) => {
                return Err(XmppError::Tls("server refused StartTLS".into()));
            }
            _ => continue,
        }
    }
    Ok(stream.into_inner().into_inner())
}

/// Reads the next stream-level element, turning soft timeouts into waiting
/// and the end of the stream into [`XmppError::Closed`].
async fn next_element<S: AsyncBufRead + Unpin>(
    stream: &mut FallibleStream<S>,
) -> Result<XmppStreamElement, XmppError> {
    loop {
        match stream.next().await {
            None => return Err(XmppError::Closed),
            Some(Err(ReadError::SoftTimeout)) => continue,
            Some(Err(ReadError::HardError(e))) => return Err(XmppError::Io(e)),
            Some(Err(ReadError::ParseError(e))) => {
                return Err(XmppError::Protocol(e.to_string()));
            }
            Some(Err(ReadError::StreamFooterReceived)) => return Err(XmppError::Closed),
            Some(Ok(el)) => match el.into_read_error() {
                Ok(XmppStreamElement::StreamError(e)) => {
                    return Err(XmppError::Protocol(format!("stream error: {}", e.0)));
                }
                Ok(el) => return Ok(el),
                Err(ReadError::ParseError(e)) => {
                    tracing::debug!(error = %e, "ignoring unparsable XMPP element");
                    continue;
                }
                Err(ReadError::SoftTimeout) => continue,
                Err(ReadError::HardError(e)) => return Err(XmppError::Io(e)),
                Err(ReadError::StreamFooterReceived) => return Err(XmppError::Closed),
            },
        }
    }
}

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
    fn spawn<S>(stream: FallibleStream<S>, jid: FullJid, timeout: Duration) -> Session
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

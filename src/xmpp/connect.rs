//! Opening a client-to-server session (RFC 6120): TCP, StartTLS (§5) with
//! channel binding (RFC 9266), SASL (§6) and resource binding (§7). A
//! session fails fast: a refused password is an error, never a reconnect
//! loop.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use sasl::common::{ChannelBinding, Credentials};
use tokio::io::{AsyncBufRead, AsyncWrite, BufStream};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::ServerName};
use tokio_xmpp::xmlstream::{
    ReadError, StreamHeader, Timeouts, XmppStreamElement, initiate_stream,
};
use xmpp_parsers::bind::{BindQuery, BindResponse};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::{BareJid, FullJid};
use xmpp_parsers::ns;
use xmpp_parsers::sasl::DefinedCondition as SaslCondition;
use xmpp_parsers::stanza::Stanza;
use xmpp_parsers::starttls;
use xmpp_parsers::stream_features::StreamFeatures;

use super::session::{Session, SessionOptions};
use super::stream::FallibleStream;
use super::{XmppError, iq};
use crate::config::{XmppConfig, XmppSecurity};

/// Read and write buffer of each XMPP connection (tokio's default is
/// 8 KiB each way). Sessions are mostly idle and stanzas small; a larger
/// stanza is read in several fills or written past the buffer.
const STREAM_BUFFER: usize = 4096;

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
        self.login_with(jid, password, resource, SessionOptions::default())
            .await
    }

    /// [`Connector::login`] with a session that treats inbound stanzas as
    /// `options` say (lossless, XEP-0198).
    pub async fn login_with(
        &self,
        jid: &BareJid,
        password: &str,
        resource: &str,
        options: SessionOptions,
    ) -> Result<Session, XmppError> {
        let login = Login {
            jid,
            password,
            resource,
            options,
        };
        tokio::time::timeout(self.timeout, self.login_inner(&login))
            .await
            .map_err(|_| XmppError::Timeout)?
    }

    async fn login_inner(&self, login: &Login<'_>) -> Result<Session, XmppError> {
        let tcp = TcpStream::connect(&self.server).await?;
        // Prosody and tokio-xmpp both leave Nagle on; small stanzas then stall.
        tcp.set_nodelay(true)?;
        let timeouts = Timeouts {
            read_timeout: Duration::from_secs(60),
            response_timeout: self.timeout,
        };
        let pending = initiate_stream(
            BufStream::with_capacity(STREAM_BUFFER, STREAM_BUFFER, tcp),
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
                self.authenticate(stream, features, login, ChannelBinding::None)
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
                    BufStream::with_capacity(STREAM_BUFFER, STREAM_BUFFER, tls),
                    ns::JABBER_CLIENT,
                    self.header(),
                    timeouts,
                )
                .await?;
                let (features, stream) = pending
                    .recv_features()
                    .await
                    .map_err(|e| XmppError::Protocol(e.to_string()))?;
                self.authenticate(stream, features, login, binding).await
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
        login: &Login<'_>,
        binding: ChannelBinding,
    ) -> Result<Session, XmppError>
    where
        S: AsyncBufRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Login {
            jid,
            password,
            resource,
            options,
        } = *login;
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
        let (features, mut stream): (_, FallibleStream<S>) = pending
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
        let mut early = Vec::new();
        if options.stream_management {
            if features.stream_management.is_none() {
                return Err(XmppError::Protocol(
                    "the server does not offer stream management (XEP-0198)".into(),
                ));
            }
            early = super::sm::enable(&mut stream).await?;
        }
        let software = super::software::Software::from_features(&features);
        let mut session = Session::spawn(stream, full, self.timeout, options, early);
        session.software = software;
        Ok(session)
    }
}

/// Who logs in, and how the session treats inbound stanzas.
#[derive(Clone, Copy)]
struct Login<'a> {
    jid: &'a BareJid,
    password: &'a str,
    resource: &'a str,
    options: SessionOptions,
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

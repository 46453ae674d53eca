//! What can go wrong talking to the XMPP server, and whether a request
//! certainly did not reach it.

use xmpp_parsers::stanza_error::StanzaError;

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

/// An XMPP failure as the register API answers it: 112, with a message
/// that names no JID or password.
impl From<XmppError> for crate::error::Error {
    fn from(e: XmppError) -> crate::error::Error {
        crate::error::Error::Xmpp(e.to_string())
    }
}

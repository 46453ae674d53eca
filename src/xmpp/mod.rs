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
//! - [`connect`]: RFC 6120 stream set-up: StartTLS, SASL, resource binding.
//! - [`session`]: the task that owns a stream, and the handles to it.
//! - [`error`]: what can go wrong, and whether a request certainly did not
//!   reach the server.
//! - [`adhoc`]: XEP-0050 ad-hoc commands: execute, continue, discover.
//! - [`admin`]: XEP-0133 service administration: add, delete, re-password a user.
//! - [`iq`]: RFC 6120 IQ semantics: which reply answers which request.
//! - [`roster`]: RFC 6121 roster management and presence subscriptions.

pub mod adhoc;
pub mod admin;
pub mod connect;
pub mod error;
pub mod iq;
pub mod roster;
pub mod session;

pub use connect::Connector;
pub use error::XmppError;
pub use session::{IqRequest, Session, SessionHandle};

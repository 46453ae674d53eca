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
//! - `stream`: the XML stream type set-up, stream management and sessions share.
//! - [`error`]: what can go wrong, and whether a request certainly did not
//!   reach the server.
//! - [`adhoc`]: XEP-0050 ad-hoc commands: execute, continue, discover.
//! - [`admin`]: XEP-0133 service administration: add, delete, re-password a user.
//! - [`chat`]: one-to-one messages with receipts (XEP-0184), chat states
//!   (XEP-0085), markers (XEP-0333), OOB media (XEP-0066), locations
//!   (XEP-0080) and delays (XEP-0203).
//! - [`iq`]: RFC 6120 IQ semantics: which reply answers which request.
//! - [`mam`]: XEP-0313 message archive queries, paged (XEP-0059).
//! - [`presence`]: RFC 6121 availability and subscription requests with a note.
//! - [`roster`]: RFC 6121 roster management and presence subscriptions.
//! - [`sm`]: XEP-0198 stream management: acknowledging what was handled.
//! - [`vcard`]: XEP-0054 vCards: the profile plain clients read.
//! - [`blocking`]: XEP-0191 blocking command.

pub mod adhoc;
pub mod admin;
pub mod blocking;
pub mod chat;
pub mod connect;
pub mod error;
pub mod iq;
pub mod mam;
pub mod presence;
pub mod roster;
pub mod session;
pub mod sm;
pub mod software;
mod stream;
pub mod vcard;

pub use connect::Connector;
pub use error::XmppError;
pub use session::{Ended, Inbound, IqRequest, Session, SessionHandle, SessionOptions};

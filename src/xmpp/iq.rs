//! RFC 6120 §8.2.3: IQ semantics: which reply answers which request.
//!
//! A reply is matched by **(sender, id)**, never by id alone: any user of the
//! server can address a stanza to one of jidgate's resources, so an id that
//! matches proves nothing by itself. RFC 6120 §8.1.2.1 fixes who may answer:
//!
//! - a request sent **without `to`** is handled by the server for our
//!   account, and its reply comes with no `from`, with our bare JID, or with
//!   our full JID;
//! - otherwise the reply's `from` must be exactly the `to` we sent (after
//!   JID normalisation), e.g. the server's domain for XEP-0133 admin
//!   commands.
//!
//! Ids are also unpredictable (96 random bits), so a forger does not even
//! know which ids are waiting.

use std::collections::HashMap;

use tokio::sync::oneshot;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::{FullJid, Jid};
use xmpp_parsers::minidom::Element;
use xmpp_parsers::ns;
use xmpp_parsers::stanza::Stanza;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};

use super::XmppError;

/// The outcome a waiter receives: the result payload, or the error.
pub type Reply = Result<Option<Element>, XmppError>;

/// A fresh IQ id: `jg` and 96 random bits (base64url), unguessable.
pub fn new_id() -> String {
    format!("jg{}", crate::crypto::random_token::<12>())
}

/// True if a reply `from` may answer a request we sent `to`, on a session
/// bound as `me` (RFC 6120 §8.1.2.1).
pub fn reply_is_from(sent_to: Option<&Jid>, from: Option<&Jid>, me: &FullJid) -> bool {
    match (sent_to, from) {
        (None, None) => true,
        (None, Some(from)) => *from == me.to_bare() || *from == *me,
        (Some(to), Some(from)) => to == from,
        // Only the server itself answers without `from`, and only for
        // requests it handled for our account (sent without `to`).
        (Some(_), None) => false,
    }
}

struct Waiting {
    to: Option<Jid>,
    reply: oneshot::Sender<Reply>,
}

/// The requests of one session that wait for their reply.
pub struct PendingIqs {
    me: FullJid,
    waiting: HashMap<String, Waiting>,
}

/// What [`PendingIqs::complete`] did with a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched {
    /// It answered a waiting request.
    Answered,
    /// No request waits under this (sender, id): dropped.
    Unmatched,
}

impl PendingIqs {
    pub fn new(me: FullJid) -> PendingIqs {
        PendingIqs {
            me,
            waiting: HashMap::new(),
        }
    }

    /// Records a request sent with `id` to `to`. Requests whose caller gave
    /// up (timed out) are forgotten on the way, so the table stays as small
    /// as what is really waiting.
    pub fn expect(&mut self, id: String, to: Option<Jid>, reply: oneshot::Sender<Reply>) {
        self.waiting.retain(|_, w| !w.reply.is_closed());
        self.waiting.insert(id, Waiting { to, reply });
    }

    /// Hands a result or error to the request it answers. A reply whose
    /// sender does not fit is dropped and the request keeps waiting for the
    /// real one. Requests (`get`, `set`) are not replies: `Unmatched`.
    pub fn complete(&mut self, iq: Iq) -> Matched {
        let (from, id, outcome) = match iq {
            Iq::Result {
                from, id, payload, ..
            } => (from, id, Ok(payload)),
            Iq::Error {
                from, id, error, ..
            } => (from, id, Err(XmppError::Stanza(Box::new(error)))),
            Iq::Get { .. } | Iq::Set { .. } => return Matched::Unmatched,
        };
        let fits = self
            .waiting
            .get(&id)
            .is_some_and(|w| reply_is_from(w.to.as_ref(), from.as_ref(), &self.me));
        if !fits {
            return Matched::Unmatched;
        }
        if let Some(w) = self.waiting.remove(&id) {
            let _ = w.reply.send(outcome);
        }
        Matched::Answered
    }

    /// Requests still waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Fails every waiting request with [`XmppError::Closed`].
    pub fn close(&mut self) {
        for (_, w) in self.waiting.drain() {
            let _ = w.reply.send(Err(XmppError::Closed));
        }
    }
}

/// Completes a waiting IQ (matched by sender and id, see [`iq`]), or answers
/// IQ requests: pings get a result, roster pushes from the server a result,
/// everything else service-unavailable.
/// Returns the reply to send and the stanza to hand to the reader.
pub(super) fn answer_incoming(
    incoming: Iq,
    me: &FullJid,
    pending: &mut PendingIqs,
) -> (Option<Iq>, Option<Stanza>) {
    match incoming {
        reply @ (Iq::Result { .. } | Iq::Error { .. }) => {
            if pending.complete(reply) == Matched::Unmatched {
                // A late answer after a timeout, or a forgery: never an
                // answer to anything (debug only: a flood must not flood
                // the log).
                tracing::debug!("dropped an IQ reply that answers no request of ours");
            }
            (None, None)
        }
        Iq::Get {
            from, id, payload, ..
        } => {
            if payload.is("ping", ns::PING) {
                (from.map(|from| Iq::empty_result(from, id)), None)
            } else {
                (Some(error_reply(from, id)), None)
            }
        }
        Iq::Set {
            from, id, payload, ..
        } => {
            // RFC 6121 §2.1.6: a roster push comes from the server (no
            // from, or our own bare JID); anyone else's is ignored.
            let from_server = from.as_ref().is_none_or(|f| *f == me.to_bare());
            if payload.is("query", ns::ROSTER) && from_server {
                let push = Stanza::Iq(Iq::Set {
                    from: from.clone(),
                    to: None,
                    id: id.clone(),
                    payload,
                });
                // A push from the server carries no from, or our own bare JID.
                let reply = Iq::Result {
                    from: None,
                    to: from,
                    id,
                    payload: None,
                };
                (Some(reply), Some(push))
            } else {
                (Some(error_reply(from, id)), None)
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

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};

    fn jid(s: &str) -> Jid {
        Jid::new(s).unwrap()
    }

    fn me() -> FullJid {
        FullJid::new("admin@example.test/jidgate-admin").unwrap()
    }

    fn result(from: Option<&str>, id: &str) -> Iq {
        Iq::Result {
            from: from.map(jid),
            to: Some(me().into()),
            id: id.into(),
            payload: None,
        }
    }

    #[test]
    fn a_request_without_to_is_answered_by_the_server_for_our_account() {
        let me = me();
        assert!(reply_is_from(None, None, &me));
        assert!(reply_is_from(None, Some(&jid("admin@example.test")), &me));
        assert!(reply_is_from(
            None,
            Some(&jid("admin@example.test/jidgate-admin")),
            &me
        ));
        // Another resource of the same account, another user, the domain.
        assert!(!reply_is_from(
            None,
            Some(&jid("admin@example.test/other")),
            &me
        ));
        assert!(!reply_is_from(None, Some(&jid("d.x@example.test")), &me));
        assert!(!reply_is_from(None, Some(&jid("example.test")), &me));
    }

    #[test]
    fn a_request_with_to_is_answered_only_by_that_address() {
        let me = me();
        let domain = jid("example.test");
        assert!(reply_is_from(
            Some(&domain),
            Some(&jid("example.test")),
            &me
        ));
        // JIDs compare normalised.
        assert!(reply_is_from(
            Some(&domain),
            Some(&jid("EXAMPLE.test")),
            &me
        ));
        assert!(!reply_is_from(Some(&domain), None, &me));
        assert!(!reply_is_from(
            Some(&domain),
            Some(&jid("d.attacker@example.test/x")),
            &me
        ));
        assert!(!reply_is_from(
            Some(&domain),
            Some(&jid("admin@example.test")),
            &me
        ));
        assert!(!reply_is_from(Some(&domain), Some(&jid("other.test")), &me));
        let peer = jid("d.x@example.test");
        assert!(reply_is_from(
            Some(&peer),
            Some(&jid("d.x@example.test")),
            &me
        ));
        assert!(!reply_is_from(
            Some(&peer),
            Some(&jid("d.x@example.test/r")),
            &me
        ));
    }

    #[test]
    fn a_forged_reply_is_dropped_and_the_real_one_still_answers() {
        let mut pending = PendingIqs::new(me());
        let (tx, mut rx) = oneshot::channel();
        pending.expect("jgABC".into(), Some(jid("example.test")), tx);

        // Forged: the right id from a user, and an error from a user.
        let forged = result(Some("d.attacker@example.test/x"), "jgABC");
        assert_eq!(pending.complete(forged), Matched::Unmatched);
        let forged_error = Iq::Error {
            from: Some(jid("d.attacker@example.test/x")),
            to: None,
            id: "jgABC".into(),
            error: StanzaError::new(ErrorType::Cancel, DefinedCondition::Conflict, "en", ""),
            payload: None,
        };
        assert_eq!(pending.complete(forged_error), Matched::Unmatched);
        // No `from` for a request that had a `to`.
        assert_eq!(pending.complete(result(None, "jgABC")), Matched::Unmatched);
        assert!(rx.try_recv().is_err(), "nothing was delivered");
        assert_eq!(pending.len(), 1);

        // The server's real answer.
        assert_eq!(
            pending.complete(result(Some("example.test"), "jgABC")),
            Matched::Answered
        );
        assert!(matches!(rx.try_recv(), Ok(Ok(None))));
        assert!(pending.is_empty());
        // A second reply with the same id finds nothing.
        assert_eq!(
            pending.complete(result(Some("example.test"), "jgABC")),
            Matched::Unmatched
        );
    }

    #[test]
    fn an_error_reply_is_delivered_as_a_stanza_error() {
        let mut pending = PendingIqs::new(me());
        let (tx, mut rx) = oneshot::channel();
        pending.expect("jg1".into(), None, tx);
        let error = Iq::Error {
            from: None,
            to: None,
            id: "jg1".into(),
            error: StanzaError::new(ErrorType::Cancel, DefinedCondition::ItemNotFound, "en", ""),
            payload: None,
        };
        assert_eq!(pending.complete(error), Matched::Answered);
        assert!(matches!(rx.try_recv(), Ok(Err(XmppError::Stanza(_)))));
    }

    #[test]
    fn requests_whose_caller_gave_up_are_forgotten() {
        let mut pending = PendingIqs::new(me());
        let (tx, rx) = oneshot::channel();
        pending.expect(new_id(), None, tx);
        drop(rx);
        let (tx, _rx) = oneshot::channel();
        pending.expect(new_id(), None, tx);
        assert_eq!(pending.len(), 1);
    }

    #[test]
    fn closing_fails_every_waiting_request() {
        let mut pending = PendingIqs::new(me());
        let (tx, mut rx) = oneshot::channel();
        pending.expect(new_id(), None, tx);
        pending.close();
        assert!(matches!(rx.try_recv(), Ok(Err(XmppError::Closed))));
    }

    #[test]
    fn ids_are_random_and_long() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        // "jg" + 16 base64url characters = 96 bits.
        assert_eq!(a.len(), 18, "{a}");
        assert!(
            a[2..]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }
}

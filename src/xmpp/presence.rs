//! RFC 6121 presence as the facade uses it: availability (§4) and
//! subscription requests carrying a note (§3.1.1 allows a `<status/>` in a
//! `subscribe`; plain clients show it as the request's message).

use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::presence::{Presence, Type};

/// A subscription request to `to` with `note` as its status text.
pub fn subscribe(to: &BareJid, note: &str) -> Presence {
    let mut p = Presence::subscribe().with_to(Jid::from(to.clone()));
    if !note.is_empty() {
        p.set_status(String::new(), note.to_owned());
    }
    p
}

/// A subscription answer or cancellation (`subscribed`, `unsubscribed`,
/// `unsubscribe`) to `to`.
pub fn directed(type_: Type, to: &BareJid) -> Presence {
    Presence::new(type_).with_to(Jid::from(to.clone()))
}

/// What an inbound presence says, from whom (bare JID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Online(BareJid),
    Offline(BareJid),
    Subscribe { from: BareJid, note: String },
    Subscribed(BareJid),
    Unsubscribed(BareJid),
    Unsubscribe(BareJid),
}

/// Reads an inbound presence (errors and probes are `None`).
pub fn read(p: &Presence) -> Option<Seen> {
    let from = p.from.as_ref()?.to_bare();
    Some(match p.type_ {
        Type::None => Seen::Online(from),
        Type::Unavailable => Seen::Offline(from),
        Type::Subscribe => Seen::Subscribe {
            from,
            note: p.statuses.values().next().cloned().unwrap_or_default(),
        },
        Type::Subscribed => Seen::Subscribed(from),
        Type::Unsubscribed => Seen::Unsubscribed(from),
        Type::Unsubscribe => Seen::Unsubscribe(from),
        Type::Error | Type::Probe => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_request_carries_its_note() {
        let to = BareJid::new("b@example.test").unwrap();
        let mut p = subscribe(&to, "hi <there>");
        p.from = Some(Jid::new("a@example.test/x").unwrap());
        assert_eq!(
            read(&p),
            Some(Seen::Subscribe {
                from: BareJid::new("a@example.test").unwrap(),
                note: "hi <there>".into()
            })
        );
    }
}

//! One-to-one chat messages (RFC 6121 §5, `type='chat'`) with what the
//! facade carries on them:
//!
//! - XEP-0184 message delivery receipts (`<request/>`, `<received id/>`);
//! - XEP-0085 chat state notifications (typing);
//! - XEP-0333 displayed markers (`<markable/>`, `<displayed id/>`);
//! - XEP-0066 out-of-band data (`<x xmlns='jabber:x:oob'><url/>`) for
//!   media, so any client shows a link;
//! - XEP-0080 user location (`<geoloc><lat/><lon/></geoloc>`) for
//!   locations;
//! - XEP-0334 processing hints (`<no-permanent-store/>` on receipts);
//! - XEP-0203 delayed delivery (offline messages carry `<delay stamp/>`);
//! - jidgate's own element for the media fields no XEP carries:
//!   `<media xmlns='urn:jidgate:media:0' type='image|voice|video|file|location'
//!   size='bytes' duration='ms' width='px' height='px' name='file name'/>`,
//!   every attribute but `type` optional.
//!
//! Every text goes into the stanza as text (the builder escapes it).

use xmpp_parsers::chatstates::ChatState;
use xmpp_parsers::delay::Delay;
use xmpp_parsers::displayed_markers::{Displayed, Markable};
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::message::{Id, Lang, Message, MessageType};
use xmpp_parsers::minidom::Element;
use xmpp_parsers::minidom::rxml::NcName;
use xmpp_parsers::oob::Oob;
use xmpp_parsers::receipts::{Received, Request};
use xmpp_parsers::stanza_id::StanzaId;

/// jidgate's media element namespace.
pub const MEDIA_NS: &str = "urn:jidgate:media:0";
/// XEP-0334 message processing hints.
pub const HINTS_NS: &str = "urn:xmpp:hints";
/// XEP-0080.
pub const GEOLOC_NS: &str = "http://jabber.org/protocol/geoloc";

/// What a message carries (seed 001/003 categories).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Image,
    Voice,
    Video,
    File,
    Location,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "text" => Kind::Text,
            "image" => Kind::Image,
            "voice" => Kind::Voice,
            "video" => Kind::Video,
            "file" => Kind::File,
            "location" => Kind::Location,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Image => "image",
            Kind::Voice => "voice",
            Kind::Video => "video",
            Kind::File => "file",
            Kind::Location => "location",
        }
    }
}

/// The media fields of a message (all optional but the URL, which is the
/// `content` of a media message).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Media {
    pub size: Option<u64>,
    pub duration: Option<u64>,
    pub width: Option<u64>,
    pub height: Option<u64>,
    pub name: Option<String>,
}

/// A chat message: its id, what it is, its text or URL, media fields and
/// location.
#[derive(Debug, Clone, PartialEq)]
pub struct Chat {
    pub id: String,
    pub kind: Kind,
    /// The text, or the media URL.
    pub content: String,
    pub media: Media,
    /// Latitude and longitude.
    pub location: Option<(f64, f64)>,
}

fn ncname(s: &str) -> NcName {
    NcName::try_from(s).expect("static attribute names are NCNames")
}

/// The stanza for `chat` to `to`, asking for a receipt and marked
/// displayable.
pub fn build(to: &BareJid, chat: &Chat) -> Message {
    let mut msg = Message::chat(Some(Jid::from(to.clone())));
    msg.id = Some(Id(chat.id.clone()));
    let body = match chat.location {
        Some((lat, lng)) if chat.content.is_empty() => format!("geo:{lat},{lng}"),
        _ => chat.content.clone(),
    };
    msg.bodies.insert(Lang::default(), body);
    if !matches!(chat.kind, Kind::Text | Kind::Location) {
        msg.payloads.push(
            Oob {
                url: chat.content.clone(),
                desc: chat.media.name.clone(),
            }
            .into(),
        );
    }
    if chat.kind != Kind::Text {
        let m = &chat.media;
        let mut media =
            Element::builder("media", MEDIA_NS).attr(ncname("type"), chat.kind.as_str());
        for (name, value) in [
            ("size", m.size),
            ("duration", m.duration),
            ("width", m.width),
            ("height", m.height),
        ] {
            if let Some(v) = value {
                media = media.attr(ncname(name), v.to_string());
            }
        }
        if let Some(n) = &m.name {
            media = media.attr(ncname("name"), n.as_str());
        }
        msg.payloads.push(media.build());
    }
    if let Some((lat, lng)) = chat.location {
        let geo = Element::builder("geoloc", GEOLOC_NS)
            .append(Element::builder("lat", GEOLOC_NS).append(lat.to_string()))
            .append(Element::builder("lon", GEOLOC_NS).append(lng.to_string()))
            .build();
        msg.payloads.push(geo);
    }
    msg.payloads.push(Request.into());
    msg.payloads.push(Markable.into());
    msg.payloads.push(ChatState::Active.into());
    msg
}

/// A receipt (XEP-0184) for message `id` to `to`, with the XEP-0334 hint
/// `<no-permanent-store/>`: the XMPP server still keeps it in offline
/// storage for a sender who is away, but does not archive it. Prosody's
/// mod_mam archives receipts unless told so (ejabberd archives only
/// messages with a body): archive writes nobody reads, since history
/// (`message.read`) never shows receipts.
pub fn receipt(to: &BareJid, id: &str) -> Message {
    let mut msg =
        Message::chat(Some(Jid::from(to.clone()))).with_payload(Received { id: id.to_owned() });
    msg.payloads
        .push(Element::builder("no-permanent-store", HINTS_NS).build());
    msg
}

/// A displayed marker (XEP-0333) for message `id` to `to`.
pub fn displayed(to: &BareJid, id: &str) -> Message {
    Message::chat(Some(Jid::from(to.clone()))).with_payload(Displayed {
        id: Id(id.to_owned()),
    })
}

/// A chat state (XEP-0085) to `to`.
pub fn state(to: &BareJid, state: ChatState) -> Message {
    Message::chat(Some(Jid::from(to.clone()))).with_payload(state)
}

/// What an inbound message says.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A chat message; `delayed` is its original time (unix seconds) when
    /// the server stored it (XEP-0203); `wants_receipt` when it asked for
    /// one.
    Chat {
        chat: Chat,
        delayed: Option<i64>,
        wants_receipt: bool,
    },
    Receipt(String),
    Displayed(String),
    State(ChatState),
}

/// The id under which `archive`'s owner (a bare JID: the user's own
/// archive) stored the message (XEP-0359 `<stanza-id by=…/>`, which the
/// server adds when it archives a message for the recipient, XEP-0313);
/// a stanza-id by anyone else is ignored. A sender cannot forge one: both
/// servers' archive modules strip stanza-ids in their own domain's name
/// from what they route (Prosody's mod_mam, ejabberd's mod_mam).
pub fn archive_id(msg: &Message, archive: &BareJid) -> Option<String> {
    msg.payloads
        .iter()
        .filter(|p| p.is("stanza-id", xmpp_parsers::ns::SID))
        .filter_map(|p| StanzaId::try_from(p.clone()).ok())
        .find(|s| s.by.resource().is_none() && s.by.to_bare() == *archive)
        .map(|s| s.id)
}

/// Reads an inbound `chat` or `normal` message (anything else is `None`).
/// `fallback_id` names a message that came without an id.
pub fn read(msg: &Message, fallback_id: impl FnOnce() -> String) -> Option<Incoming> {
    if !matches!(msg.type_, MessageType::Chat | MessageType::Normal) {
        return None;
    }
    let find = |name: &str, ns: &str| msg.payloads.iter().find(|p| p.is(name, ns));
    if let Some(r) = find("received", xmpp_parsers::ns::RECEIPTS) {
        return r.attr("id").map(|id| Incoming::Receipt(id.to_owned()));
    }
    if let Some(d) = find("displayed", xmpp_parsers::ns::DISPLAYED_MARKERS) {
        return d.attr("id").map(|id| Incoming::Displayed(id.to_owned()));
    }
    let Some((_, body)) = msg.get_best_body(vec![]) else {
        return msg
            .payloads
            .iter()
            .find_map(|p| ChatState::try_from(p.clone()).ok())
            .map(Incoming::State);
    };
    let media = find("media", MEDIA_NS);
    let kind = media
        .and_then(|m| m.attr("type"))
        .and_then(Kind::parse)
        .unwrap_or(Kind::Text);
    let number = |name: &str| {
        media
            .and_then(|m| m.attr(name))
            .and_then(|v| v.parse().ok())
    };
    let oob_url = find("x", xmpp_parsers::ns::OOB)
        .and_then(|x| x.get_child("url", xmpp_parsers::ns::OOB))
        .map(|u| u.text());
    let location = find("geoloc", GEOLOC_NS).and_then(|g| {
        let lat = g.get_child("lat", GEOLOC_NS)?.text().trim().parse().ok()?;
        let lon = g.get_child("lon", GEOLOC_NS)?.text().trim().parse().ok()?;
        Some((lat, lon))
    });
    let content = match kind {
        Kind::Text => body.clone(),
        Kind::Location => String::new(),
        _ => oob_url.unwrap_or_else(|| body.clone()),
    };
    let delayed = msg
        .payloads
        .iter()
        .find_map(|p| Delay::try_from(p.clone()).ok())
        .map(|d| d.stamp.0.timestamp());
    Some(Incoming::Chat {
        chat: Chat {
            id: msg
                .id
                .as_ref()
                .map(|i| i.0.clone())
                .unwrap_or_else(fallback_id),
            kind,
            content,
            media: Media {
                size: number("size"),
                duration: number("duration"),
                width: number("width"),
                height: number("height"),
                name: media.and_then(|m| m.attr("name")).map(str::to_owned),
            },
            location,
        },
        delayed,
        wants_receipt: find("request", xmpp_parsers::ns::RECEIPTS).is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(chat: Chat) -> Chat {
        let to = BareJid::new("b@example.test").unwrap();
        let el: Element = build(&to, &chat).into();
        let msg = Message::try_from(el).unwrap();
        match read(&msg, || "none".into()).unwrap() {
            Incoming::Chat {
                chat,
                wants_receipt,
                delayed,
            } => {
                assert!(wants_receipt);
                assert_eq!(delayed, None);
                chat
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_archive_id_is_the_one_the_users_own_archive_gave() {
        let me = BareJid::new("b@example.test").unwrap();
        let xml = "<message xmlns='jabber:client' type='chat' from='a@example.test/x' id='m1'>\
            <body>hi</body>\
            <stanza-id xmlns='urn:xmpp:sid:0' by='a@example.test' id='theirs'/>\
            <stanza-id xmlns='urn:xmpp:sid:0' by='b@example.test/facade' id='forged'/>\
            <stanza-id xmlns='urn:xmpp:sid:0' by='b@example.test' id='ours'/></message>";
        let msg = Message::try_from(xml.parse::<Element>().unwrap()).unwrap();
        assert_eq!(archive_id(&msg, &me).as_deref(), Some("ours"));
        let other = BareJid::new("c@example.test").unwrap();
        assert_eq!(archive_id(&msg, &other), None);
    }

    #[test]
    fn every_kind_of_message_reads_back_as_it_was_built() {
        let text = Chat {
            id: "m1".into(),
            kind: Kind::Text,
            content: "<b>hi</b> & 'you'".into(),
            media: Media::default(),
            location: None,
        };
        assert_eq!(round_trip(text.clone()), text);
        let image = Chat {
            id: "m2".into(),
            kind: Kind::Image,
            content: "https://cdn.example/a.png".into(),
            media: Media {
                size: Some(123),
                width: Some(64),
                height: Some(32),
                name: Some("a <1>.png".into()),
                duration: None,
            },
            location: None,
        };
        assert_eq!(round_trip(image.clone()), image);
        let place = Chat {
            id: "m3".into(),
            kind: Kind::Location,
            content: String::new(),
            media: Media::default(),
            location: Some((30.5, 104.25)),
        };
        assert_eq!(round_trip(place.clone()), place);
    }

    #[test]
    fn a_receipt_reads_back_and_asks_not_to_be_archived() {
        let to = BareJid::new("b@example.test").unwrap();
        let el: Element = receipt(&to, "m<1>").into();
        assert!(el.has_child("no-permanent-store", HINTS_NS));
        let msg = Message::try_from(el).unwrap();
        assert_eq!(
            read(&msg, || "none".into()),
            Some(Incoming::Receipt("m<1>".into()))
        );
    }
}

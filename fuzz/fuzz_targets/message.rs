//! The chat and profile stanza builders: any message content, media name,
//! receipt id, nick or signature the facade accepts (every character one
//! XML can carry: `facade::functions::xml_char`) goes out as text,
//! serialized as the stream serializes it (xso), and reads back identical,
//! in the same structure: never as markup.
//!
//! Input: UTF-8 text, fields separated by NUL (which no accepted text
//! holds): content, media name, nick, signature.

#![no_main]

#[path = "common/iq_round_trip.rs"]
mod common;

use jidgate::facade::functions::xml_char;
use jidgate::xmpp::chat::{self, Chat, Incoming, Kind, Media};
use jidgate::xmpp::vcard::{self, Profile};
use libfuzzer_sys::fuzz_target;
use xmpp_parsers::jid::BareJid;
use xmpp_parsers::message::Message;
use xmpp_parsers::minidom::Element;

/// Serializes a message as the stream would and reads it back.
fn message_round_trip(msg: Message) -> Message {
    let bytes = xso::to_vec(&msg).expect("serializes");
    xso::from_bytes::<Message>(&bytes).expect("parses back")
}

fn chat_back(to: &BareJid, sent: &Chat) -> Chat {
    let built = chat::build(to, sent);
    let children = built.payloads.len();
    let back = message_round_trip(built);
    assert_eq!(back.payloads.len(), children, "nothing injected");
    match chat::read(&back, || "none".into()) {
        Some(Incoming::Chat { chat, .. }) => chat,
        other => panic!("came back as {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let fields: Vec<&str> = text.split('\0').collect();
    if fields.len() > 4 || !fields.iter().all(|f| f.chars().all(xml_char)) {
        return;
    }
    let field = |i: usize| fields.get(i).copied().unwrap_or("");
    let (content, name, nick, signature) = (field(0), field(1), field(2), field(3));
    let to = BareJid::new("p.abcdefgh@example.org").unwrap();

    // A text message, and a media message with a file name.
    let text = Chat {
        id: "m1".into(),
        kind: Kind::Text,
        content: content.to_owned(),
        media: Media::default(),
        location: None,
    };
    assert_eq!(chat_back(&to, &text), text);
    let file = Chat {
        id: "m2".into(),
        kind: Kind::File,
        content: content.to_owned(),
        media: Media {
            size: Some(1),
            name: Some(name.to_owned()),
            ..Media::default()
        },
        location: None,
    };
    assert_eq!(chat_back(&to, &file), file);

    // A receipt, with the text as its id.
    let back = message_round_trip(chat::receipt(&to, content));
    assert_eq!(
        chat::read(&back, String::new),
        Some(Incoming::Receipt(content.to_owned()))
    );

    // The profile as a vCard.
    let changes = Profile {
        nick: Some(nick.to_owned()),
        signature: Some(signature.to_owned()),
        ..Profile::default()
    };
    let empty = Element::builder("vCard", vcard::NS).build();
    let sent = vcard::merge(&empty, &changes);
    let children = sent.children().count();
    let back = common::iq_round_trip(sent);
    assert_eq!(back.children().count(), children, "nothing injected");
    let got = Profile::from_vcard(&back);
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    assert_eq!(got.nick, some(nick));
    assert_eq!(got.signature, some(signature));
});

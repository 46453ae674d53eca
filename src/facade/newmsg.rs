//! What a `newmsg` push carries, and the unread count it adds to: shared
//! by the pushes of the XMPP stream (`inbound`), of the catch-up from the
//! archive (`catchup`) and by history items (`functions::history`).

use serde_json::{Map, Value, json};

use super::live::Live;
use crate::xmpp::chat::Chat;

/// The `message` object of a `newmsg` push (and of history items).
pub fn message_json(chat: &Chat, uid: &str, time: i64, delayed: bool) -> Value {
    let mut m = Map::new();
    m.insert("msgid".into(), json!(chat.id));
    m.insert("uid".into(), json!(uid));
    m.insert("type".into(), json!(chat.kind.as_str()));
    m.insert("content".into(), json!(chat.content));
    m.insert("time".into(), json!(time));
    if delayed {
        m.insert("delayed".into(), json!(true));
    }
    let media = &chat.media;
    for (k, v) in [
        ("size", media.size),
        ("duration", media.duration),
        ("width", media.width),
        ("height", media.height),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    if let Some(n) = &media.name {
        m.insert("name".into(), json!(n));
    }
    if let Some((lat, lng)) = chat.location {
        m.insert("lat".into(), json!(lat));
        m.insert("lng".into(), json!(lng));
    }
    Value::Object(m)
}

/// One more unread message `msgid` from `uid`, counted beside delivery,
/// never in its way; once per msgid (the server may deliver a message
/// again, and a catch-up may push it too).
pub fn count_unread(live: &Live, uid: &str, msgid: &str) {
    live.facade.unread.add(live.account.id, uid, msgid);
}

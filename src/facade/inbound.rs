//! The task reading a facade session's XMPP stream, and inbound stanzas
//! as pushes: chat messages (`newmsg`), receipts
//! (`msgack`), chat states (`typing`), markers (`read`), presence
//! (`presence`) and subscriptions (`event`). A stanza that becomes a push
//! is handled (for XEP-0198) when the phone acknowledges the push; any
//! other at once.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::BareJid;
use xmpp_parsers::message::{Message, MessageType};
use xmpp_parsers::presence::Type as PresenceType;
use xmpp_parsers::roster::{Ask, Roster, Subscription};
use xmpp_parsers::stanza::Stanza;

use super::delivery::Out;
use super::live::{Live, lock};
use crate::clock::now;
use crate::db::facade as store;
use crate::xmpp::chat::{self, Chat, Incoming};
use crate::xmpp::presence::{self, Seen};
use crate::xmpp::{Ended, Inbound, Session};

/// Reads the XMPP stream until it ends or the session is stopped.
pub async fn read(live: Arc<Live>, mut session: Session) {
    loop {
        tokio::select! {
            _ = live.stop.cancelled() => break,
            inbound = session.next_inbound() => match inbound {
                None => break,
                Some(i) => handle(&live, i).await,
            },
        }
    }
    let ended = session.handle().ended();
    session.close().await;
    live.facade.forget(&live);
    if live.stop.is_cancelled() {
        return;
    }
    live.stop.cancel();
    let (type_, data) = match ended {
        Some(Ended::Conflict) => ("anotherlogin", json!({"reason": "another login"})),
        _ => ("session_end", json!({"reason": "the XMPP session ended"})),
    };
    live.delivery.push(type_, &data, None, None).await;
    live.delivery.send(Out::Close);
}

/// Turns one inbound stanza into what the phone should see.
pub async fn handle(live: &Arc<Live>, inbound: Inbound) {
    let Inbound { seq, stanza } = inbound;
    let pushed = match stanza {
        Stanza::Message(m) => message(live, seq, m).await,
        Stanza::Presence(p) => match presence::read(&p) {
            Some(seen) => presence_seen(live, seq, seen).await,
            None => false,
        },
        Stanza::Iq(Iq::Set { payload, .. }) => {
            if let Ok(r) = Roster::try_from(payload) {
                let mut roster = lock(&live.roster);
                for item in r.items {
                    if item.subscription == Subscription::Remove {
                        roster.remove(&item.jid);
                    } else {
                        roster.insert(item.jid.clone(), item);
                    }
                }
            }
            false
        }
        Stanza::Iq(_) => false,
    };
    if !pushed {
        live.xmpp.handled(seq);
    }
}

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

async fn message(live: &Arc<Live>, seq: u64, m: Message) -> bool {
    let Some(from) = m.from.as_ref().map(|f| f.to_bare()) else {
        return false;
    };
    if m.type_ == MessageType::Error {
        let Some(id) = &m.id else { return false };
        let uid = live.names.uid_of(live.app(), &from).await;
        let data = json!({"uid": uid, "msgid": id.0});
        live.delivery.push("msgfail", &data, Some(seq), None).await;
        return true;
    }
    let Some(incoming) = chat::read(&m, || format!("x-{seq}-{}", now())) else {
        return false;
    };
    let uid = live.names.uid_of(live.app(), &from).await;
    let (type_, data, receipt) = match incoming {
        Incoming::Chat {
            chat,
            delayed,
            wants_receipt,
        } => {
            // Counted beside delivery, never in its way.
            let (db, id, peer) = (live.app().db.clone(), live.account.id, uid.clone());
            tokio::spawn(async move {
                if let Err(e) = store::add_unread(&db, id, &peer).await {
                    tracing::warn!(error = %e, "unread count not kept");
                }
            });
            let time = delayed.unwrap_or_else(now);
            let data = json!({ "message": message_json(&chat, &uid, time, delayed.is_some()) });
            let receipt = wants_receipt.then(|| (from.clone(), chat.id.clone()));
            ("newmsg", data, receipt)
        }
        Incoming::Receipt(id) => ("msgack", json!({"uid": uid, "msgid": id}), None),
        Incoming::Displayed(id) => ("read", json!({"uid": uid, "msgid": id}), None),
        Incoming::State(state) => {
            let state = format!("{state:?}").to_lowercase();
            ("typing", json!({"uid": uid, "state": state}), None)
        }
    };
    live.delivery.push(type_, &data, Some(seq), receipt).await;
    true
}

async fn presence_seen(live: &Arc<Live>, seq: u64, seen: Seen) -> bool {
    let app = live.app();
    match seen {
        Seen::Online(from) | Seen::Offline(from) if from == live.me => false,
        Seen::Online(from) => online(live, seq, from, true).await,
        Seen::Offline(from) => online(live, seq, from, false).await,
        Seen::Subscribe { from, note } => {
            // Our own request coming back the other way (we asked first):
            // approve without asking the user again.
            let asked = live.roster_item(&from).is_some_and(|i| {
                i.ask == Ask::Subscribe
                    || matches!(i.subscription, Subscription::To | Subscription::Both)
            });
            if asked {
                let handle = live.xmpp.clone();
                let answer = presence::directed(PresenceType::Subscribed, &from);
                // Never wait on the session from its own reader.
                tokio::spawn(async move { handle.send(answer).await });
                return false;
            }
            let uid = live.names.uid_of(app, &from).await;
            event(live, seq, "add_friend", &uid, &note).await
        }
        Seen::Subscribed(from) => {
            let uid = live.names.uid_of(app, &from).await;
            event(live, seq, "accept_friend", &uid, "").await
        }
        Seen::Unsubscribed(from) => {
            let uid = live.names.uid_of(app, &from).await;
            event(live, seq, "reject_friend", &uid, "").await
        }
        Seen::Unsubscribe(from) => {
            let uid = live.names.uid_of(app, &from).await;
            event(live, seq, "del_friend", &uid, "").await
        }
    }
}

async fn online(live: &Arc<Live>, seq: u64, from: BareJid, on: bool) -> bool {
    let t = now();
    let changed = lock(&live.online)
        .insert(from.clone(), (on, t))
        .map(|(o, _)| o)
        != Some(on);
    if !changed {
        return false;
    }
    let uid = live.names.uid_of(live.app(), &from).await;
    let data = json!({"uid": uid, "online": on, "time": t});
    live.delivery.push("presence", &data, Some(seq), None).await;
    true
}

/// Records a friend event (a repeated request keeps its first `eid`) and
/// pushes it.
async fn event(live: &Arc<Live>, seq: u64, type_: &str, uid: &str, note: &str) -> bool {
    let db = &live.app().db;
    let t = now();
    let eid = match store::add_event_once(db, live.account.id, type_, uid, note, t).await {
        Ok(eid) => eid,
        Err(e) => {
            tracing::warn!(error = %e, "friend event not recorded");
            0
        }
    };
    let data =
        json!({"event": {"type": type_, "eid": eid, "uid": uid, "note": note, "create_time": t}});
    live.delivery.push("event", &data, Some(seq), None).await;
    true
}

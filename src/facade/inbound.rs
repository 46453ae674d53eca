//! The task reading a facade session's XMPP stream (and logging in again
//! when it drops), and inbound stanzas
//! as pushes: chat messages (`newmsg`), receipts
//! (`msgack`), chat states (`typing`), markers (`read`), presence
//! (`presence`) and subscriptions (`event`). A stanza that becomes a push
//! is handled (for XEP-0198) when the phone acknowledges the push; any
//! other at once. While the push queue is full, chat states are dropped
//! and a contact's presence replaces its older one still waiting
//! (`facade::delivery`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::BareJid;
use xmpp_parsers::message::{Message, MessageType};
use xmpp_parsers::presence::Type as PresenceType;
use xmpp_parsers::roster::{Ask, Roster, Subscription};
use xmpp_parsers::stanza::Stanza;

use super::catchup;
use super::delivery::{Origin, Out};
use super::envelope::errno;
use super::live::{Live, lock};
use super::newmsg::{count_unread, message_json};
use crate::backoff::Backoff;
use crate::clock::now;
use crate::db::facade as store;
use crate::xmpp::chat::{self, Incoming};
use crate::xmpp::presence::{self, Seen};
use crate::xmpp::{Ended, Inbound, Session};

/// Reads the XMPP stream until the session is stopped. A stream that
/// drops (not a conflict, not our own stop) is logged in again with
/// backoff ([`reconnect`]); a conflict (another login) ends the session
/// with push `anotherlogin`.
pub async fn read(live: Arc<Live>, mut session: Session) {
    let mut generation = live.generation();
    loop {
        loop {
            tokio::select! {
                _ = live.stop.cancelled() => break,
                inbound = session.next_inbound() => match inbound {
                    None => break,
                    // Boxed here and below: this task lives as long as the
                    // session, and a future is as large as its largest
                    // state; inline, handling a stanza or logging in again
                    // made every idle session's task about 17 KB.
                    Some(i) => Box::pin(handle(&live, generation, i)).await,
                },
            }
        }
        let ended = session.handle().ended();
        Box::pin(session.close()).await;
        if live.stop.is_cancelled() {
            break;
        }
        live.dropped();
        if ended == Some(Ended::Conflict) {
            let data = json!({"reason": "another login"});
            Box::pin(finish(&live, "anotherlogin", &data)).await;
            break;
        }
        if let Some(Ended::StreamError(e)) = &ended
            && FINAL.contains(&e.as_str())
        {
            let data = json!({"reason": format!("the XMPP server ended the session: {e}")});
            Box::pin(finish(&live, "session_end", &data)).await;
            break;
        }
        match Box::pin(reconnect(&live, ended)).await {
            Ok((next, g)) => (session, generation) = (next, g),
            Err((type_, data)) => {
                if !live.stop.is_cancelled() {
                    Box::pin(finish(&live, type_, &data)).await;
                }
                break;
            }
        }
    }
    catchup::ended(&live).await;
    live.facade.forget(&live);
}

/// Stream errors after which logging in again would not help: the
/// server's queue of stanzas the phone did not acknowledge overflowed
/// (Prosody's mod_smacks: `resource-constraint`; it would fill again), or
/// the server refuses the user.
const FINAL: [&str; 3] = ["ResourceConstraint", "NotAuthorized", "PolicyViolation"];

/// Ends the session with a last push and closes the socket.
async fn finish(live: &Live, type_: &str, data: &Value) {
    live.stop.cancel();
    live.delivery.push(type_, data, Origin::default()).await;
    live.delivery.send(Out::Close);
}

/// Logs in again after a drop: push `xmpp_state` `reconnecting`, then
/// attempts with exponential backoff and jitter for at most
/// `facade.reconnect_timeout`; on success initial presence and push
/// `xmpp_state` `connected`. Gives up at once if the account is gone, its
/// JID password refused, or another login of the user took over on this
/// instance; what to push then is the error.
async fn reconnect(
    live: &Arc<Live>,
    ended: Option<Ended>,
) -> Result<(Session, u64), (&'static str, Value)> {
    let cfg = &live.app().config.facade;
    let reason = match ended {
        Some(Ended::StreamError(e)) => format!("stream error: {e}"),
        _ => "connection lost".to_owned(),
    };
    let data = json!({"state": "reconnecting", "reason": reason});
    live.delivery
        .push("xmpp_state", &data, Origin::default())
        .await;
    let started = tokio::time::Instant::now();
    let give_up = started + Duration::from_secs(cfg.reconnect_timeout);
    let mut backoff = Backoff::new(
        Duration::from_millis(cfg.reconnect_delay_ms),
        Duration::from_millis(cfg.reconnect_max_delay_ms),
    );
    let gone = || {
        (
            "session_end",
            json!({"reason": "the XMPP server stayed unreachable"}),
        )
    };
    loop {
        let wait = backoff.next_delay();
        if tokio::time::Instant::now() + wait > give_up {
            return Err(gone());
        }
        tokio::select! {
            _ = live.stop.cancelled() => return Err(gone()),
            _ = tokio::time::sleep(wait) => {}
        }
        if live.facade.replaced(live) {
            return Err(("anotherlogin", json!({"reason": "another login"})));
        }
        let attempted = now();
        let attempt = tokio::select! {
            _ = live.stop.cancelled() => return Err(gone()),
            a = tokio::time::timeout_at(give_up, live.relogin()) => a,
        };
        match attempt {
            Err(_) => return Err(gone()),
            Ok(Ok((session, generation))) => {
                let sweep = catchup::sweep_begin(live, session.software(), attempted);
                let found = catchup::collect(live).await;
                let announced = live.announce().await;
                catchup::deliver(live, found);
                catchup::sweep(live, sweep);
                if announced.is_err() {
                    // Dropped again at once: the next round notices.
                    tracing::info!("facade XMPP stream dropped right after reconnecting");
                }
                live.release_receipts();
                let data = json!({"state": "connected"});
                live.delivery
                    .push("xmpp_state", &data, Origin::default())
                    .await;
                return Ok((session, generation));
            }
            Ok(Err(f)) if f.errno == errno::SESSION || f.errno == errno::JID_PASSWORD => {
                let data = json!({"reason": format!("cannot log in again: {}", f.error)});
                return Err(("session_end", data));
            }
            Ok(Err(f)) => {
                tracing::debug!(error = %f.error, "facade XMPP reconnect attempt failed");
            }
        }
    }
}

/// Turns one inbound stanza of stream `generation` into what the phone
/// should see.
pub async fn handle(live: &Arc<Live>, generation: u64, inbound: Inbound) {
    let Inbound { seq, stanza } = inbound;
    let seq = Live::tag(generation, seq);
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
        live.handled(seq);
    }
}

async fn message(live: &Arc<Live>, seq: u64, m: Message) -> bool {
    let Some(from) = m.from.as_ref().map(|f| f.to_bare()) else {
        return false;
    };
    if m.type_ == MessageType::Error {
        let Some(id) = &m.id else { return false };
        let uid = live.names.uid_of(live.app(), &from).await;
        let data = json!({"uid": uid, "msgid": id.0});
        live.delivery
            .push("msgfail", &data, Origin::stanza(seq))
            .await;
        return true;
    }
    let archive_id = chat::archive_id(&m, &live.me);
    let fallback = || {
        archive_id
            .clone()
            .unwrap_or_else(|| format!("x-{seq}-{}", now()))
    };
    let Some(incoming) = chat::read(&m, fallback) else {
        return false;
    };
    let uid = live.names.uid_of(live.app(), &from).await;
    let mut origin = Origin::stanza(seq);
    let (type_, data) = match incoming {
        Incoming::Chat {
            chat,
            delayed,
            wants_receipt,
        } => {
            if let Some(a) = archive_id {
                // A catch-up from the archive pushes it already (and
                // the archive keeps it until the phone has it).
                if live.catchup.claimed(&a, &from, &chat.id) {
                    return false;
                }
                // The push queue is full: the archive keeps it for a
                // catch-up, and the stream goes on.
                if catchup::leave_to_archive(live) {
                    catchup::fall_behind(live);
                    return false;
                }
                origin.moves_cursor = live.catchup.moves_cursor();
                live.catchup.pushed_live(&a, &from, &chat.id);
                origin.archive = Some(a);
            }
            count_unread(live, &uid, &chat.id);
            let time = delayed.unwrap_or_else(now);
            let data = json!({ "message": message_json(&chat, &uid, time, delayed.is_some()) });
            origin.receipt = wants_receipt.then(|| (from.clone(), chat.id.clone()));
            ("newmsg", data)
        }
        Incoming::Receipt(id) => ("msgack", json!({"uid": uid, "msgid": id})),
        Incoming::Displayed(id) => {
            // Cumulative (XEP-0333: everything up to `id` was seen):
            // waiting for room, a contact's newer marker replaces its
            // older, whose stanza is then settled.
            let data = json!({"uid": uid, "msgid": id});
            push_replacing(live, "read", &data, origin, format!("read\n{from}")).await;
            return true;
        }
        Incoming::State(state) => {
            // Of the moment only: not worth a place in a full queue.
            if live.delivery.is_full() {
                return false;
            }
            let state = format!("{state:?}").to_lowercase();
            ("typing", json!({"uid": uid, "state": state}))
        }
    };
    live.delivery.push(type_, &data, origin).await;
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
                let answer = presence::directed(PresenceType::Subscribed, &from);
                // Never wait on the session from its own reader.
                if let Ok(handle) = live.xmpp() {
                    tokio::spawn(async move { handle.send(answer).await });
                }
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
    // Waiting for room, a contact's newer presence replaces its older.
    let key = format!("presence\n{from}");
    push_replacing(live, "presence", &data, Origin::stanza(seq), key).await;
    true
}

/// Pushes a stanza that supersedes an older one of the same `key` still
/// waiting beside a full queue ([`super::delivery::Delivery::push_keyed`]):
/// the older is replaced, and its stanza settled with the server.
async fn push_replacing(live: &Live, type_: &str, data: &Value, origin: Origin, key: String) {
    let older = live
        .delivery
        .push_keyed(type_, data, origin, Some(key))
        .await;
    if let Some(seq) = older.and_then(|o| o.seq) {
        live.handled(seq);
    }
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
    live.delivery
        .push("event", &data, Origin::stanza(seq))
        .await;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_names_its_stream_generation_and_sequence_number() {
        let t = Live::tag(3, 17);
        assert_eq!((t >> 40, t & ((1 << 40) - 1)), (3, 17));
        assert_ne!(Live::tag(0, 17), Live::tag(1, 17));
    }
}

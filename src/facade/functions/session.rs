//! `session.*`: the first screen, ping, acknowledgements, token renewal.
//! (`session.start` without a session and `session.resume` are read by
//! the socket itself, see `facade::session`.)

use std::sync::Arc;

use serde_json::{Value, json};

use super::Parm;
use crate::clock::now;
use crate::db::facade as store;
use crate::facade::delivery::{Pending, Receipt};
use crate::facade::envelope::Failure;
use crate::facade::functions::{friend, user};
use crate::facade::live::{Live, lock};
use crate::tokens::Caller;
use crate::xmpp::chat;
use xmpp_parsers::jid::BareJid;
use xmpp_parsers::message::Message;

/// What an app draws its first screen from (seed 004): the user, the
/// first page of friends, pending friend requests, unread counts, and
/// how to resume.
pub async fn first_screen(live: &Arc<Live>) -> Result<Value, Failure> {
    let db = &live.app().db;
    let max = live.app().config.facade.max_list_count as i64;
    let first = lock(&live.first_user).take();
    let user = match first {
        Some(user) => user,
        None => user::own_info(live).await?,
    };
    let friends = friend::page(live, 0, max).await;
    let requests = friend::events_json(
        live,
        store::pending_requests(db, live.account.id, max).await?,
    );
    let unread: Vec<Value> = store::unread(db, live.account.id, max)
        .await?
        .into_iter()
        .map(|(uid, count)| json!({"uid": uid, "count": count}))
        .collect();
    Ok(json!({
        "user": user,
        "friends": friends,
        "friend_requests": requests,
        "unread": unread,
        "resume_token": live.resume_token,
        "last_pid": live.delivery.last_pid(),
        "time": now(),
    }))
}

pub fn ping() -> Result<Value, Failure> {
    Ok(json!({"time": now()}))
}

/// `session.ack(pid)`: every push up to `pid` arrived.
pub fn ack(live: &Arc<Live>, p: &Parm<'_>) -> Result<Value, Failure> {
    let pid = p.u64("pid")?;
    acknowledged(live, live.delivery.ack(pid));
    Ok(json!({"pid": pid}))
}

/// What the phone now has: the XMPP server may forget those stanzas, and
/// senders who asked get their receipts (XEP-0184).
pub fn acknowledged(live: &Arc<Live>, done: Vec<Pending>) {
    let mut owed = Vec::new();
    for p in done {
        if let Some(seq) = p.seq {
            live.handled(seq);
        }
        owed.extend(p.receipt);
    }
    let receipts = receipt_stanzas(owed);
    if receipts.is_empty() {
        return;
    }
    // While reconnecting, receipts are not sent (they are a courtesy; the
    // message itself is safe).
    let Ok(handle) = live.xmpp() else { return };
    tokio::spawn(async move {
        for r in receipts {
            if handle.send(r).await.is_err() {
                break;
            }
        }
    });
}

/// Ids in one batched receipt stanza at most, and their bytes at most (a
/// message id is the sender's to choose: a batch stays far below any
/// server's stanza size limit).
const BATCH_IDS: usize = 100;
const BATCH_BYTES: usize = 8 * 1024;

/// The receipt stanzas for what the phone acknowledged at once: one per
/// sender that reads batched receipts (split at [`BATCH_IDS`] /
/// [`BATCH_BYTES`]), one per message for any other sender.
fn receipt_stanzas(owed: Vec<Receipt>) -> Vec<Message> {
    let mut out = Vec::new();
    let mut batches: Vec<(BareJid, Vec<String>)> = Vec::new();
    for r in owed {
        if !r.batched {
            out.push(chat::receipt(&r.to, &r.id));
            continue;
        }
        match batches.iter_mut().find(|(to, _)| *to == r.to) {
            Some((_, ids)) => ids.push(r.id),
            None => batches.push((r.to, vec![r.id])),
        }
    }
    for (to, ids) in batches {
        let mut chunk: Vec<&str> = Vec::new();
        let mut bytes = 0;
        for id in &ids {
            if !chunk.is_empty() && (chunk.len() == BATCH_IDS || bytes + id.len() > BATCH_BYTES) {
                out.push(chat::receipts(&to, &chunk));
                chunk.clear();
                bytes = 0;
            }
            chunk.push(id);
            bytes += id.len();
        }
        if !chunk.is_empty() {
            out.push(chat::receipts(&to, &chunk));
        }
    }
    out
}

/// `session.renew(refresh_token)`: a new token pair for this session's
/// app and user, without dropping the socket.
pub async fn renew(live: &Arc<Live>, p: &Parm<'_>) -> Result<Value, Failure> {
    let refresh = p.text("refresh_token")?;
    let info = lock(&live.token).1.clone();
    let caller = Caller {
        app_id: &info.app_id,
        kind: info.app_kind,
    };
    let tokens = &live.app().tokens;
    let (issued, _) = tokens
        .refresh(refresh, caller, Some(&live.uid), now())
        .await?;
    let fresh = tokens.verify(&issued.access_token, now()).await?;
    *lock(&live.token) = (issued.access_token.clone().into(), fresh);
    Ok(serde_json::to_value(&issued).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::chat::Incoming;

    fn owed(to: &str, id: &str, batched: bool) -> Receipt {
        Receipt {
            to: BareJid::new(to).unwrap(),
            id: id.to_owned(),
            batched,
        }
    }

    fn ids(m: &Message) -> Vec<String> {
        match chat::read(m, String::new) {
            Some(Incoming::Receipt(ids)) => ids,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn one_stanza_per_batching_sender_and_one_per_message_for_the_others() {
        let stanzas = receipt_stanzas(vec![
            owed("a@x.test", "1", true),
            owed("p@x.test", "2", false),
            owed("a@x.test", "3", true),
            owed("b@x.test", "4", true),
            owed("p@x.test", "5", false),
        ]);
        let got: Vec<(String, Vec<String>)> = stanzas
            .iter()
            .map(|m| (m.to.as_ref().unwrap().to_string(), ids(m)))
            .collect();
        let want = [
            ("p@x.test", vec!["2"]),
            ("p@x.test", vec!["5"]),
            ("a@x.test", vec!["1", "3"]),
            ("b@x.test", vec!["4"]),
        ];
        let want: Vec<(String, Vec<String>)> = want
            .iter()
            .map(|(to, ids)| (to.to_string(), ids.iter().map(|i| i.to_string()).collect()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn batches_are_bounded_in_ids_and_bytes_and_lose_none() {
        let many: Vec<Receipt> = (0..250)
            .map(|i| owed("a@x.test", &format!("m{i}"), true))
            .collect();
        let stanzas = receipt_stanzas(many);
        let sizes: Vec<usize> = stanzas.iter().map(|m| ids(m).len()).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        let all: Vec<String> = stanzas.iter().flat_map(ids).collect();
        let want: Vec<String> = (0..250).map(|i| format!("m{i}")).collect();
        assert_eq!(all, want);

        // Long ids (the sender chooses them): at most BATCH_BYTES a stanza,
        // and an id longer than that alone.
        let long = "x".repeat(3000);
        let huge = "y".repeat(20_000);
        let stanzas = receipt_stanzas(vec![
            owed("a@x.test", &long, true),
            owed("a@x.test", &long, true),
            owed("a@x.test", &long, true),
            owed("a@x.test", &huge, true),
            owed("a@x.test", "z", true),
        ]);
        let sizes: Vec<usize> = stanzas.iter().map(|m| ids(m).len()).collect();
        assert_eq!(sizes, vec![2, 1, 1, 1]);
    }
}

//! `session.*`: the first screen, ping, acknowledgements, token renewal.
//! (`session.start` without a session and `session.resume` are read by
//! the socket itself, see `facade::session`.)

use std::sync::Arc;

use serde_json::{Value, json};

use super::Parm;
use crate::clock::now;
use crate::db::facade as store;
use crate::facade::delivery::Pending;
use crate::facade::envelope::Failure;
use crate::facade::functions::{friend, user};
use crate::facade::live::{Live, lock};
use crate::tokens::Caller;

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

/// What the phone now has: the XMPP server may forget those stanzas,
/// senders who asked get their receipts (XEP-0184), and the catch-up
/// cursor moves to the newest archived message among them.
pub fn acknowledged(live: &Arc<Live>, done: Vec<Pending>) {
    let mut receipts = Vec::new();
    let (mut archived, mut held) = (None, None);
    for p in done {
        if let Some(seq) = p.origin.seq {
            live.handled(seq);
        }
        if let Some(r) = p.origin.receipt {
            receipts.push(r);
        }
        if p.origin.moves_cursor {
            archived = p.origin.archive.or(archived);
        } else if let Some(a) = p.origin.archive {
            held = Some(a);
        }
    }
    if let Some(a) = held {
        live.catchup.held_back(a);
    }
    if let Some(a) = archived {
        live.catchup.acknowledged(a);
    }
    live.receipts(receipts);
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

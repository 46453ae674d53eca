//! Friends as the roster (RFC 6121): `user.friend_list`,
//! `user.add_friend` (a subscription request carrying the note),
//! `user.accept_friend` (approve, and subscribe back: friends see each
//! other), `user.reject_friend`, `user.del_friend`, and `event.read`.

use std::sync::Arc;

use serde_json::{Value, json};
use xmpp_parsers::presence::Type as PresenceType;
use xmpp_parsers::roster::{Ask, Item, Subscription};

use super::Parm;
use crate::db::facade::{self as store, Event};
use crate::facade::envelope::{Failure, errno};
use crate::facade::live::{Live, lock};
use crate::xmpp::{presence, roster};

/// A page of the roster, ordered by uid.
pub async fn page(live: &Arc<Live>, pos: usize, count: i64) -> Vec<Value> {
    let items: Vec<Item> = lock(&live.roster).values().cloned().collect();
    let mut rows = Vec::with_capacity(items.len());
    for item in items {
        let uid = live.names.uid_of(live.app(), &item.jid).await;
        rows.push((uid, item));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let online = lock(&live.online).clone();
    rows.into_iter()
        .skip(pos)
        .take(count as usize)
        .map(|(uid, item)| {
            let (on, seen) = online.get(&item.jid).copied().unwrap_or((false, 0));
            json!({
                "uid": uid,
                "alias": item.name.unwrap_or_default(),
                "groups": item.groups.iter().map(|g| g.0.clone()).collect::<Vec<_>>(),
                "subscription": roster::subscription_name(&item.subscription),
                "pending": item.ask == Ask::Subscribe,
                "online": on,
                "last_seen": seen,
            })
        })
        .collect()
}

/// `user.friend_list(pos, count)`.
pub async fn list(live: &Arc<Live>, p: &Parm<'_>) -> Result<Value, Failure> {
    let pos = p.opt_u64("pos")?.unwrap_or(0) as usize;
    let count = p.count(live, 50)?;
    let total = lock(&live.roster).len();
    let friends = page(live, pos, count).await;
    Ok(json!({"friends": friends, "pos": pos, "count": friends.len(), "total": total}))
}

/// `user.add_friend(uid, note)`.
pub async fn add(live: &Arc<Live>, p: &Parm<'_>) -> Result<Value, Failure> {
    let uid = p.text("uid")?;
    let note = p.opt_text("note")?.unwrap_or("");
    let jid = live.names.jid_of(live.app(), uid).await?;
    if jid == live.me {
        return Err(Failure::new(errno::NOT_PERMITTED, "not yourself"));
    }
    live.xmpp()?.send(presence::subscribe(&jid, note)).await?;
    Ok(json!({"uid": uid}))
}

/// `user.accept_friend(uid, alias)`: approve their request and ask for
/// theirs (which their session approves by itself).
pub async fn accept(live: &Arc<Live>, p: &Parm<'_>) -> Result<Value, Failure> {
    let uid = p.text("uid")?;
    let alias = p.opt_text("alias")?.unwrap_or("");
    let jid = live.names.jid_of(live.app(), uid).await?;
    if !alias.is_empty() {
        let mut item = live.roster_item(&jid).unwrap_or(Item {
            jid: jid.clone(),
            name: None,
            subscription: Subscription::None,
            ask: Default::default(),
            groups: vec![],
            approved: None,
        });
        item.name = Some(alias.to_owned());
        item.subscription = Subscription::None;
        roster::set(&live.xmpp()?, item).await?;
    }
    let x = &live.xmpp()?;
    x.send(presence::directed(PresenceType::Subscribed, &jid))
        .await?;
    let mutual = live
        .roster_item(&jid)
        .is_some_and(|i| matches!(i.subscription, Subscription::To | Subscription::Both));
    if !mutual {
        x.send(presence::subscribe(&jid, "")).await?;
    }
    store::resolve_requests(&live.app().db, live.account.id, uid).await?;
    Ok(json!({"uid": uid}))
}

/// `user.reject_friend(uid)`.
pub async fn reject(live: &Arc<Live>, p: &Parm<'_>) -> Result<Value, Failure> {
    let uid = p.text("uid")?;
    let jid = live.names.jid_of(live.app(), uid).await?;
    let refuse = presence::directed(PresenceType::Unsubscribed, &jid);
    live.xmpp()?.send(refuse).await?;
    store::resolve_requests(&live.app().db, live.account.id, uid).await?;
    Ok(json!({"uid": uid}))
}

/// `user.del_friend(uid)`: the roster item goes, with both subscriptions.
pub async fn delete(live: &Arc<Live>, p: &Parm<'_>) -> Result<Value, Failure> {
    let uid = p.text("uid")?;
    let jid = live.names.jid_of(live.app(), uid).await?;
    roster::remove_item(&live.xmpp()?, &jid).await?;
    Ok(json!({"uid": uid}))
}

/// Events as seed 003 shapes them.
pub fn events_json(_live: &Live, events: Vec<Event>) -> Vec<Value> {
    events
        .into_iter()
        .map(|e| {
            json!({"eid": e.id, "type": e.type_, "uid": e.peer, "note": e.note,
                   "create_time": e.create_time})
        })
        .collect()
}

/// `event.read(before, count)`: friend events, newest first, including
/// those that arrived while offline.
pub async fn events(live: &Arc<Live>, p: &Parm<'_>) -> Result<Value, Failure> {
    let before = p.opt_u64("before")?.map(|b| b as i64).unwrap_or(i64::MAX);
    let count = p.count(live, 50)?;
    let rows = store::events(&live.app().db, live.account.id, before, count).await?;
    Ok(json!({"events": events_json(live, rows)}))
}

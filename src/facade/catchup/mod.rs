//! Catching up from the archive, at login and when the push queue
//! overflowed, so that no message is lost where the XMPP server fails to
//! keep what a session left unacknowledged (docs/facade.md, "Catching up
//! from the archive").
//!
//! The server archives every chat message for its recipient (XEP-0313)
//! and stamps the copy it delivers with the archive id (XEP-0359
//! `<stanza-id by='user@domain'/>`). jidgate keeps, per account, a
//! **cursor**: the archive id of the newest message the phone has
//! acknowledged (`facade_cursor`). At each login, before initial
//! presence, [`collect`] reads what the archive holds after the cursor (on
//! a short session of its own, see `xmpp::mam`) and claims those ids;
//! after initial presence, [`deliver`] pushes them (`newmsg`, `delayed`)
//! in archive order, under the same backpressure as any push. The
//! server's own delivery of a claimed message (offline storage, a resend)
//! is not pushed again: the reader acknowledges it to the server at once,
//! since the archive still holds it until the phone acknowledges the
//! catch-up's push.
//!
//! A login catches up only when the account's previous facade session
//! did not end **clean** (every archived push acknowledged: then the
//! server keeps nothing for the phone but its offline storage, which it
//! delivers anyway), and at every reconnection; an account's first
//! session has nothing to catch up on. So most logins cost no second XMPP
//! login. A session marks the account unclean at its start and clean at
//! its end, if no other session of the account started since (`owner`);
//! a crash leaves it unclean.
//!
//! The archive is also the push queue's overflow: while the queue is
//! full, an archived chat message from the server is acknowledged to the
//! server and left to the archive ([`fall_behind`]), and once the phone
//! has made room a catch-up within the session pushes it. The stream never
//! waits for the phone on chat messages.
//!
//! The cursor moves only over a contiguous stretch of the archive: while
//! a catch-up is pushing, only its own pushes move it (they come in
//! archive order and acknowledgements are cumulative); otherwise any
//! pushed message with an archive id does (the server delivers in archive
//! order). An account without a cursor (no push acknowledged yet) catches
//! up from the archive's oldest message: a server may deliver live
//! messages before its offline backlog, so no message pushed first can
//! stand for "everything before it was seen".

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use xmpp_parsers::jid::BareJid;

use super::delivery::Origin;
use super::live::{Live, lock};
use super::newmsg::{count_unread, message_json};
use crate::binding::login_with;
use crate::clock::now;
use crate::crypto::random_token;
use crate::db::facade as store;
use crate::xmpp::chat::{self, Incoming};
use crate::xmpp::mam::{self, Page};
use crate::xmpp::{Session, SessionOptions, XmppError};

pub mod state;
mod sweep;

pub use sweep::{sweep, sweep_begin};

use state::sent_key;

/// Archive results asked for per query (Prosody and ejabberd both answer
/// at most 50 by default).
const PAGE: usize = 50;

/// One archived message found after the cursor.
pub struct Found {
    archive_id: String,
    from: BareJid,
    uid: String,
    msgid: String,
    data: Value,
    receipt: bool,
}

/// Before initial presence: the archived chat messages after the cursor
/// (at most `facade.catchup_max`, oldest first), claimed so that the
/// server's own delivery of them is not pushed too. Nothing when the
/// catch-up is off or not needed (the account's first session, or its
/// last one ended clean); a failure is logged and skipped (the server's
/// delivery still runs).
pub async fn collect(live: &Arc<Live>) -> Vec<Found> {
    let max = live.app().config.facade.catchup_max;
    if max == 0 {
        return Vec::new();
    }
    let known = {
        let c = lock(&live.catchup.cursor);
        c.loaded.then(|| c.want.clone())
    };
    let cursor = match known {
        // A reconnection: always (the old stream may have ended with
        // stanzas the server does not keep).
        Some(c) => c,
        None => {
            let db = &live.app().db;
            let (id, owner) = (live.account.id, &live.catchup.owner);
            match store::start_cursor(db, id, owner, now()).await {
                Ok(before) => {
                    let c = before.as_ref().and_then(|b| b.archive_id.clone());
                    let mut st = lock(&live.catchup.cursor);
                    (st.loaded, st.want, st.stored) = (true, c.clone(), c.clone());
                    drop(st);
                    match before {
                        Some(b) if !b.clean => c,
                        _ => return Vec::new(),
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "facade catch-up cursor not read");
                    return Vec::new();
                }
            }
        }
    };
    match fetch(live, cursor).await {
        Ok(found) => {
            if !found.is_empty() {
                live.catchup.running.fetch_add(1, Ordering::SeqCst);
            }
            found
        }
        Err(e) => {
            // The next login tries again.
            tracing::warn!(error = %e, "facade catch-up: archive not read");
            live.catchup.unsure.store(true, Ordering::SeqCst);
            Vec::new()
        }
    }
}

/// The archived chat messages after `cursor` that no push waiting for
/// acknowledgement holds, read on a short session of its own and claimed.
async fn fetch(live: &Arc<Live>, cursor: Option<String>) -> Result<Vec<Found>, XmppError> {
    tracing::debug!(?cursor, "facade catch-up reads the archive");
    let first = cursor.map_or(Page::Oldest, Page::After);
    let mut found = read_apart(live, first).await?;
    // Pushes still waiting (from before a reconnection, or before the
    // queue filled) stay as they are: the phone gets them on resume, and
    // acknowledging a later push acknowledges them too.
    let pending = live.delivery.pending_archived();
    found.retain(|f| !pending.contains(&f.archive_id));
    tracing::debug!(msgids = ?found.iter().map(|f| &f.msgid).collect::<Vec<_>>(), "facade catch-up");
    let mut claimed = lock(&live.catchup.claimed);
    if claimed.len() > 4 * live.app().config.facade.catchup_max {
        claimed.clear();
    }
    claim(&mut claimed, &found);
    Ok(found)
}

/// Reads the archive from `first` on (at most `facade.catchup_max`
/// messages) on a short session of its own (see `xmpp::mam`).
async fn read_apart(live: &Arc<Live>, first: Page) -> Result<Vec<Found>, XmppError> {
    let app = live.app();
    let resource = format!("facade-catchup-{}", random_token::<6>());
    let mut session = login_with(app, &live.account, &resource, SessionOptions::default())
        .await
        .map_err(|e| XmppError::Protocol(format!("no archive session: {e}")))?;
    let found = read_from(live, &mut session, first, app.config.facade.catchup_max).await;
    session.close().await;
    found
}

/// Claims `found` by both names (see [`state::CatchUp::claimed`]).
fn claim(claimed: &mut HashSet<String>, found: &[Found]) {
    for f in found {
        claimed.insert(f.archive_id.clone());
        claimed.insert(sent_key(&f.from, &f.msgid));
    }
}

/// Whether an archived chat message from the server should be left to
/// the archive instead of waiting for room in the push queue: the
/// catch-up is on and the queue is full, or the session is behind
/// already (then newer messages wait their turn too, in archive order).
pub fn leave_to_archive(live: &Live) -> bool {
    live.app().config.facade.catchup_max > 0
        && (live.catchup.behind.load(Ordering::SeqCst) || live.delivery.is_full())
}

/// An archived chat message was left to the archive (and acknowledged to
/// the server): once the phone has made room, a catch-up in this session
/// pushes it. The XMPP stream never waits for the phone on chat
/// messages, so IQ answers and other stanzas keep flowing.
pub fn fall_behind(live: &Arc<Live>) {
    live.catchup.behind.store(true, Ordering::SeqCst);
    // One such catch-up task per session at a time.
    if live.catchup.catching.swap(true, Ordering::SeqCst) {
        return;
    }
    let live = live.clone();
    tokio::spawn(async move {
        let half = live.app().config.facade.max_unacked / 2;
        loop {
            tokio::select! {
                _ = live.stop.cancelled() => return,
                _ = live.delivery.wait_until_at_most(half) => {}
            }
            // In this order: a message pushed live from now on must not
            // move the cursor past those the archive still holds for us.
            live.catchup.running.fetch_add(1, Ordering::SeqCst);
            live.catchup.behind.store(false, Ordering::SeqCst);
            let cursor = lock(&live.catchup.cursor).want.clone();
            match fetch(&live, cursor).await {
                Ok(found) => push_all(&live, found).await,
                Err(e) => {
                    // The session can no longer say it ended clean.
                    tracing::warn!(error = %e, "facade catch-up in session failed");
                    live.catchup.unsure.store(true, Ordering::SeqCst);
                    live.catchup.running.fetch_sub(1, Ordering::SeqCst);
                    return;
                }
            }
            // Left behind again meanwhile: go on, unless a call to
            // fall_behind in this very moment started a task of its own.
            live.catchup.catching.store(false, Ordering::SeqCst);
            if !live.catchup.behind.load(Ordering::SeqCst)
                || live.catchup.catching.swap(true, Ordering::SeqCst)
            {
                return;
            }
        }
    });
}

/// The session ends: if no archived push waits for acknowledgement, no
/// catch-up or sweep is unfinished (and the user cannot have several
/// sessions), the account's next login needs no catch-up.
pub async fn ended(live: &Arc<Live>) {
    let app = live.app();
    if app.config.facade.catchup_max == 0 || app.config.facade.multi_login {
        return;
    }
    let want = {
        let c = lock(&live.catchup.cursor);
        if !c.loaded {
            return;
        }
        c.want.clone()
    };
    if !live.delivery.pending_archived().is_empty()
        || live.catchup.behind.load(Ordering::SeqCst)
        || live.catchup.unsure.load(Ordering::SeqCst)
        || live.catchup.sweeping.load(Ordering::SeqCst)
        || live.catchup.running.load(Ordering::SeqCst) > 0
    {
        return;
    }
    tracing::debug!(cursor = ?want, "facade session ends clean");
    let (id, owner) = (live.account.id, &live.catchup.owner);
    if let Err(e) = store::end_cursor_clean(&app.db, id, owner, want.as_deref(), now()).await {
        tracing::warn!(error = %e, "facade catch-up cursor not kept");
    }
}

/// Reads the archive's chat messages from `page` on, oldest first.
async fn read_from(
    live: &Arc<Live>,
    session: &mut Session,
    mut page: Page,
    max: usize,
) -> Result<Vec<Found>, XmppError> {
    let mut out = Vec::new();
    while out.len() < max {
        let found = mam::query(session, None, page, PAGE).await?;
        let Some(last) = found.items.last() else {
            break;
        };
        page = Page::After(last.archive_id.clone());
        for item in found.items {
            let Some(from) = item.message.from.as_ref().map(|f| f.to_bare()) else {
                continue;
            };
            if from == live.me {
                continue;
            }
            let fallback = || item.archive_id.clone();
            let Some(Incoming::Chat {
                chat,
                wants_receipt,
                ..
            }) = chat::read(&item.message, fallback)
            else {
                continue;
            };
            let uid = live.names.uid_of(live.app(), &from).await;
            let time = item.stamp.unwrap_or_else(now);
            out.push(Found {
                data: json!({ "message": message_json(&chat, &uid, time, true) }),
                archive_id: item.archive_id,
                from,
                uid,
                msgid: chat.id,
                receipt: wants_receipt,
            });
        }
        if found.complete {
            break;
        }
    }
    out.truncate(max);
    Ok(out)
}

/// After initial presence: pushes what [`collect`] found, in order,
/// waiting for room like any push from the server.
pub fn deliver(live: &Arc<Live>, found: Vec<Found>) {
    if found.is_empty() {
        return;
    }
    let live = live.clone();
    tokio::spawn(async move { push_all(&live, found).await });
}

/// Pushes what a catch-up found, then counts that catch-up as done.
async fn push_all(live: &Arc<Live>, found: Vec<Found>) {
    for f in found {
        count_unread(live, &f.uid, &f.msgid);
        let origin = Origin {
            seq: None,
            receipt: f.receipt.then(|| (f.from.clone(), f.msgid.clone())),
            archive: Some(f.archive_id),
            moves_cursor: true,
        };
        tokio::select! {
            _ = live.stop.cancelled() => {
                // Claimed, so the server's copy was not pushed: the next
                // login must catch up.
                live.catchup.unsure.store(true, Ordering::SeqCst);
                break;
            }
            _ = live.delivery.push("newmsg", &f.data, origin) => {}
        }
    }
    live.catchup.running.fetch_sub(1, Ordering::SeqCst);
}

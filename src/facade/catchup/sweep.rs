//! The sweep after each login on ejabberd: what the archive got in the
//! instant of the login that the server's offline delivery lost
//! (docs/facade.md, "Messages racing the start").

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::state::sent_key;
use super::{Found, claim, push_all, read_apart};
use crate::facade::live::{Live, lock};
use crate::xmpp::XmppError;
use crate::xmpp::mam::Page;
use crate::xmpp::software::Software;

/// How long before a login the sweep reads the archive from: the
/// messages that can be lost were archived in the instant of the login's
/// offline delivery; the margin covers a slow server and a clock apart
/// from the server's. What the phone had by the login's cursor, and what
/// the session pushes itself, is not pushed again.
const SWEEP_MARGIN: i64 = 30;

/// At a login, before the catch-up, on ejabberd: a sweep after the login will
/// read the archive from just before `login_started` (Unix time). Until it
/// is done, pushes of live messages are noted and move no cursor, and the
/// session cannot end clean. `None`: no sweep (other servers, or the
/// catch-up off).
///
/// Why: ejabberd 23.01 (mod_offline, mnesia) stores an offline message
/// with a dirty write while a session's offline delivery reads and deletes
/// the user's spool in a transaction; a message stored in that instant is
/// deleted unread (`mod_offline_mnesia:store_message/pop_messages`). It
/// was archived just before (`mod_mam:offline_message`), so the sweep
/// finds it. Prosody stores and delivers offline messages in one thread.
pub fn sweep_begin(live: &Arc<Live>, software: Software, login_started: i64) -> Option<i64> {
    if software != Software::Ejabberd || live.app().config.facade.catchup_max == 0 {
        return None;
    }
    live.catchup.sweeping.store(true, Ordering::SeqCst);
    live.catchup.running.fetch_add(1, Ordering::SeqCst);
    Some(login_started - SWEEP_MARGIN)
}

/// Where a sweep reads from.
struct Sweep {
    /// Unix time.
    since: i64,
    /// The cursor as the login found it: the phone has that message and
    /// every one before it.
    cursor: Option<String>,
}

/// After initial presence (see [`sweep_begin`]): once the server has
/// handled it, reads what the archive stored since `since` on a short
/// session and pushes, in archive order, what this session did not push
/// already or is about to (claims, pending pushes).
pub fn sweep(live: &Arc<Live>, since: Option<i64>) {
    let Some(since) = since else { return };
    // The cursor as the login found it (the catch-up has read it, and
    // nothing moved it since `sweep_begin`).
    let cursor = lock(&live.catchup.cursor).want.clone();
    let sweep = Sweep { since, cursor };
    let live = live.clone();
    tokio::spawn(async move {
        match sweep_read(&live, sweep).await {
            Ok(found) if !found.is_empty() => {
                tracing::debug!(msgids = ?found.iter().map(|f| &f.msgid).collect::<Vec<_>>(), "facade sweep after login");
                // Counts the sweep as done at its end.
                push_all(&live, found).await;
            }
            Ok(_) => {
                // Nothing was missing: what the phone acknowledged
                // meanwhile may move the cursor, if it has everything.
                let last = live.catchup.running.fetch_sub(1, Ordering::SeqCst) == 1;
                if last && live.delivery.release_cursor() {
                    let held = lock(&live.catchup.held).take();
                    if let Some(h) = held {
                        live.catchup.acknowledged(h);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "facade sweep after login failed");
                live.catchup.unsure.store(true, Ordering::SeqCst);
                live.catchup.running.fetch_sub(1, Ordering::SeqCst);
            }
        }
        lock(&live.catchup.seen).clear();
        // A session stopped meanwhile did not push all it found.
        if !live.stop.is_cancelled() {
            live.catchup.sweeping.store(false, Ordering::SeqCst);
        }
    });
}

async fn sweep_read(live: &Arc<Live>, sweep: Sweep) -> Result<Vec<Found>, XmppError> {
    // An answer on the delivery stream: the server has handled initial
    // presence, its offline delivery included.
    let handle = live
        .xmpp()
        .map_err(|f| XmppError::Protocol(f.error.to_string()))?;
    handle
        .iq(
            None,
            crate::xmpp::IqRequest::Get(xmpp_parsers::ping::Ping.into()),
        )
        .await?;
    let mut found = read_apart(live, Page::Since(sweep.since)).await?;
    if let Some(c) = &sweep.cursor
        && let Some(at) = found.iter().position(|f| &f.archive_id == c)
    {
        found.drain(..=at);
    }
    let pending = live.delivery.pending_archived();
    let mut claimed = lock(&live.catchup.claimed);
    let seen = lock(&live.catchup.seen);
    found.retain(|f| {
        let key = sent_key(&f.from, &f.msgid);
        !(pending.contains(&f.archive_id)
            || seen.contains(&f.archive_id)
            || seen.contains(&key)
            || claimed.contains(&f.archive_id)
            || claimed.contains(&key))
    });
    claim(&mut claimed, &found);
    Ok(found)
}

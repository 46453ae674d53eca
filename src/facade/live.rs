//! One facade session's XMPP side, which outlives its WebSocket for
//! `facade.resume_timeout`: the user's account, the XMPP session (resource
//! `facade`, lossless, with stream management, logged in again after a
//! drop: [`super::inbound::read`]), the push queue, the roster and who is
//! online.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use xmpp_parsers::jid::BareJid;
use xmpp_parsers::presence::Presence;
use xmpp_parsers::roster::{Item, Subscription};

use super::Facade;
use super::catchup::state::CatchUp;
use super::delivery::Delivery;
use super::envelope::{Failure, errno};
use super::names::Names;
use crate::app::App;
use crate::binding::login_with;
use crate::crypto::random_token;
use crate::db::{Account, account};
use crate::tokens::TokenInfo;
use crate::xmpp::{Session, SessionHandle, SessionOptions, chat, roster};

/// The XMPP session a facade session runs on.
const OPTIONS: SessionOptions = SessionOptions {
    lossless: true,
    stream_management: true,
};

/// A receipt (XEP-0184) owed: to whom, for which message id.
pub type Receipt = (BareJid, String);

/// The gap between two receipts sent together ([`Live::receipts`]).
const RECEIPT_PACE: std::time::Duration = std::time::Duration::from_millis(1);

/// Bits of a tagged stanza sequence number ([`Live::tag`]) that hold the
/// stream's own sequence number; the bits above hold the stream's
/// generation.
const SEQ_BITS: u32 = 40;

/// The XMPP stream of the moment: each login (the first and every
/// reconnection) is a new generation.
struct Link {
    generation: u64,
    handle: SessionHandle,
    up: bool,
}

/// A logged-in facade session.
pub struct Live {
    pub facade: Arc<Facade>,
    pub account: Account,
    /// The user's own uid (user name).
    pub uid: String,
    pub me: BareJid,
    /// The XMPP resource (`facade`, or `facade-…` with `multi_login`).
    pub resource: String,
    /// The current XMPP stream ([`Live::xmpp`]).
    link: Mutex<Link>,
    pub delivery: Delivery,
    pub names: Names,
    /// Names this session for `session.resume`.
    pub resume_token: String,
    /// The access token the session runs on (checked as it goes; replaced
    /// by `session.renew`).
    pub token: Mutex<(SecretString, TokenInfo)>,
    /// The roster, kept current by roster pushes.
    pub roster: Mutex<HashMap<BareJid, Item>>,
    /// Contacts seen online (true) or offline (false), with when.
    pub online: Mutex<HashMap<BareJid, (bool, i64)>>,
    /// The user's own profile, read before initial presence for the first
    /// screen: after it, offline messages may fill the stream until the
    /// phone acknowledges them, and an IQ reply would wait behind them.
    pub first_user: Mutex<Option<serde_json::Value>>,
    /// The catch-up from the archive and its cursor.
    pub catchup: CatchUp,
    /// Receipts (XEP-0184) for pushes the phone acknowledged while the XMPP
    /// side was down: sent once it is logged in again ([`Live::receipts`]).
    held_receipts: Mutex<Vec<Receipt>>,
    pub stop: CancellationToken,
}

impl Live {
    pub fn app(&self) -> &App {
        &self.facade.app
    }

    /// Logs in to XMPP as the token's user and reads the roster; the caller
    /// starts reading the stream (`inbound::read`), then [`Live::announce`]s.
    pub async fn login(
        facade: Arc<Facade>,
        token: SecretString,
        info: TokenInfo,
    ) -> Result<(Arc<Live>, Session), Failure> {
        let app = &facade.app;
        let account = account::active_by_id(&app.db, info.account_id)
            .await?
            .ok_or_else(|| Failure::new(errno::SESSION, "account gone"))?;
        let resource = if app.config.facade.multi_login {
            format!("facade-{}", random_token::<6>())
        } else {
            "facade".to_owned()
        };
        let session = login_with(app, &account, &resource, OPTIONS).await?;
        // Roster first: pushes and subscription requests only reach
        // sessions that asked for it (RFC 6121 §2.1.6).
        let items = roster::get(&session).await?;
        let me = account.jid(app.domain())?;
        let live = Arc::new(Live {
            uid: account.user_name.clone(),
            me,
            resource,
            link: Mutex::new(Link {
                generation: 0,
                handle: session.handle(),
                up: true,
            }),
            delivery: Delivery::new(app.config.facade.max_unacked),
            names: Names::default(),
            resume_token: random_token::<24>(),
            token: Mutex::new((token, info)),
            roster: Mutex::new(items.into_iter().map(|i| (i.jid.clone(), i)).collect()),
            online: Mutex::default(),
            first_user: Mutex::default(),
            catchup: CatchUp::new(app.db.clone(), account.id),
            held_receipts: Mutex::default(),
            stop: CancellationToken::new(),
            account,
            facade: facade.clone(),
        });
        facade.register(&live);
        Ok((live, session))
    }

    /// Initial presence: offline messages and pending subscription requests
    /// come after it, so the stream must already be read.
    pub async fn announce(&self) -> Result<(), Failure> {
        self.xmpp()?.send(Presence::available()).await?;
        Ok(())
    }

    /// The XMPP session to send on; while the stream is being logged in
    /// again after a drop, errno [`errno::RECONNECTING`].
    pub fn xmpp(&self) -> Result<SessionHandle, Failure> {
        let link = lock(&self.link);
        if !link.up {
            return Err(Failure::new(
                errno::RECONNECTING,
                "the XMPP side is reconnecting, retry later",
            ));
        }
        Ok(link.handle.clone())
    }

    /// The generation of the current XMPP stream.
    pub fn generation(&self) -> u64 {
        lock(&self.link).generation
    }

    /// Inbound stanza `seq` of stream `generation`, as one number for the
    /// push queue (which outlives a stream).
    pub fn tag(generation: u64, seq: u64) -> u64 {
        (generation << SEQ_BITS) | (seq & ((1 << SEQ_BITS) - 1))
    }

    /// The phone has the stanza `tagged` ([`Live::tag`]): the XMPP server
    /// may forget it. A stanza of an earlier stream is nobody's to
    /// acknowledge any more (the server keeps or redelivers it).
    pub fn handled(&self, tagged: u64) {
        let link = lock(&self.link);
        if tagged >> SEQ_BITS == link.generation {
            link.handle.handled(tagged & ((1 << SEQ_BITS) - 1));
        }
    }

    /// The stream dropped: functions answer [`errno::RECONNECTING`] until
    /// [`Live::relogin`] succeeds.
    pub fn dropped(&self) {
        lock(&self.link).up = false;
    }

    /// Logs in again as the same user and resource (the account read
    /// afresh, its JID password repaired if refused), re-reads the roster
    /// and forgets who was online; the stream becomes the next generation, which the caller
    /// reads and then [`Live::announce`]s on.
    pub async fn relogin(&self) -> Result<(Session, u64), Failure> {
        let app = self.app();
        let account = account::active_by_id(&app.db, self.account.id)
            .await?
            .ok_or_else(|| Failure::new(errno::SESSION, "account gone"))?;
        let session = login_with(app, &account, &self.resource, OPTIONS).await?;
        let items = roster::get(&session).await?;
        *lock(&self.roster) = items.into_iter().map(|i| (i.jid.clone(), i)).collect();
        // Who is online is learnt again from the presences that follow
        // initial presence (each pushed as `presence`).
        lock(&self.online).clear();
        let mut link = lock(&self.link);
        link.generation += 1;
        link.handle = session.handle();
        link.up = true;
        Ok((session, link.generation))
    }

    /// Sends `receipts` (XEP-0184), paced: the receipts one batch
    /// acknowledgement releases would otherwise reach the XMPP server at
    /// once, and the next message (any user's) would wait behind them
    /// there. While the XMPP side is down they are held (at most
    /// `2 × facade.max_unacked`, the oldest dropped past it) and go out
    /// after the next login ([`Live::release_receipts`]).
    pub fn receipts(self: &Arc<Self>, receipts: Vec<Receipt>) {
        if receipts.is_empty() {
            return;
        }
        let Ok(handle) = self.xmpp() else {
            self.hold_receipts(receipts);
            return;
        };
        let live = self.clone();
        tokio::spawn(async move {
            let mut left = receipts.into_iter();
            let mut first = true;
            while let Some(r) = left.next() {
                if !first {
                    tokio::time::sleep(RECEIPT_PACE).await;
                }
                first = false;
                if handle.send(chat::receipt(&r.0, &r.1)).await.is_err() {
                    // The stream dropped: this one and the rest wait for
                    // the next login.
                    live.hold_receipts(std::iter::once(r).chain(left).collect());
                    return;
                }
            }
        });
    }

    fn hold_receipts(&self, receipts: Vec<Receipt>) {
        let max = 2 * self.app().config.facade.max_unacked.max(1);
        let mut held = lock(&self.held_receipts);
        held.extend(receipts);
        if held.len() > max {
            let over = held.len() - max;
            held.drain(..over);
            tracing::warn!(
                dropped = over,
                "facade: receipts held past the limit dropped"
            );
        }
    }

    /// The XMPP side is logged in again: the receipts held meanwhile go.
    pub fn release_receipts(self: &Arc<Self>) {
        let held = std::mem::take(&mut *lock(&self.held_receipts));
        self.receipts(held);
    }

    /// The roster entry of `jid`.
    pub fn roster_item(&self, jid: &BareJid) -> Option<Item> {
        lock(&self.roster).get(jid).cloned()
    }

    /// True if `jid` is in the roster with a subscription either way.
    pub fn is_friend(&self, jid: &BareJid) -> bool {
        self.roster_item(jid).is_some_and(|i| {
            matches!(
                i.subscription,
                Subscription::Both | Subscription::To | Subscription::From
            )
        })
    }

    /// Ends the session: the XMPP stream closes, acknowledging only what
    /// the phone acknowledged.
    pub fn end(&self) {
        self.stop.cancel();
    }
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

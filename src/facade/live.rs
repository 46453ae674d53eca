//! One facade session's XMPP side, which outlives its WebSocket for
//! `facade.resume_timeout`: the user's account, the XMPP session (resource
//! `facade`, lossless, with stream management), the push queue, the
//! roster and who is online.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use xmpp_parsers::jid::BareJid;
use xmpp_parsers::presence::Presence;
use xmpp_parsers::roster::{Item, Subscription};

use super::Facade;
use super::delivery::Delivery;
use super::envelope::{Failure, errno};
use super::names::Names;
use crate::app::App;
use crate::binding::login_with;
use crate::crypto::random_token;
use crate::db::{Account, account};
use crate::tokens::TokenInfo;
use crate::xmpp::{Session, SessionHandle, SessionOptions, roster};

/// A logged-in facade session.
pub struct Live {
    pub facade: Arc<Facade>,
    pub account: Account,
    /// The user's own uid (user name).
    pub uid: String,
    pub me: BareJid,
    pub xmpp: SessionHandle,
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
        let options = SessionOptions {
            lossless: true,
            stream_management: true,
        };
        let session = login_with(app, &account, &resource, options).await?;
        // Roster first: pushes and subscription requests only reach
        // sessions that asked for it (RFC 6121 §2.1.6).
        let items = roster::get(&session).await?;
        let me = account.jid(app.domain())?;
        let live = Arc::new(Live {
            uid: account.user_name.clone(),
            me,
            xmpp: session.handle(),
            delivery: Delivery::new(app.config.facade.max_unacked),
            names: Names::default(),
            resume_token: random_token::<24>(),
            token: Mutex::new((token, info)),
            roster: Mutex::new(items.into_iter().map(|i| (i.jid.clone(), i)).collect()),
            online: Mutex::default(),
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
        self.xmpp.send(Presence::available()).await?;
        Ok(())
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

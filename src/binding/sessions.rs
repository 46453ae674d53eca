//! XMPP sessions as accounts: logging in with an account's stored JID
//! password (putting it back on the server if someone changed it behind
//! jidgate's back), and the sessions one operation shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::join_all;
use secrecy::{ExposeSecret, SecretString};
use tracing::instrument;
use xmpp_parsers::jid::BareJid;

use crate::app::App;
use crate::crypto::random_token;
use crate::db::{Account, account};
use crate::error::Error;
use crate::xmpp::admin::AdminOutcome;
use crate::xmpp::roster;
use crate::xmpp::{Session, SessionHandle, SessionOptions, XmppError};

/// XMPP sessions as accounts for one operation. Each account logs in once,
/// when a task of the operation first needs it, and every task shares that
/// session through its handle (IQs pipeline on one stream): a phone binding
/// ten devices logs in once, and the ten handshakes run at the same time.
pub struct Sessions<'a> {
    app: &'a App,
    live: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<Option<Session>>>>>,
}

impl<'a> Sessions<'a> {
    pub fn new(app: &'a App) -> Sessions<'a> {
        Sessions {
            app,
            live: Mutex::new(HashMap::new()),
        }
    }

    /// The session of `account`: the one already open, or a new login (one
    /// at a time per account; a session the server closed is replaced).
    pub async fn open(&self, account: &Account) -> Result<SessionHandle, Error> {
        let slot = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(account.id)
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some(session) = slot.as_ref()
            && !session.handle().is_closed()
        {
            return Ok(session.handle());
        }
        let session = login_as(self.app, account).await?;
        let handle = session.handle();
        *slot = Some(session);
        Ok(handle)
    }

    /// The roster of an account.
    pub async fn roster(
        &self,
        account: &Account,
    ) -> Result<Vec<xmpp_parsers::roster::Item>, Error> {
        let session = self.open(account).await?;
        Ok(roster::get(&session).await?)
    }

    /// Ends every session, all at once.
    pub async fn close(self) {
        let slots: Vec<_> = self
            .live
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .into_values()
            .collect();
        join_all(slots.into_iter().map(|slot| async move {
            if let Some(session) = slot.lock().await.take() {
                session.close().await;
            }
        }))
        .await;
    }
}

/// Logs in to the XMPP server as an account, with its stored password.
/// A refused password is 105; an unreachable server 112.
///
/// If the server refuses the stored JID password (someone changed it
/// behind jidgate's back, e.g. over XEP-0077 before in-band registration
/// was turned off), jidgate puts its own back with the admin
/// change-user-password command, logs a warning and logs in again: see
/// `repair_jid_password`.
#[instrument(name = "login_as", skip_all, err(level = "debug"))]
pub async fn login_as(app: &App, account: &Account) -> Result<Session, Error> {
    let resource = app.own_resource(&random_token::<6>());
    login_with(app, account, &resource, SessionOptions::default()).await
}

/// [`login_as`] binding `resource`, with a session that treats inbound
/// stanzas as `options` say (the facade's sessions).
pub async fn login_with(
    app: &App,
    account: &Account,
    resource: &str,
    options: SessionOptions,
) -> Result<Session, Error> {
    let jid = account.jid(app.domain())?;
    let password = app
        .jid_cipher
        .decrypt(jid.as_str(), &account.jid_pwd_enc)
        .map_err(Error::Internal)?;
    let as_error = |e: XmppError| {
        if e.is_auth() {
            Error::JidPassword
        } else {
            Error::from(e)
        }
    };
    match app
        .xmpp
        .login_with(&jid, password.expose_secret(), resource, options)
        .await
    {
        Ok(session) => return Ok(session),
        Err(e) if e.is_refused_password() => {}
        Err(e) => return Err(as_error(e)),
    }
    let password = repair_jid_password(app, account.id, &jid).await?;
    app.xmpp
        .login_with(&jid, password.expose_secret(), resource, options)
        .await
        .map_err(as_error)
}

/// Sets the XMPP server's password of an account back to what jidgate
/// holds, and returns it.
///
/// What jidgate holds is read afresh: the pending `jid_pwd_next` if a
/// password change is being pushed (the server is about to get it
/// anyway, and whoever pushes it commits it), else the stored
/// `jid_pwd_enc`. Only active accounts are repaired (a `deleting`
/// account's JID is meant to be gone). If a concurrent change commits
/// or rolls back in between, the next refused login repairs again: the
/// server always converges on what the database says.
async fn repair_jid_password(app: &App, id: i64, jid: &BareJid) -> Result<SecretString, Error> {
    let fresh = account::by_id(&app.db, id)
        .await?
        .filter(Account::is_active)
        .ok_or(Error::JidPassword)?;
    let pending = fresh.jid_pwd_next.is_some();
    let blob = fresh.jid_pwd_next.as_ref().unwrap_or(&fresh.jid_pwd_enc);
    let password = app
        .jid_cipher
        .decrypt(jid.as_str(), blob)
        .map_err(Error::Internal)?;
    match app.provisioner.change_password(jid, &password).await {
        Ok(AdminOutcome::Done) => {
            tracing::warn!(
                account = id,
                %jid,
                pending,
                "the XMPP server refused the stored JID password (changed behind jidgate's \
                 back?); reset it with change-user-password"
            );
            Ok(password)
        }
        Ok(outcome) => {
            tracing::error!(
                account = id,
                %jid,
                ?outcome,
                "the XMPP server refused the stored JID password and could not reset it"
            );
            Err(Error::JidPassword)
        }
        Err(e) => {
            tracing::warn!(account = id, %jid, error = %e, "resetting a refused JID password failed");
            Err(e.into())
        }
    }
}

//! Creating, deleting and re-keying JIDs on the XMPP server.
//!
//! One trait, backends chosen in config. The standard backend, `xmpp`, keeps
//! one long-lived admin c2s session and runs XEP-0133 commands over it; a
//! supervisor task logs in, notices when the session dies, and logs in again
//! with backoff. While it is down, calls fail at once (the register API
//! answers 101/112) instead of queueing.
//!
//! Two checks make the XEP-0133 answers trustworthy on every server:
//! - at each admin login, the server must offer add-user, delete-user and
//!   change-user-password to the admin (XEP-0050 command discovery);
//!   otherwise the session is not used. `item-not-found` then means "no
//!   such account", not "no such command" (which would make a deletion look
//!   done while the JID stays);
//! - after add-user reports success, jidgate logs in as the new account
//!   with the new password and reads its roster
//!   ([`new_account_verdict`]): some servers answer success for an account
//!   that already exists (reported of some ejabberd versions; Debian's
//!   ejabberd 23.01 answers `conflict` and keeps the password, as Prosody
//!   does), which would either leave jidgate with a JID password that does
//!   not work or silently take over someone's account.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;
use xmpp_parsers::jid::BareJid;

use crate::backoff::Backoff;
use crate::xmpp::adhoc;
use crate::xmpp::admin::{self, AdminOutcome};
use crate::xmpp::{Connector, SessionHandle, XmppError, roster};

/// Account operations on the XMPP server. Every operation is idempotent in
/// outcome: deleting a missing account reports [`AdminOutcome::NoSuchUser`].
pub trait Provisioner: Send + Sync {
    fn add_user<'a>(
        &'a self,
        jid: &'a BareJid,
        password: &'a SecretString,
    ) -> BoxFuture<'a, Result<AdminOutcome, XmppError>>;

    fn delete_user<'a>(
        &'a self,
        jid: &'a BareJid,
    ) -> BoxFuture<'a, Result<AdminOutcome, XmppError>>;

    fn change_password<'a>(
        &'a self,
        jid: &'a BareJid,
        password: &'a SecretString,
    ) -> BoxFuture<'a, Result<AdminOutcome, XmppError>>;

    /// Ends the JID's live XMPP sessions (XEP-0133 end-user-session).
    fn end_sessions<'a>(&'a self, jid: &'a BareJid) -> BoxFuture<'a, Result<(), XmppError>>;

    /// True while the backend can take requests (for `/readyz`).
    fn is_ready(&self) -> bool;

    /// Resolves once the backend is ready, or after `timeout`.
    fn wait_ready(&self, timeout: Duration) -> BoxFuture<'_, bool>;
}

/// XEP-0133 over one admin session.
pub struct XmppProvisioner {
    current: watch::Receiver<Option<SessionHandle>>,
    /// For the login that checks a new account.
    connector: Connector,
    /// The admin session's resource; the check's is derived from it.
    resource: String,
}

impl XmppProvisioner {
    /// Starts the supervisor; it runs until `stop` resolves.
    pub fn start(
        connector: Connector,
        admin_jid: BareJid,
        admin_password: SecretString,
        resource: String,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Arc<XmppProvisioner> {
        let (tx, rx) = watch::channel(None);
        let provisioner = Arc::new(XmppProvisioner {
            current: rx,
            connector: connector.clone(),
            resource: resource.clone(),
        });
        tokio::spawn(async move {
            tokio::select! {
                _ = supervise(connector, admin_jid, admin_password, resource, tx) => {}
                _ = stop => {}
            }
        });
        provisioner
    }

    fn session(&self) -> Result<SessionHandle, XmppError> {
        match &*self.current.borrow() {
            Some(h) if !h.is_closed() => Ok(h.clone()),
            _ => Err(XmppError::NotConnected),
        }
    }

    /// add-user reported success: logs in as the new account with its new
    /// password and reads its roster, which tells a made account from an
    /// existing one ([`new_account_verdict`]).
    pub async fn check_new_account(
        &self,
        jid: &BareJid,
        password: &SecretString,
    ) -> Result<AdminOutcome, XmppError> {
        let resource = format!("{}-new", self.resource);
        let contacts = match self
            .connector
            .login(jid, password.expose_secret(), &resource)
            .await
        {
            Ok(session) => {
                let items = roster::get(&session).await;
                session.close().await;
                items.map(|items| items.len())
            }
            Err(e) => Err(e),
        };
        new_account_verdict(jid, contacts)
    }
}

/// What the login as a just-made account says about it: `contacts` is the
/// number of roster items it found, or why the login or roster get failed.
///
/// - Logged in, empty roster: the account is the new one ([`Done`]).
/// - The password refused: the server answered success but the account is
///   not one with our password: it existed already and the server kept its
///   password (or made nothing) ([`AlreadyExists`]; the caller leaves it
///   alone).
/// - Logged in, contacts in the roster: an account in use existed already
///   and the server overwrote its password with ours. That cannot be undone
///   from here (its old password is unknown): [`AlreadyExists`], and an
///   error in the log for an operator. jidgate's localparts are random (80
///   bits), so this takes a server that answers success for existing
///   accounts *and* a collision or someone else's account of that name.
/// - Anything else (the server went away, a timeout): an error, so the
///   caller undoes the creation as for any failed add-user.
///
/// [`Done`]: AdminOutcome::Done
/// [`AlreadyExists`]: AdminOutcome::AlreadyExists
pub fn new_account_verdict(
    jid: &BareJid,
    contacts: Result<usize, XmppError>,
) -> Result<AdminOutcome, XmppError> {
    match contacts {
        Ok(0) => Ok(AdminOutcome::Done),
        Ok(n) => {
            tracing::error!(
                %jid,
                contacts = n,
                "add-user answered success for an account that already existed and has \
                 contacts: the XMPP server overwrote its password (it answers success for \
                 existing accounts); the account was left alone"
            );
            Ok(AdminOutcome::AlreadyExists)
        }
        Err(e) if e.is_refused_password() => {
            tracing::error!(
                %jid,
                "add-user answered success, but the new password does not log in: the \
                 account already existed (the XMPP server answers success for existing \
                 accounts); it was left alone"
            );
            Ok(AdminOutcome::AlreadyExists)
        }
        Err(e) => Err(e),
    }
}

async fn supervise(
    connector: Connector,
    jid: BareJid,
    password: SecretString,
    resource: String,
    tx: watch::Sender<Option<SessionHandle>>,
) {
    // Logging in to a server that is down fails at once (connection
    // refused), so retrying often costs little; the cap bounds how long
    // after the server is back registrations still fail (issue 11: under
    // 1 s; docs/reliability.md).
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
    let mut was_down_logged = false;
    let mut missing_logged = false;
    loop {
        match connector
            .login(&jid, password.expose_secret(), &resource)
            .await
        {
            Ok(session) => {
                let handle = session.handle();
                // item-not-found must mean "no such account", never "no
                // such command": use the session only if the server offers
                // every command jidgate runs.
                let domain = BareJid::from_parts(None, jid.domain());
                let missing = match adhoc::offered_commands(&handle, &domain).await {
                    Ok(offered) => admin::command_is_missing(&offered).map(str::to_owned),
                    Err(e) => Some(format!("command discovery failed: {e}")),
                };
                if let Some(missing) = missing {
                    if !missing_logged {
                        tracing::error!(
                            jid = %session.jid(),
                            missing,
                            "the XMPP server does not offer the XEP-0133 commands jidgate needs \
                             to its admin (ejabberd: mod_adhoc, mod_configure and the admin \
                             ACL; Prosody: admin_adhoc and admins); retrying"
                        );
                        missing_logged = true;
                    }
                    session.close().await;
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
                tracing::info!(jid = %session.jid(), "XMPP admin session up");
                backoff.reset();
                was_down_logged = false;
                missing_logged = false;
                tx.send_replace(Some(handle.clone()));
                handle.closed().await;
                tx.send_replace(None);
                drop(session);
                tracing::warn!("XMPP admin session lost; reconnecting");
            }
            Err(e) => {
                if !was_down_logged {
                    tracing::warn!(error = %e, "XMPP admin login failed; retrying");
                    was_down_logged = true;
                } else {
                    tracing::debug!(error = %e, "XMPP admin login failed; retrying");
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

impl Provisioner for XmppProvisioner {
    fn add_user<'a>(
        &'a self,
        jid: &'a BareJid,
        password: &'a SecretString,
    ) -> BoxFuture<'a, Result<AdminOutcome, XmppError>> {
        Box::pin(async move {
            match admin::add_user(&self.session()?, jid, password.expose_secret()).await? {
                AdminOutcome::Done => self.check_new_account(jid, password).await,
                outcome => Ok(outcome),
            }
        })
    }

    fn delete_user<'a>(
        &'a self,
        jid: &'a BareJid,
    ) -> BoxFuture<'a, Result<AdminOutcome, XmppError>> {
        Box::pin(async move { admin::delete_user(&self.session()?, jid).await })
    }

    fn change_password<'a>(
        &'a self,
        jid: &'a BareJid,
        password: &'a SecretString,
    ) -> BoxFuture<'a, Result<AdminOutcome, XmppError>> {
        Box::pin(async move {
            admin::change_user_password(&self.session()?, jid, password.expose_secret()).await
        })
    }

    fn end_sessions<'a>(&'a self, jid: &'a BareJid) -> BoxFuture<'a, Result<(), XmppError>> {
        Box::pin(async move { admin::end_user_session(&self.session()?, jid).await })
    }

    fn is_ready(&self) -> bool {
        self.session().is_ok()
    }

    fn wait_ready(&self, timeout: Duration) -> BoxFuture<'_, bool> {
        let mut rx = self.current.clone();
        Box::pin(async move {
            tokio::time::timeout(
                timeout,
                rx.wait_for(|s| s.as_ref().is_some_and(|h| !h.is_closed())),
            )
            .await
            .is_ok_and(|r| r.is_ok())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};

    fn jid() -> BareJid {
        BareJid::new("d.abc@example.test").unwrap()
    }

    #[test]
    fn a_new_account_logs_in_with_an_empty_roster() {
        assert_eq!(
            new_account_verdict(&jid(), Ok(0)).unwrap(),
            AdminOutcome::Done
        );
    }

    #[test]
    fn an_account_whose_new_password_is_refused_existed_before() {
        // The server answered add-user with success but kept the existing
        // account's password (or made nothing).
        let verdict = new_account_verdict(&jid(), Err(XmppError::NotAuthorized));
        assert_eq!(verdict.unwrap(), AdminOutcome::AlreadyExists);
    }

    #[test]
    fn an_account_with_contacts_existed_before() {
        // The server overwrote an existing account's password.
        let verdict = new_account_verdict(&jid(), Ok(3));
        assert_eq!(verdict.unwrap(), AdminOutcome::AlreadyExists);
    }

    #[test]
    fn a_check_that_could_not_run_is_an_error() {
        for e in [
            XmppError::Timeout,
            XmppError::Closed,
            XmppError::Auth("Aborted".into()),
            XmppError::Stanza(Box::new(StanzaError::new(
                ErrorType::Wait,
                DefinedCondition::ResourceConstraint,
                "en",
                "",
            ))),
        ] {
            assert!(new_account_verdict(&jid(), Err(e)).is_err());
        }
    }
}

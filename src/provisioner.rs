//! Creating, deleting and re-keying JIDs on the XMPP server.
//!
//! One trait, backends chosen in config. The standard backend, `xmpp`, keeps
//! one long-lived admin c2s session and runs XEP-0133 commands over it; a
//! supervisor task logs in, notices when the session dies, and logs in again
//! with backoff. While it is down, calls fail at once (the register API
//! answers 101/112) instead of queueing.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;
use xmpp_parsers::jid::BareJid;

use crate::xmpp::adhoc::{self, AdminOutcome};
use crate::xmpp::{Connector, SessionHandle, XmppError};

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

    /// True while the backend can take requests (for `/readyz`).
    fn is_ready(&self) -> bool;

    /// Resolves once the backend is ready, or after `timeout`.
    fn wait_ready(&self, timeout: Duration) -> BoxFuture<'_, bool>;
}

/// XEP-0133 over one admin session.
pub struct XmppProvisioner {
    current: watch::Receiver<Option<SessionHandle>>,
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
        tokio::spawn(async move {
            tokio::select! {
                _ = supervise(connector, admin_jid, admin_password, resource, tx) => {}
                _ = stop => {}
            }
        });
        Arc::new(XmppProvisioner { current: rx })
    }

    fn session(&self) -> Result<SessionHandle, XmppError> {
        match &*self.current.borrow() {
            Some(h) if !h.is_closed() => Ok(h.clone()),
            _ => Err(XmppError::NotConnected),
        }
    }
}

async fn supervise(
    connector: Connector,
    jid: BareJid,
    password: SecretString,
    resource: String,
    tx: watch::Sender<Option<SessionHandle>>,
) {
    const FIRST: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(5);
    let mut delay = FIRST;
    let mut was_down_logged = false;
    loop {
        match connector
            .login(&jid, password.expose_secret(), &resource)
            .await
        {
            Ok(session) => {
                tracing::info!(jid = %session.jid(), "XMPP admin session up");
                delay = FIRST;
                was_down_logged = false;
                let handle = session.handle();
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
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX);
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
        Box::pin(
            async move { adhoc::add_user(&self.session()?, jid, password.expose_secret()).await },
        )
    }

    fn delete_user<'a>(
        &'a self,
        jid: &'a BareJid,
    ) -> BoxFuture<'a, Result<AdminOutcome, XmppError>> {
        Box::pin(async move { adhoc::delete_user(&self.session()?, jid).await })
    }

    fn change_password<'a>(
        &'a self,
        jid: &'a BareJid,
        password: &'a SecretString,
    ) -> BoxFuture<'a, Result<AdminOutcome, XmppError>> {
        Box::pin(async move {
            adhoc::change_user_password(&self.session()?, jid, password.expose_secret()).await
        })
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

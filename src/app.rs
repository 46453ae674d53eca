//! The shared state of one jidgate instance.

use std::ops::Deref;
use std::sync::Arc;

use secrecy::SecretString;
use xmpp_parsers::jid::BareJid;

use crate::config::Config;
use crate::crypto::{JidCipher, PasswordPool};
use crate::db::Account;
use crate::db::Db;
use crate::db::account as accounts;
use crate::error::Error;
use crate::faults::Faults;
use crate::provisioner::Provisioner;
use crate::ratelimit::Limits;
use crate::signing::Keyring;
use crate::tokens::Tokens;
use crate::xmpp::adhoc::AdminOutcome;
use crate::xmpp::{Connector, XmppError};

/// Everything a request handler may need.
pub struct AppInner {
    pub config: Config,
    pub db: Db,
    pub keyring: Keyring,
    /// Argon2 hashing and verification, on a bounded pool of threads.
    pub hasher: PasswordPool,
    pub jid_cipher: JidCipher,
    pub provisioner: Arc<dyn Provisioner>,
    /// For sessions as users (rosters).
    pub xmpp: Connector,
    pub tokens: Tokens,
    pub limits: Limits,
    pub faults: Faults,
}

/// Cheap to clone; the axum state.
#[derive(Clone)]
pub struct App(pub Arc<AppInner>);

impl Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl App {
    /// The bare JID of an account.
    pub fn jid_of(&self, account: &Account) -> Result<BareJid, Error> {
        self.jid_from_local(&account.jid_local)
    }

    pub fn jid_from_local(&self, local: &str) -> Result<BareJid, Error> {
        BareJid::new(&format!("{local}@{}", self.config.xmpp.domain)).map_err(Error::internal)
    }

    /// The decrypted JID password of an account.
    pub fn jid_password(&self, account: &Account) -> Result<SecretString, Error> {
        let jid = self.jid_of(account)?;
        self.jid_cipher
            .decrypt(jid.as_str(), &account.jid_pwd_enc)
            .map_err(Error::Internal)
    }

    /// Hashes a password on the password pool (13 when it is full).
    pub async fn hash_password(&self, password: SecretString) -> Result<String, Error> {
        self.hasher.hash(password).await
    }

    /// Checks a password on the password pool (`None`: no such account,
    /// checked against the dummy hash all the same; 13 when it is full).
    pub async fn verify_password(
        &self,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<bool, Error> {
        self.hasher.verify(password, stored).await
    }

    /// Logs in to the XMPP server as an account, with its stored password.
    /// A refused password is 105; an unreachable server 112.
    ///
    /// If the server refuses the stored JID password (someone changed it
    /// behind jidgate's back, e.g. over XEP-0077 before in-band registration
    /// was turned off), jidgate puts its own back with the admin
    /// change-user-password command, logs a warning and logs in again: see
    /// `repair_jid_password`.
    pub async fn login_as(&self, account: &Account) -> Result<crate::xmpp::Session, Error> {
        use secrecy::ExposeSecret;
        let jid = self.jid_of(account)?;
        let password = self.jid_password(account)?;
        let resource = format!(
            "{}-{}",
            self.config.xmpp.resource,
            crate::crypto::random_token::<6>()
        );
        let as_error = |e: XmppError| {
            if e.is_auth() {
                Error::JidPassword
            } else {
                Error::from(e)
            }
        };
        match self
            .xmpp
            .login(&jid, password.expose_secret(), &resource)
            .await
        {
            Ok(session) => return Ok(session),
            Err(e) if e.is_refused_password() => {}
            Err(e) => return Err(as_error(e)),
        }
        let password = self.repair_jid_password(account.id, &jid).await?;
        self.xmpp
            .login(&jid, password.expose_secret(), &resource)
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
    async fn repair_jid_password(&self, id: i64, jid: &BareJid) -> Result<SecretString, Error> {
        let fresh = accounts::by_id(&self.db, id)
            .await?
            .filter(Account::is_active)
            .ok_or(Error::JidPassword)?;
        let pending = fresh.jid_pwd_next.is_some();
        let blob = fresh.jid_pwd_next.as_ref().unwrap_or(&fresh.jid_pwd_enc);
        let password = self
            .jid_cipher
            .decrypt(jid.as_str(), blob)
            .map_err(Error::Internal)?;
        match self.provisioner.change_password(jid, &password).await {
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
}

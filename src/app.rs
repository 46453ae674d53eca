//! The shared state of one jidgate instance.

use std::ops::Deref;
use std::sync::Arc;

use secrecy::SecretString;
use xmpp_parsers::jid::BareJid;

use crate::accounts::store::Account;
use crate::config::Config;
use crate::crypto::{JidCipher, PasswordHasher};
use crate::db::Db;
use crate::error::Error;
use crate::faults::Faults;
use crate::provisioner::Provisioner;
use crate::ratelimit::Limits;
use crate::signing::Keyring;
use crate::tokens::Tokens;
use crate::xmpp::Connector;

/// Everything a request handler may need.
pub struct AppInner {
    pub config: Config,
    pub db: Db,
    pub keyring: Keyring,
    pub hasher: PasswordHasher,
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

    /// Hashes a password off the async threads.
    pub async fn hash_password(&self, password: SecretString) -> Result<String, Error> {
        let hasher = self.hasher.clone();
        tokio::task::spawn_blocking(move || {
            use secrecy::ExposeSecret;
            hasher.hash(password.expose_secret())
        })
        .await
        .map_err(Error::internal)?
        .map_err(Error::Internal)
    }

    /// Checks a password off the async threads (`None`: no such account).
    pub async fn verify_password(&self, password: SecretString, stored: Option<String>) -> bool {
        let hasher = self.hasher.clone();
        tokio::task::spawn_blocking(move || {
            use secrecy::ExposeSecret;
            hasher.verify(password.expose_secret(), stored.as_deref())
        })
        .await
        .unwrap_or(false)
    }

    /// Logs in to the XMPP server as an account, with its stored password.
    /// A refused password is 105; an unreachable server 112.
    pub async fn login_as(&self, account: &Account) -> Result<crate::xmpp::Session, Error> {
        let jid = self.jid_of(account)?;
        let password = self.jid_password(account)?;
        use secrecy::ExposeSecret;
        let resource = format!(
            "{}-{}",
            self.config.xmpp.resource,
            crate::crypto::random_token::<6>()
        );
        self.xmpp
            .login(&jid, password.expose_secret(), &resource)
            .await
            .map_err(|e| {
                if e.is_auth() {
                    Error::JidPassword
                } else {
                    Error::from(e)
                }
            })
    }
}

//! The shared state of one jidgate instance.

use std::ops::Deref;
use std::sync::Arc;

use secrecy::SecretString;
use xmpp_parsers::jid::BareJid;

use crate::accounts::store::Account;
use crate::config::Config;
use crate::crypto::{JidCipher, PasswordPool};
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

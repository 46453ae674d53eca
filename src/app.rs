//! The shared state of one jidgate instance.

use std::ops::Deref;
use std::sync::Arc;

use crate::config::Config;
use crate::crypto::{JidCipher, PasswordPool};
use crate::db::Db;
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
    /// This instance's id among several on one database
    /// (`instance.id`, resolved once at start-up).
    pub instance_id: String,
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
    /// The XMPP domain every account's JID is on.
    pub fn domain(&self) -> &str {
        &self.config.xmpp.domain
    }

    /// This instance's id: the resource (suffix) of every XMPP session the
    /// instance opens for itself, so that several instances on one XMPP
    /// server never replace each other's sessions.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// The resource for one of this instance's own XMPP sessions of the
    /// given purpose (`admin`, a binding session's random tag, …):
    /// `<xmpp.resource>-<purpose>-<instance id>`.
    pub fn own_resource(&self, purpose: &str) -> String {
        own_resource(&self.config, purpose, &self.instance_id)
    }
}

/// See [`App::own_resource`] (for use before the `App` exists).
pub fn own_resource(config: &Config, purpose: &str, instance_id: &str) -> String {
    format!("{}-{purpose}-{instance_id}", config.xmpp.resource)
}

//! The XMPP servers the integration tests run against, Prosody and
//! ejabberd, behind one type, and [`on_each_server!`], which runs a test
//! body once per server and reports each run on its own
//! (`register::prosody::name`, `register::ejabberd::name`).
//!
//! Each test starts its own server process (ejabberd ≈ 1 s to its c2s port
//! plus ≈ 0.4 s to register the admin account with ejabberdctl), so tests
//! stay isolated, may kill and resume their server, and count its accounts
//! exactly.

#![allow(dead_code)] // a harness: each test uses part of it

use std::path::Path;

use jidgate::Config;
use jidgate::xmpp::{Connector, Session, XmppError};
use xmpp_parsers::jid::BareJid;

use crate::ejabberd::Ejabberd;
use crate::helpers::{ADMIN_PASSWORD, DOMAIN, JID_KEY, Prosody};

/// Which XMPP server a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Prosody,
    Ejabberd,
}

/// A running XMPP server of either kind, with what the tests use of it.
#[derive(Clone)]
pub enum XmppServer {
    Prosody(Prosody),
    Ejabberd(Ejabberd),
}

/// Anything the shared helpers accept as "the XMPP server": [`Prosody`] (for
/// the tests that run against Prosody only), [`Ejabberd`], [`XmppServer`].
pub trait AnyServer: Clone + Into<XmppServer> {
    fn server(&self) -> XmppServer {
        self.clone().into()
    }
}

impl<T: Clone + Into<XmppServer>> AnyServer for T {}

impl From<Prosody> for XmppServer {
    fn from(p: Prosody) -> XmppServer {
        XmppServer::Prosody(p)
    }
}

impl From<Ejabberd> for XmppServer {
    fn from(e: Ejabberd) -> XmppServer {
        XmppServer::Ejabberd(e)
    }
}

impl XmppServer {
    /// Plaintext on loopback, with an admin account.
    pub async fn start(kind: Kind) -> XmppServer {
        match kind {
            Kind::Prosody => Prosody::start().await.into(),
            Kind::Ejabberd => Ejabberd::start().await.into(),
        }
    }

    /// StartTLS required, certificate from a fresh test CA.
    pub async fn start_tls(kind: Kind) -> XmppServer {
        match kind {
            Kind::Prosody => Prosody::start_tls().await.into(),
            Kind::Ejabberd => Ejabberd::start_tls().await.into(),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            XmppServer::Prosody(_) => Kind::Prosody,
            XmppServer::Ejabberd(_) => Kind::Ejabberd,
        }
    }

    /// The c2s port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        match self {
            XmppServer::Prosody(p) => p.port,
            XmppServer::Ejabberd(e) => e.port(),
        }
    }

    /// The server's temp dir (its TLS files are there).
    pub fn dir(&self) -> &Path {
        match self {
            XmppServer::Prosody(p) => p.dir.path(),
            XmppServer::Ejabberd(e) => e.dir(),
        }
    }

    /// The test CA's certificate, when the server speaks StartTLS.
    pub fn ca_file(&self) -> Option<&Path> {
        match self {
            XmppServer::Prosody(p) => p.ca_file.as_deref(),
            XmppServer::Ejabberd(e) => e.ca_file(),
        }
    }

    /// The `[xmpp]` and `[secrets]` tables for a jidgate using this server.
    pub fn xmpp_toml(&self) -> String {
        xmpp_toml_for(self.port(), self.ca_file())
    }

    /// Connection settings for a client of this server.
    pub fn connector(&self) -> Connector {
        let cfg = Config::from_toml(&self.xmpp_toml()).unwrap();
        Connector::from_config(&cfg.xmpp).unwrap()
    }

    /// Logs in as a user, as any XMPP client would.
    pub async fn login(&self, jid: &str, password: &str) -> Result<Session, XmppError> {
        let jid = BareJid::new(jid).unwrap();
        self.connector().login(&jid, password, "test").await
    }

    /// The accounts the server has (localparts, sorted), from its own
    /// storage or tools, not through jidgate.
    pub fn accounts(&self) -> Vec<String> {
        match self {
            XmppServer::Prosody(p) => p.accounts(),
            XmppServer::Ejabberd(e) => e.accounts(),
        }
    }

    pub fn has_account(&self, localpart: &str) -> bool {
        self.accounts().iter().any(|a| a == localpart)
    }

    /// SIGKILL (a crash); see [`Ejabberd::kill`] for what ejabberd first
    /// writes to disk.
    pub fn kill(&self) {
        match self {
            XmppServer::Prosody(p) => p.kill(),
            XmppServer::Ejabberd(e) => e.kill(),
        }
    }

    /// Starts the killed server again on the same port and data.
    pub async fn resume(&self) {
        match self {
            XmppServer::Prosody(p) => p.resume().await,
            XmppServer::Ejabberd(e) => e.resume().await,
        }
    }
}

/// The `[xmpp]` and `[secrets]` tables for a jidgate using the server on
/// 127.0.0.1:`port` (StartTLS with `ca_file` when given).
pub fn xmpp_toml_for(port: u16, ca_file: Option<&Path>) -> String {
    let security = match ca_file {
        None => "security = \"plaintext\"".to_owned(),
        Some(ca) => format!(
            "security = \"starttls\"\nca_file = {:?}",
            ca.display().to_string()
        ),
    };
    format!(
        "[xmpp]\ndomain = \"{DOMAIN}\"\nserver = \"127.0.0.1:{port}\"\n{security}\n\
         admin_jid = \"admin@{DOMAIN}\"\nadmin_password = \"{ADMIN_PASSWORD}\"\ntimeout = 3\n\
         [secrets]\njid_key = \"{JID_KEY}\"\n"
    )
}

/// Turns each listed `async fn name(kind: Kind)` of the calling module into
/// two tests, `prosody::name` and `ejabberd::name` (filter with `cargo test
/// ejabberd::`).
macro_rules! on_each_server {
    ($($test:ident),+ $(,)?) => {
        mod prosody {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test($crate::servers::Kind::Prosody).await
                }
            )+
        }
        mod ejabberd {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test($crate::servers::Kind::Ejabberd).await
                }
            )+
        }
    };
}

pub(crate) use on_each_server;

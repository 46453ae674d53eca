//! Layered configuration: the embedded `config/default.toml`, then an
//! optional file, then `JIDGATE__SECTION__KEY` environment variables.

use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The commented default configuration, compiled in.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Everything jidgate can be told.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub http: HttpConfig,
    pub tls: TlsConfig,
    pub database: DatabaseConfig,
    pub xmpp: XmppConfig,
    pub provisioner: ProvisionerConfig,
    pub signing: SigningConfig,
    #[serde(default)]
    pub apps: Vec<AppConfig>,
    pub secrets: SecretsConfig,
    pub passwords: PasswordConfig,
    pub captcha: CaptchaConfig,
    pub tokens: TokenConfig,
    pub token_service: TokenServiceConfig,
    pub binding: BindingConfig,
    pub rate_limits: RateLimitConfig,
    pub reconcile: ReconcileConfig,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub request_timeout: u64,
    pub client_ip_header: String,
    /// Proxies whose `client_ip_header` is believed (addresses or CIDRs).
    #[serde(default)]
    pub trusted_proxies: Vec<Cidr>,
    /// Seconds a connection has to deliver a request's headers (from its
    /// start, or from the previous answer on a kept-alive connection).
    pub header_read_timeout: u64,
    /// Seconds a TLS handshake may take.
    pub tls_handshake_timeout: u64,
    /// Most HTTP connections served at once; more wait in the kernel's
    /// accept queue.
    pub max_connections: usize,
    /// HTTP/2: most streams (requests) open at once on one connection.
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2: seconds between keep-alive pings (0: none); a ping not
    /// answered within `header_read_timeout` closes the connection.
    pub http2_keep_alive_interval: u64,
}

/// An address range (`10.0.0.0/8`, `fd00::/8`) or one address (`10.0.0.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr(pub ipnet::IpNet);

impl TryFrom<String> for Cidr {
    type Error = String;

    fn try_from(text: String) -> Result<Cidr, String> {
        let text = text.trim();
        if let Ok(net) = text.parse::<ipnet::IpNet>() {
            return Ok(Cidr(net.trunc()));
        }
        text.parse::<std::net::IpAddr>()
            .map(|ip| Cidr(ipnet::IpNet::from(ip)))
            .map_err(|_| format!("{text:?} is not an IP address or CIDR range"))
    }
}

impl Cidr {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        self.0.contains(&ip)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct TlsConfig {
    pub cert: String,
    pub key: String,
}

impl TlsConfig {
    /// Both files configured: serve TLS.
    pub fn enabled(&self) -> bool {
        !self.cert.is_empty() && !self.key.is_empty()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
}

/// How jidgate's sessions reach the XMPP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XmppSecurity {
    Starttls,
    Plaintext,
}

#[derive(Debug, Clone, Deserialize)]
pub struct XmppConfig {
    pub domain: String,
    pub server: String,
    pub security: XmppSecurity,
    pub ca_file: String,
    pub tls_server_name: String,
    pub admin_jid: String,
    pub admin_password: SecretString,
    pub timeout: u64,
    pub resource: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ProvisionerConfig {
    pub backend: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SigningConfig {
    pub window: u64,
}

/// What an application may do, and how its request key is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppKind {
    /// Phone and WeChat apps: key = secret; captchas where the API asks.
    App,
    /// A device product: key = HMAC-SHA256(secret, user_name).
    Device,
    /// A back-end service: token service and `/verify_access_token`.
    Service,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AppConfig {
    pub app_id: String,
    pub secret: SecretString,
    pub kind: AppKind,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SecretsConfig {
    pub jid_key: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PasswordConfig {
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Threads hashing and verifying passwords (0: one per core).
    pub workers: usize,
    /// Hashes waiting for a worker beyond which requests answer 13
    /// (0: 16 per worker).
    pub queue: usize,
}

impl PasswordConfig {
    /// The number of hashing threads.
    pub fn workers(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    /// The number of hashes that may wait for a thread.
    pub fn queue(&self) -> usize {
        if self.queue > 0 {
            self.queue
        } else {
            16 * self.workers()
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct CaptchaConfig {
    pub ttl: u64,
    pub length: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TokenConfig {
    pub access_ttl: u64,
    pub refresh_ttl: u64,
    pub cache_revalidate: u64,
    /// Most sessions (logins) an account keeps; a login past it ends the
    /// session least recently opened or refreshed.
    pub max_sessions_per_account: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TokenServiceConfig {
    pub listen: String,
    pub threads: usize,
    pub idle_timeout: u64,
    pub max_line_bytes: usize,
    /// Seconds from accept (TLS handshake included) to a good hello.
    pub hello_timeout: u64,
    /// Most connections open at once, over all threads.
    pub max_connections: usize,
    /// Most requests of one connection waiting for the database.
    pub max_in_flight: usize,
    /// Most database look-ups in progress, over all connections.
    pub max_db_tasks: usize,
}

/// Proof required to bind a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindProof {
    BindCode,
    None,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BindingConfig {
    pub proof: BindProof,
    pub bind_code_ttl: u64,
    pub max_names: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitConfig {
    pub verify_code_per_minute: u32,
    pub register_per_minute: u32,
    pub failed_login_per_ip_per_minute: u32,
    pub failed_login_per_account_per_minute: u32,
    pub bind_code_per_minute: u32,
    pub failed_bind_code_per_ip_per_minute: u32,
    /// Seconds an account needs a captcha to log in after a failed login
    /// without one named it (WeChat users).
    pub captcha_after_failed_login: u64,
    /// Most names in one `/get_users`.
    pub get_users_max_names: usize,
    pub get_users_names_per_account_per_minute: u32,
    pub get_users_names_per_ip_per_minute: u32,
    pub get_user_banding_per_account_per_minute: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReconcileConfig {
    pub interval: u64,
    pub grace: u64,
    pub drift_interval: u64,
    pub concurrency: usize,
    /// Failed attempts after which a row is an alert (error log, /readyz).
    pub alert_after: u32,
}

/// A configuration that cannot work, found before anything starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads the embedded defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment.merge(Env::prefixed("JIDGATE__").split("__"));
        Self::from_figment(figment)
    }

    /// Embedded defaults with `overlay` (TOML text) on top; no environment.
    /// Used by tests and by tools that build a configuration in memory.
    pub fn from_toml(overlay: &str) -> Result<Config, ConfigError> {
        Self::from_toml_layers(&[overlay])
    }

    /// Embedded defaults with each of `layers` merged on top, in order.
    pub fn from_toml_layers(layers: &[&str]) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        for layer in layers {
            figment = figment.merge(Toml::string(layer));
        }
        Self::from_figment(figment)
    }

    fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: cross-field rules and key material.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |msg: String| Err(ConfigError::Invalid(msg));
        if !self.tls.enabled() && !self.http.listen.ip().is_loopback() {
            return bad(format!(
                "http.listen = {} is not a loopback address: configure tls.cert and tls.key",
                self.http.listen
            ));
        }
        if self.tls.cert.is_empty() != self.tls.key.is_empty() {
            return bad("tls.cert and tls.key must be set together".into());
        }
        if !self.token_service.listen.is_empty() {
            let addr: SocketAddr = self.token_service.listen.parse().map_err(|_| {
                ConfigError::Invalid(format!(
                    "token_service.listen = {:?} is not host:port",
                    self.token_service.listen
                ))
            })?;
            if !self.tls.enabled() && !addr.ip().is_loopback() {
                return bad(format!(
                    "token_service.listen = {addr} is not a loopback address: configure tls.cert and tls.key"
                ));
            }
        }
        self.validate_connections()?;
        if self.xmpp.security == XmppSecurity::Plaintext {
            let loopback = self
                .xmpp
                .server
                .parse::<SocketAddr>()
                .map(|a| a.ip().is_loopback())
                .unwrap_or(false);
            if !loopback {
                return bad(format!(
                    "xmpp.security = \"plaintext\" needs a loopback xmpp.server (got {:?})",
                    self.xmpp.server
                ));
            }
        }
        if xmpp_parsers::jid::BareJid::new(&self.xmpp.admin_jid).is_err() {
            return bad(format!(
                "xmpp.admin_jid = {:?} is not a JID",
                self.xmpp.admin_jid
            ));
        }
        if xmpp_parsers::jid::BareJid::new(&self.xmpp.domain).is_err() {
            return bad(format!(
                "xmpp.domain = {:?} is not a domain",
                self.xmpp.domain
            ));
        }
        self.jid_key()?;
        let mut seen = std::collections::HashSet::new();
        for app in &self.apps {
            if app.app_id.is_empty()
                || app.app_id.len() > 64
                || !app
                    .app_id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return bad(format!(
                    "app_id {:?}: 1-64 characters of A-Z a-z 0-9 - _ .",
                    app.app_id
                ));
            }
            if !seen.insert(app.app_id.as_str()) {
                return bad(format!("app_id {:?} is listed twice", app.app_id));
            }
            if app.secret.expose_secret().len() < 32 {
                return bad(format!(
                    "the secret of app {:?} is shorter than 32 characters",
                    app.app_id
                ));
            }
        }
        if self.binding.max_names == 0 || self.binding.max_names > 1000 {
            return bad("binding.max_names must be 1..=1000".into());
        }
        if !(4..=8).contains(&self.captcha.length) {
            return bad("captcha.length must be 4..=8".into());
        }
        if self.tokens.max_sessions_per_account == 0 {
            return bad("tokens.max_sessions_per_account must be at least 1".into());
        }
        let r = &self.rate_limits;
        if !(1..=crate::accounts::MAX_LOOKUP_NAMES).contains(&r.get_users_max_names) {
            return bad(format!(
                "rate_limits.get_users_max_names must be 1..={}",
                crate::accounts::MAX_LOOKUP_NAMES
            ));
        }
        if (r.get_users_names_per_account_per_minute as usize) < r.get_users_max_names
            || (r.get_users_names_per_ip_per_minute as usize) < r.get_users_max_names
        {
            return bad(
                "rate_limits.get_users_names_per_*_per_minute must be at least get_users_max_names"
                    .into(),
            );
        }
        if r.captcha_after_failed_login == 0 {
            return bad("rate_limits.captcha_after_failed_login must be at least 1".into());
        }
        if self.passwords.workers > 1024 || self.passwords.queue > 1_000_000 {
            return bad("passwords.workers must be at most 1024, passwords.queue 1000000".into());
        }
        if self.reconcile.concurrency == 0 {
            return bad("reconcile.concurrency must be at least 1".into());
        }
        if self.reconcile.alert_after == 0 {
            return bad("reconcile.alert_after must be at least 1".into());
        }
        if self.provisioner.backend != "xmpp" {
            return bad(format!(
                "provisioner.backend = {:?}: this build knows \"xmpp\"",
                self.provisioner.backend
            ));
        }
        Ok(())
    }

    /// Timeouts and caps of the listeners; trusted proxies.
    fn validate_connections(&self) -> Result<(), ConfigError> {
        let bad = |msg: String| Err(ConfigError::Invalid(msg));
        let (h, t) = (&self.http, &self.token_service);
        for (name, value) in [
            ("http.header_read_timeout", h.header_read_timeout),
            ("http.tls_handshake_timeout", h.tls_handshake_timeout),
            ("http.max_connections", h.max_connections as u64),
            (
                "http.http2_max_concurrent_streams",
                h.http2_max_concurrent_streams as u64,
            ),
            ("token_service.idle_timeout", t.idle_timeout),
            ("token_service.hello_timeout", t.hello_timeout),
            ("token_service.max_connections", t.max_connections as u64),
            ("token_service.max_in_flight", t.max_in_flight as u64),
            ("token_service.max_db_tasks", t.max_db_tasks as u64),
        ] {
            if value == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        // Semaphores count permits in u32 (and tokio caps them lower).
        if h.max_connections > 1 << 20 || t.max_connections > 1 << 20 || t.max_db_tasks > 1 << 20 {
            return bad("connection and task caps must be at most 1048576".into());
        }
        if !h.client_ip_header.is_empty() {
            if axum::http::HeaderName::from_bytes(h.client_ip_header.as_bytes()).is_err() {
                return bad(format!(
                    "http.client_ip_header = {:?} is not a header name",
                    h.client_ip_header
                ));
            }
            if h.trusted_proxies.is_empty() {
                return bad(
                    "http.client_ip_header needs http.trusted_proxies: the addresses of the \
                     reverse proxies allowed to set it (e.g. [\"127.0.0.1\"])"
                        .into(),
                );
            }
        }
        Ok(())
    }

    /// The 32-byte JID password key.
    pub fn jid_key(&self) -> Result<[u8; 32], ConfigError> {
        let text = self.secrets.jid_key.expose_secret();
        let mut key = [0u8; 32];
        match hex::decode_to_slice(text, &mut key) {
            Ok(()) => Ok(key),
            Err(_) => Err(ConfigError::Invalid(
                "secrets.jid_key must be 64 hex digits (32 bytes): generate one with `jidgate gen-key`"
                    .into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn embedded_defaults_need_only_a_key() {
        let err = Config::from_toml("").unwrap_err();
        assert!(err.to_string().contains("jid_key"), "{err}");
        let cfg = Config::from_toml(&format!("[secrets]\njid_key = \"{KEY}\"")).unwrap();
        assert_eq!(cfg.http.listen.port(), 8080);
        assert_eq!(cfg.binding.proof, BindProof::BindCode);
        assert_eq!(cfg.tokens.max_sessions_per_account, 10);
        assert_eq!(cfg.jid_key().unwrap()[1], 0x11);
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let cfg = Config::from_toml(&format!(
            "[secrets]\njid_key = \"{KEY}\"\n[xmpp]\nadmin_password = \"hunter2-admin\"\n\
             [[apps]]\napp_id = \"a\"\nsecret = \"{KEY}\"\nkind = \"app\""
        ))
        .unwrap();
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains(KEY), "{shown}");
    }

    #[test]
    fn plain_http_only_on_loopback() {
        let err = Config::from_toml(&format!(
            "[secrets]\njid_key = \"{KEY}\"\n[http]\nlisten = \"0.0.0.0:8080\""
        ))
        .unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
    }

    #[test]
    fn plaintext_xmpp_only_on_loopback() {
        let err = Config::from_toml(&format!(
            "[secrets]\njid_key = \"{KEY}\"\n[xmpp]\nsecurity = \"plaintext\"\nserver = \"10.0.0.1:5222\""
        ))
        .unwrap_err();
        assert!(err.to_string().contains("plaintext"), "{err}");
    }

    #[test]
    fn short_app_secrets_are_refused() {
        let err = Config::from_toml(&format!(
            "[secrets]\njid_key = \"{KEY}\"\n[[apps]]\napp_id = \"a\"\nsecret = \"short\"\nkind = \"app\""
        ))
        .unwrap_err();
        assert!(err.to_string().contains("shorter"), "{err}");
    }

    #[test]
    fn connection_limits_and_trusted_proxies_are_checked() {
        let with =
            |extra: &str| Config::from_toml(&format!("[secrets]\njid_key = \"{KEY}\"\n{extra}"));
        for zero in [
            "[http]\nheader_read_timeout = 0",
            "[http]\nmax_connections = 0",
            "[token_service]\nhello_timeout = 0",
            "[token_service]\nmax_in_flight = 0",
            "[token_service]\nmax_db_tasks = 0",
            "[token_service]\nmax_connections = 0",
        ] {
            let err = with(zero).unwrap_err();
            assert!(err.to_string().contains("at least 1"), "{zero}: {err}");
        }
        let err = with("[http]\nclient_ip_header = \"x-forwarded-for\"").unwrap_err();
        assert!(err.to_string().contains("trusted_proxies"), "{err}");
        let err =
            with("[http]\nclient_ip_header = \"x forwarded\"\ntrusted_proxies = [\"10.0.0.1\"]")
                .unwrap_err();
        assert!(err.to_string().contains("header name"), "{err}");
        let err = with("[http]\ntrusted_proxies = [\"10.0.0.0/40\"]").unwrap_err();
        assert!(err.to_string().contains("CIDR"), "{err}");
        let cfg = with(
            "[http]\nclient_ip_header = \"x-forwarded-for\"\n\
             trusted_proxies = [\"10.0.0.1\", \"192.168.0.0/16\", \"fd00::/8\"]",
        )
        .unwrap();
        assert_eq!(cfg.http.trusted_proxies.len(), 3);
        assert!(cfg.http.trusted_proxies[1].contains("192.168.7.7".parse().unwrap()));
        assert!(!cfg.http.trusted_proxies[0].contains("10.0.0.2".parse().unwrap()));
    }
}

//! The sections of the configuration, as `config/default.toml` lays them
//! out.

use std::net::SocketAddr;

use secrecy::SecretString;
use serde::Deserialize;

/// The most names one look-up may ask for: a token service `get_users`,
/// and the most `rate_limits.get_users_max_names` may allow `/get_users`.
pub const MAX_LOOKUP_NAMES: usize = 100;

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
    /// `sqlite://PATH` (the embedded default) or `postgres://…`.
    pub url: String,
    pub max_connections: u32,
    /// Connections kept open even when idle (PostgreSQL).
    #[serde(default)]
    pub min_connections: u32,
    /// Seconds a request waits for a free connection before failing.
    #[serde(default = "default_acquire_timeout")]
    pub acquire_timeout: u64,
    /// Seconds an idle connection is kept (0: for ever).
    #[serde(default)]
    pub idle_timeout: u64,
    /// PostgreSQL `statement_timeout`, in milliseconds (0: none).
    #[serde(default = "default_statement_timeout")]
    pub statement_timeout_ms: u64,
    /// PostgreSQL TLS: `disable`, `allow`, `prefer`, `require`, `verify-ca`
    /// or `verify-full`; empty keeps what the URL says (`prefer` if nothing).
    #[serde(default)]
    pub sslmode: String,
    /// PEM file of the CA that signed the PostgreSQL server's certificate
    /// (for `verify-ca` and `verify-full`).
    #[serde(default)]
    pub ssl_root_cert: String,
    /// PostgreSQL: carry token revocations to every instance at once with
    /// `LISTEN`/`NOTIFY` (otherwise within `tokens.cache_revalidate`).
    #[serde(default = "default_true")]
    pub notify: bool,
}

fn default_acquire_timeout() -> u64 {
    10
}

fn default_statement_timeout() -> u64 {
    30_000
}

fn default_true() -> bool {
    true
}

/// Who this jidgate instance is among several on one database.
#[derive(Debug, Clone, Deserialize)]
pub struct InstanceConfig {
    /// The instance's name, unique among the instances sharing a database
    /// and an XMPP server: it is the resource of the instance's own XMPP
    /// sessions. Empty (the default): the host name and process id.
    #[serde(default)]
    pub id: String,
    /// How many instances share the database: each keeps this share of the
    /// in-memory rate budgets (failed logins, `/get_users` names, wrong
    /// bind codes), so that together they hold the configured rate.
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

impl Default for InstanceConfig {
    fn default() -> InstanceConfig {
        InstanceConfig {
            id: String::new(),
            count: 1,
        }
    }
}

impl InstanceConfig {
    /// The configured id, or `<host name>-<process id>` (unique on a host,
    /// and across hosts with distinct names), made safe for a resource.
    pub fn resolve(&self) -> String {
        let id = if self.id.is_empty() {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .or_else(|_| std::fs::read_to_string("/etc/hostname"))
                .unwrap_or_default();
            let host = host.trim();
            let host = if host.is_empty() { "jidgate" } else { host };
            // Room for the process id within the 64 characters kept.
            let host: String = host.chars().take(40).collect();
            format!("{host}-{}", std::process::id())
        } else {
            self.id.clone()
        };
        id.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect()
    }
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
    /// Items of one list call handled at once (handshakes in flight).
    pub concurrency: usize,
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

/// The Prometheus metrics listener.
#[derive(Debug, Clone, Deserialize)]
pub struct MetricsConfig {
    /// `host:port` serving `GET /metrics` over plain HTTP; empty: none.
    pub listen: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line, with the span fields (request id, route,
    /// user), for log shippers.
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogConfig {
    /// `--log-format` overrides it.
    pub format: LogFormat,
}

/// The operator console at `/console`.
#[derive(Debug, Clone, Deserialize)]
pub struct ConsoleConfig {
    /// Serve `/console` on the register API's listener.
    pub enabled: bool,
    /// Seconds a console session may stay idle.
    pub idle_timeout: u64,
    /// Failed logins of an operator after which the login needs a captcha.
    pub captcha_after: u32,
}

/// When the API playground at `/playground` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlaygroundMode {
    /// When `http.listen` is a loopback address.
    Auto,
    On,
    Off,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PlaygroundConfig {
    pub enabled: PlaygroundMode,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_id_is_configured_or_host_and_pid_and_safe_as_a_resource() {
        let named = InstanceConfig {
            id: "eu west/1".into(),
            count: 2,
        };
        assert_eq!(named.resolve(), "eu_west_1");
        let default = InstanceConfig::default().resolve();
        assert!(
            default.ends_with(&format!("-{}", std::process::id())),
            "{default}"
        );
        assert!(
            default
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        );
        assert_eq!(InstanceConfig::default().count, 1);
    }
}

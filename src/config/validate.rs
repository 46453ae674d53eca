//! What serde cannot check: cross-field rules, limits and key material,
//! found before anything starts.

use std::net::SocketAddr;

use secrecy::ExposeSecret;

use super::{Config, ConfigError, MAX_LOOKUP_NAMES, XmppSecurity};

impl Config {
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
        if self.binding.concurrency == 0 || self.binding.concurrency > 1000 {
            return bad("binding.concurrency must be 1..=1000".into());
        }
        if !(4..=8).contains(&self.captcha.length) {
            return bad("captcha.length must be 4..=8".into());
        }
        if self.tokens.max_sessions_per_account == 0 {
            return bad("tokens.max_sessions_per_account must be at least 1".into());
        }
        let r = &self.rate_limits;
        if !(1..=MAX_LOOKUP_NAMES).contains(&r.get_users_max_names) {
            return bad(format!(
                "rate_limits.get_users_max_names must be 1..={}",
                MAX_LOOKUP_NAMES
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BindProof;

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

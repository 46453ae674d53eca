//! Layered configuration: the embedded `config/default.toml`, then an
//! optional file, then `JIDGATE__SECTION__KEY` environment variables. The
//! sections are in [`sections`], the cross-field checks in `validate.rs`.

pub mod facade;
pub mod sections;
mod validate;

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::ExposeSecret;
use serde::Deserialize;

pub use facade::FacadeConfig;
pub use sections::*;

/// The commented default configuration, compiled in.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

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
    #[serde(default)]
    pub instance: InstanceConfig,
    #[serde(default)]
    pub facade: FacadeConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub console: ConsoleConfig,
    pub playground: PlaygroundConfig,
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

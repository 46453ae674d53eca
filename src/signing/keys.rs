//! Signing keys: app secrets, per-device derived keys, and the keyring that
//! checks a request's signature, `ts` and nonce format.

use std::collections::HashMap;
use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use secrecy::ExposeSecret;
use serde_json::Value;
use sha2::Sha256;

use super::{canonical_json, canonical_request, canonical_text};
use crate::config::{AppConfig, AppKind};
use crate::error::Error;

type HmacSha256 = Hmac<Sha256>;

/// A signing key. Its bytes never appear in `Debug`.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

impl SigningKey {
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> SigningKey {
        SigningKey(bytes.into())
    }

    /// A device's own key: HMAC-SHA256(product secret, user_name).
    pub fn derive_device(product_secret: &[u8], user_name: &str) -> SigningKey {
        SigningKey(hmac_sha256(product_secret, user_name.as_bytes()).to_vec())
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Lowercase hex HMAC-SHA256 of `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        hex::encode(hmac_sha256(&self.0, message))
    }

    /// Constant-time check of a hex signature.
    pub fn verify(&self, message: &[u8], signature_hex: &str) -> bool {
        let Ok(sig) = hex::decode(signature_hex) else {
            return false;
        };
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(message);
        mac.verify_slice(&sig).is_ok()
    }

    /// The `sign` of a response object (its `sign` member, if any, left out).
    pub fn sign_response(&self, body: &serde_json::Map<String, Value>) -> String {
        let mut unsigned = body.clone();
        unsigned.remove("sign");
        self.sign(canonical_json(&Value::Object(unsigned)).as_bytes())
    }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// An app as the signature check sees it.
#[derive(Debug, Clone)]
pub struct AppEntry {
    pub app_id: String,
    pub kind: AppKind,
    secret: SigningKey,
}

/// A verified request's origin: which app, and the key that signed it
/// (which also signs the response).
#[derive(Debug, Clone)]
pub struct Verified {
    pub app_id: String,
    pub kind: AppKind,
    pub key: SigningKey,
    /// Scope of the nonce: the app, or app and device for device keys.
    pub nonce_scope: String,
    /// The request's nonce (empty from [`Keyring::key_for`]).
    pub nonce: String,
    /// When the nonce may be forgotten: its `ts` leaves the window then.
    pub nonce_expires_at: i64,
}

/// All configured apps, by id.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    apps: HashMap<String, AppEntry>,
    window: u64,
}

impl Keyring {
    pub fn new(apps: &[AppConfig], window: u64) -> Keyring {
        Keyring {
            apps: apps
                .iter()
                .map(|a| {
                    (
                        a.app_id.clone(),
                        AppEntry {
                            app_id: a.app_id.clone(),
                            kind: a.kind,
                            secret: SigningKey::from_bytes(a.secret.expose_secret().as_bytes()),
                        },
                    )
                })
                .collect(),
            window,
        }
    }

    pub fn window(&self) -> u64 {
        self.window
    }

    pub fn app(&self, app_id: &str) -> Option<&AppEntry> {
        self.apps.get(app_id)
    }

    /// The key a request from `app_id` must be signed with; device products
    /// derive it from `user_name`.
    pub fn key_for(&self, app_id: &str, user_name: Option<&str>) -> Result<Verified, Error> {
        let app = self.app(app_id).ok_or(Error::UnknownApp)?;
        let (key, scope) = match app.kind {
            AppKind::Device => {
                let user = user_name
                    .filter(|u| !u.is_empty())
                    .ok_or_else(|| Error::Params("user_name is required".into()))?;
                (
                    SigningKey::derive_device(app.secret.bytes(), user),
                    format!("{app_id}/{user}"),
                )
            }
            AppKind::App | AppKind::Service => (app.secret.clone(), app_id.to_owned()),
        };
        Ok(Verified {
            app_id: app.app_id.clone(),
            kind: app.kind,
            key,
            nonce_scope: scope,
            nonce: String::new(),
            nonce_expires_at: 0,
        })
    }

    /// Checks a request's signature parameters against `now`. Returns who
    /// signed it and the nonce to spend; the caller still has to spend it
    /// (`db::nonce::spend`).
    ///
    /// `path` is the request path the signature must cover (the register
    /// API); `None` for the token service's hello, whose text is the
    /// parameter line alone.
    ///
    /// Order of checks: presence and format (2), app (12), `ts` window (10),
    /// signature (6). The nonce (11) comes last, so a forged request cannot
    /// use up someone's nonce.
    pub fn verify<'a>(
        &self,
        path: Option<&str>,
        get: impl Fn(&str) -> Option<&'a str>,
        all: impl IntoIterator<Item = (&'a str, &'a str)>,
        now: i64,
    ) -> Result<Verified, Error> {
        let require = |name: &str| {
            get(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Error::Params(format!("{name} is required")))
        };
        let app_id = require("app_id")?;
        let ts = require("ts")?;
        let nonce = require("nonce")?;
        let sign = require("param_sign")?;
        let ts: i64 = ts
            .parse()
            .map_err(|_| Error::Params("ts must be unix seconds".into()))?;
        if !valid_nonce(nonce) {
            return Err(Error::Params(
                "nonce must be 8-64 characters of A-Z a-z 0-9 _ -".into(),
            ));
        }
        let mut verified = self.key_for(app_id, get("user_name"))?;
        if now.abs_diff(ts) > self.window {
            return Err(Error::TsExpired);
        }
        let canonical = match path {
            Some(path) => canonical_text(path, all),
            None => canonical_request(all),
        };
        if !verified.key.verify(canonical.as_bytes(), sign) {
            return Err(Error::Sign);
        }
        verified.nonce = nonce.to_owned();
        verified.nonce_expires_at = ts.saturating_add(self.window as i64);
        Ok(verified)
    }
}

/// 8–64 characters of `A-Z a-z 0-9 _ -`.
pub fn valid_nonce(nonce: &str) -> bool {
    (8..=64).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_reject_changes() {
        let k = SigningKey::from_bytes(b"k".to_vec());
        let sig = k.sign(b"msg");
        assert_eq!(sig.len(), 64);
        assert!(k.verify(b"msg", &sig));
        assert!(!k.verify(b"msh", &sig));
        assert!(!k.verify(b"msg", "zz"));
        assert!(!SigningKey::from_bytes(b"l".to_vec()).verify(b"msg", &sig));
    }

    #[test]
    fn device_keys_differ_per_device() {
        let a = SigningKey::derive_device(b"product", "SN0001");
        let b = SigningKey::derive_device(b"product", "SN0002");
        assert_ne!(a.bytes(), b.bytes());
        assert_eq!(a.bytes().len(), 32);
    }

    #[test]
    fn nonce_format() {
        assert!(valid_nonce("abcdEFGH_-12"));
        assert!(!valid_nonce("short"));
        assert!(!valid_nonce("has space 123"));
        assert!(!valid_nonce(&"a".repeat(65)));
    }
}

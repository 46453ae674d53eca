//! Request and response signatures (`docs/signing.md`).
//!
//! - Canonical request text: the request path exactly as the request names
//!   it (`/get_bind_code`), a line feed, then every parameter but
//!   `param_sign`, sorted by name (bytewise), each `name=value` with RFC 3986
//!   percent-encoding of both, joined by `&`. The token service's hello has
//!   no path: its text is the parameter line alone (it covers `cmd=hello`);
//!   it can never equal a request's text, which always has a line feed.
//! - `param_sign` = lowercase hex HMAC-SHA256(key, canonical text).
//! - Key: an app's secret (its UTF-8 bytes); for a device product, the
//!   device's own key HMAC-SHA256(product secret, user_name) (32 raw bytes).
//! - Requests carry `app_id`, `ts` (unix seconds, ±window) and `nonce`
//!   (8–64 of `A-Z a-z 0-9 _ -`, never reused within the window).
//! - Response `sign` = HMAC-SHA256(same key, canonical JSON of the response
//!   without `sign`: keys sorted, no whitespace). Every signed answer
//!   carries the request's `nonce`, so an answer is bound to its request.

use std::collections::HashMap;
use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::ExposeSecret;
use serde_json::Value;
use sha2::Sha256;

use crate::config::{AppConfig, AppKind};
use crate::error::Error;

type HmacSha256 = Hmac<Sha256>;

/// RFC 3986 unreserved characters stay; everything else is `%XX`.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// RFC 3986 percent-encoding (uppercase hex).
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, RFC3986).to_string()
}

/// The canonical request string of `params` (any order; `param_sign` is
/// left out).
pub fn canonical_request<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = params
        .into_iter()
        .filter(|(k, _)| *k != "param_sign")
        .collect();
    pairs.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&encode(k));
        out.push('=');
        out.push_str(&encode(v));
    }
    out
}

/// The canonical text a register-API request is signed over: the request
/// path exactly as the request names it (e.g. `/get_bind_code`), a line
/// feed, then [`canonical_request`] of the parameters.
pub fn canonical_text<'a>(
    path: &str,
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let params = canonical_request(params);
    let mut out = String::with_capacity(path.len() + 1 + params.len());
    out.push_str(path);
    out.push('\n');
    out.push_str(&params);
    out
}

/// The canonical JSON text of a value: object keys sorted bytewise at every
/// level, no whitespace, strings escaped as serde_json does (UTF-8 kept).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_canonical(&map[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

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
        })
    }

    /// Checks a request's signature parameters against `now`. Returns who
    /// signed it; the caller still has to record the nonce.
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
    ) -> Result<(Verified, i64), Error> {
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
        let verified = self.key_for(app_id, get("user_name"))?;
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
        Ok((verified, ts))
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
    use serde_json::json;

    #[test]
    fn canonical_request_sorts_and_encodes() {
        let s = canonical_request([
            ("user_name", "Ab c+/é"),
            ("app_id", "x"),
            ("param_sign", "ignored"),
            ("B", "1"),
        ]);
        assert_eq!(s, "B=1&app_id=x&user_name=Ab%20c%2B%2F%C3%A9");
    }

    #[test]
    fn the_canonical_text_starts_with_the_path() {
        let params = [("b", "2"), ("a", "1")];
        assert_eq!(
            canonical_text("/get_bind_code", params),
            "/get_bind_code\na=1&b=2"
        );
        assert_ne!(
            canonical_text("/get_user_banding", params),
            canonical_text("/get_user_binding", params)
        );
        // The hello's text (no path) never has a line feed.
        assert!(!canonical_request([("cmd", "hello\n")]).contains('\n'));
    }

    #[test]
    fn unreserved_characters_stay() {
        assert_eq!(encode("aZ09-._~"), "aZ09-._~");
        assert_eq!(encode("[\"a\"]"), "%5B%22a%22%5D");
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = json!({"b": 1, "a": {"z": [1, {"y": "é", "x": null}], "c": true}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":true,"z":[1,{"x":null,"y":"é"}]},"b":1}"#
        );
    }

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

/// The test vectors published in docs/signing.md, checked against this
/// implementation (so the page cannot drift from the code).
#[cfg(test)]
mod published_vectors {
    use super::*;

    const DOC: &str = include_str!("../docs/signing.md");

    #[derive(Default, Debug)]
    struct Vector {
        name: String,
        secret: String,
        device: Option<String>,
        device_key: Option<String>,
        path: Option<String>,
        params: Vec<(String, String)>,
        canonical: String,
        param_sign: String,
        response: String,
        response_canonical: String,
        sign: String,
    }

    fn vectors() -> Vec<Vector> {
        let mut out = Vec::new();
        let mut current: Option<Vector> = None;
        for line in DOC.lines() {
            if line == "```vector" {
                current = Some(Vector::default());
                continue;
            }
            let Some(v) = current.as_mut() else { continue };
            if line == "```" {
                out.push(current.take().unwrap());
                continue;
            }
            let (k, val) = line.split_once(": ").expect("key: value");
            let val = val.to_owned();
            match k {
                "name" => v.name = val,
                "secret" => v.secret = val,
                "device" => v.device = Some(val),
                "device_key" => v.device_key = Some(val),
                "path" => v.path = Some(val),
                "param" => {
                    let (n, x) = val.split_once('=').unwrap();
                    v.params.push((n.to_owned(), x.to_owned()));
                }
                // One line of the text each; joined by line feeds.
                "canonical" if v.canonical.is_empty() => v.canonical = val,
                "canonical" => {
                    v.canonical.push('\n');
                    v.canonical.push_str(&val);
                }
                "param_sign" => v.param_sign = val,
                "response" => v.response = val,
                "response_canonical" => v.response_canonical = val,
                "sign" => v.sign = val,
                other => panic!("unknown vector field {other}"),
            }
        }
        out
    }

    #[test]
    fn the_published_vectors_hold() {
        let all = vectors();
        assert!(
            all.len() >= 5,
            "docs/signing.md publishes at least five vectors"
        );
        assert!(
            all.iter()
                .any(|v| v.path.as_deref() == Some("/get_bind_code") && v.device.is_some()),
            "a vector for a call acting as a device"
        );
        assert!(
            all.iter().any(|v| v.path.is_none()),
            "a vector for the token service hello"
        );
        for v in all {
            let key = match &v.device {
                Some(user) => SigningKey::derive_device(v.secret.as_bytes(), user),
                None => SigningKey::from_bytes(v.secret.as_bytes()),
            };
            if let Some(hex_key) = &v.device_key {
                assert_eq!(&hex::encode(key.bytes()), hex_key, "{}", v.name);
            }
            let params = v.params.iter().map(|(k, x)| (k.as_str(), x.as_str()));
            let canonical = match &v.path {
                Some(path) => canonical_text(path, params),
                None => canonical_request(params),
            };
            assert_eq!(canonical, v.canonical, "{}", v.name);
            assert_eq!(key.sign(canonical.as_bytes()), v.param_sign, "{}", v.name);
            assert!(key.verify(canonical.as_bytes(), &v.param_sign));
            if v.response.is_empty() {
                continue;
            }
            let response: Value = serde_json::from_str(&v.response).unwrap();
            let nonce = v.params.iter().find(|(k, _)| k == "nonce").map(|(_, x)| x);
            assert_eq!(
                response["nonce"].as_str(),
                nonce.map(String::as_str),
                "{}: a signed answer echoes the nonce",
                v.name
            );
            assert_eq!(
                canonical_json(&response),
                v.response_canonical,
                "{}",
                v.name
            );
            assert_eq!(
                key.sign_response(response.as_object().unwrap()),
                v.sign,
                "{}",
                v.name
            );
        }
    }
}

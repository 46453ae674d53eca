//! The signature check: any parameters (as a form) against a keyring with
//! an app, a device product and a service. Never panics; accepts only a
//! signature that is HMAC-SHA256 of the canonical text under the right key;
//! and the same parameters, signed properly, are accepted for their own
//! path and refused for another.

#![no_main]

use jidgate::config::{AppConfig, AppKind};
use jidgate::params::Params;
use jidgate::signing::{Keyring, SigningKey, canonical_text};
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;

const NOW: i64 = 1_700_000_000;

fn keyring() -> Keyring {
    let app = |id: &str, secret: &str, kind| AppConfig {
        app_id: id.into(),
        secret: SecretString::from(secret.to_owned()),
        kind,
    };
    Keyring::new(
        &[
            app("fuzzapp", "app-secret-0123456789", AppKind::App),
            app("fuzzdev", "product-secret-0123456789", AppKind::Device),
            app("fuzzsvc", "service-secret-0123456789", AppKind::Service),
        ],
        300,
    )
}

fn key_of(app_id: &str, user_name: Option<&str>) -> Option<SigningKey> {
    match app_id {
        "fuzzapp" => Some(SigningKey::from_bytes(b"app-secret-0123456789".to_vec())),
        "fuzzsvc" => Some(SigningKey::from_bytes(
            b"service-secret-0123456789".to_vec(),
        )),
        "fuzzdev" => Some(SigningKey::derive_device(
            b"product-secret-0123456789",
            user_name?,
        )),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let keyring = keyring();
    let mut params = Params::default();
    if params.parse_form(data).is_err() {
        return;
    }
    // As received.
    let got = keyring.verify(Some("/login"), |n| params.get(n), params.iter(), NOW);
    if got.is_ok() {
        let app_id = params.get("app_id").unwrap();
        let key = key_of(app_id, params.get("user_name")).expect("a known app");
        let expected = key.sign(canonical_text("/login", params.iter()).as_bytes());
        assert!(
            params
                .get("param_sign")
                .unwrap()
                .eq_ignore_ascii_case(&expected),
            "accepted a wrong signature"
        );
    }
    // The same parameters, signed properly (when they leave room for it).
    if ["ts", "nonce", "param_sign"]
        .iter()
        .any(|n| params.get(n).is_some())
    {
        return;
    }
    let app_id = match params.get("app_id") {
        Some(a) => a.to_owned(),
        None => ["fuzzapp", "fuzzdev", "fuzzsvc"][data.len() % 3].to_owned(),
    };
    let mut form = String::from_utf8_lossy(data).into_owned();
    fn add(form: &mut String, k: &str, v: &str) {
        if !form.is_empty() {
            form.push('&');
        }
        form.push_str(&format!("{k}={}", jidgate::signing::encode(v)));
    }
    if params.get("app_id").is_none() {
        add(&mut form, "app_id", &app_id);
    }
    add(&mut form, "ts", &NOW.to_string());
    add(&mut form, "nonce", "fuzz-nonce-1");
    let mut signed = Params::default();
    if signed.parse_form(form.as_bytes()).is_err() {
        return;
    }
    let Some(key) = key_of(&app_id, signed.get("user_name").filter(|u| !u.is_empty())) else {
        assert!(
            keyring
                .verify(Some("/login"), |n| signed.get(n), signed.iter(), NOW)
                .is_err()
        );
        return;
    };
    let sign = key.sign(canonical_text("/login", signed.iter()).as_bytes());
    add(&mut form, "param_sign", &sign);
    let mut signed = Params::default();
    if signed.parse_form(form.as_bytes()).is_err() {
        return;
    }
    let ok = keyring.verify(Some("/login"), |n| signed.get(n), signed.iter(), NOW);
    assert!(ok.is_ok(), "a proper signature was refused: {ok:?}");
    let other = keyring.verify(Some("/logout"), |n| signed.get(n), signed.iter(), NOW);
    assert!(
        other.is_err(),
        "a signature for /login was accepted for /logout"
    );
});

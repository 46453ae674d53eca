//! One-time bind codes: a device asks for one (`/get_bind_code`) and shows
//! it to its owner, who passes it when binding. Stored as SHA-256; compared
//! at most five times; every guess paid for before it is compared.

use std::net::IpAddr;

use serde::Serialize;
use tracing::instrument;

use crate::app::App;
use crate::clock;
use crate::crypto::{ct_eq, random_bytes, sha256};
use crate::db::{Account, bind_code};
use crate::error::Error;
use crate::ratelimit::address_key;

/// Guesses after which a bind code is void.
const MAX_CODE_ATTEMPTS: i64 = 5;
/// Crockford's base32: no I, L, O, U.
const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CODE_LEN: usize = 8;

fn new_code() -> String {
    random_bytes::<CODE_LEN>()
        .iter()
        .map(|b| CODE_ALPHABET[(b & 31) as usize] as char)
        .collect()
}

fn code_hash(code: &str) -> [u8; 32] {
    sha256(code.trim().to_ascii_uppercase().as_bytes())
}

/// A fresh bind code, as `/get_bind_code` answers it.
#[derive(Debug, Serialize)]
pub struct NewCode {
    pub bind_code: String,
    pub expires_in: i64,
    pub expires_at: i64,
    /// `jidgate://bind?user_name=...&bind_code=...&expires_at=...`, for a
    /// QR code.
    pub bind_uri: String,
}

/// Gives a device a new bind code (the old one is void), at most
/// `rate_limits.bind_code_per_minute` per device.
#[instrument(name = "issue_bind_code", skip_all, err(level = "debug"))]
pub async fn issue(app: &App, device: &Account) -> Result<NewCode, Error> {
    if !device.is_device() {
        return Err(Error::NotPermitted("only devices have bind codes"));
    }
    app.limits.bind_code.check(&device.id).await?;
    let code = new_code();
    let ttl = app.config.binding.bind_code_ttl as i64;
    let expires_at = clock::now() + ttl;
    bind_code::put(&app.db, device.id, &code_hash(&code), expires_at).await?;
    Ok(NewCode {
        bind_uri: format!(
            "jidgate://bind?user_name={}&bind_code={code}&expires_at={expires_at}",
            crate::signing::encode(&device.user_name)
        ),
        bind_code: code,
        expires_in: ttl,
        expires_at,
    })
}

/// Checks a device's bind code and uses it up (code 111 if wrong, used or
/// expired).
///
/// Every guess is paid for before it is compared, so that concurrent
/// guesses cannot overspend either limit: it takes a share of its client
/// address's budget (`failed_bind_code_per_ip_per_minute`, given back if the
/// code is right; 9 once spent) and one of the code's own five attempts.
#[instrument(name = "redeem_bind_code", skip_all, err(level = "debug"))]
pub async fn redeem(
    app: &App,
    ip: IpAddr,
    device_id: i64,
    code: Option<&str>,
) -> Result<(), Error> {
    let share = app.limits.bind_code_fail_ip.reserve(&address_key(ip), 1)?;
    let code = code
        .filter(|c| !c.is_empty() && c.len() <= 16)
        .ok_or(Error::BindCode)?;
    let hash = code_hash(code);
    let stored = match bind_code::attempt(&app.db, device_id, MAX_CODE_ATTEMPTS, clock::now()).await
    {
        Ok(Some(stored)) => stored,
        Ok(None) => return Err(Error::BindCode),
        Err(e) => {
            // Nothing was compared.
            share.refund();
            return Err(e);
        }
    };
    if !ct_eq(&hash, &stored.code_hash) {
        return Err(Error::BindCode);
    }
    share.refund();
    // A concurrent request may have used it first.
    if bind_code::take(&app.db, device_id, &hash).await? {
        Ok(())
    } else {
        Err(Error::BindCode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_the_alphabet_and_compare_case_insensitively() {
        let c = new_code();
        assert_eq!(c.len(), CODE_LEN);
        assert!(c.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{c}");
        assert_eq!(code_hash(&c), code_hash(&c.to_ascii_lowercase()));
        assert_ne!(code_hash(&c), code_hash(&new_code()));
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(1024))]

        /// A code typed back in any case, with spaces or tabs around it,
        /// is the same code; changing any one symbol makes another code.
        #[test]
        fn a_code_is_read_back_in_any_case_and_spacing(
            code in "[0-9A-HJKMNP-TV-Z]{8}",
            lower in proptest::collection::vec(proptest::bool::ANY, 8),
            pad in "[ \t]{0,3}",
            at in 0usize..8,
            by in 1usize..32,
        ) {
            let typed: String = code
                .chars()
                .zip(&lower)
                .map(|(c, l)| if *l { c.to_ascii_lowercase() } else { c })
                .collect();
            let typed = format!("{pad}{typed}{pad}");
            proptest::prop_assert_eq!(code_hash(&typed), code_hash(&code));
            let mut other = code.clone().into_bytes();
            let i = CODE_ALPHABET.iter().position(|b| *b == other[at]).unwrap();
            other[at] = CODE_ALPHABET[(i + by) % 32];
            let other = String::from_utf8(other).unwrap();
            proptest::prop_assert_ne!(code_hash(&other), code_hash(&code));
        }
    }

    #[test]
    fn codes_never_hold_the_letters_crockford_leaves_out_and_use_every_symbol() {
        let mut seen = [0usize; 32];
        for _ in 0..4000 {
            let c = new_code();
            assert_eq!(c.len(), CODE_LEN);
            assert!(!c.contains(['I', 'L', 'O', 'U']), "{c}");
            for b in c.bytes() {
                seen[CODE_ALPHABET.iter().position(|x| *x == b).unwrap()] += 1;
            }
        }
        // 32,000 symbols: each of the 32 expected 1,000 times; a byte's low
        // five bits are uniform, so none is far off.
        assert!(seen.iter().all(|n| (800..1200).contains(n)), "{seen:?}");
    }
}

//! Secrets and random values: Argon2id account password hashes on a bounded
//! pool of threads ([`password`]), XChaCha20-Poly1305 for JID passwords at
//! rest ([`jid_cipher`]), random tokens, SHA-256 digests, constant-time
//! comparison.

pub mod jid_cipher;
pub mod password;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use jid_cipher::JidCipher;
pub use password::{PasswordHasher, PasswordPool, PoolStats};

/// `n` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the operating system has no random source");
    buf
}

/// A random URL-safe string carrying `N` bytes of entropy.
pub fn random_token<const N: usize>() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<N>())
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Constant-time equality of two byte strings.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_differ() {
        let a = random_token::<32>();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token::<32>());
    }
}

//! Secrets at rest and random values: Argon2id account password hashes,
//! XChaCha20-Poly1305 for JID passwords, random tokens, SHA-256 digests.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::PasswordConfig;

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

/// Hashes and verifies account passwords with Argon2id.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    /// A hash of a random password, verified against when the account does
    /// not exist so that unknown and known user names take the same time.
    dummy: String,
}

impl PasswordHasher {
    pub fn new(cfg: &PasswordConfig) -> anyhow::Result<PasswordHasher> {
        let params = Params::new(
            cfg.argon2_memory_kib,
            cfg.argon2_iterations,
            cfg.argon2_parallelism,
            None,
        )
        .map_err(|e| anyhow::anyhow!("bad argon2 parameters: {e}"))?;
        let mut hasher = PasswordHasher {
            params,
            dummy: String::new(),
        };
        hasher.dummy = hasher.hash(&random_token::<16>())?;
        Ok(hasher)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// A PHC string (`$argon2id$v=19$m=...`) with a fresh random salt.
    pub fn hash(&self, password: &str) -> anyhow::Result<String> {
        let hash = self
            .argon2()
            .hash_password(password.as_bytes())
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
        Ok(hash.to_string())
    }

    /// Checks `password` against a stored PHC string (whose own parameters
    /// are used). `None` checks against a dummy hash and returns false.
    pub fn verify(&self, password: &str, stored: Option<&str>) -> bool {
        let (stored, real) = match stored {
            Some(s) => (s, true),
            None => (self.dummy.as_str(), false),
        };
        let Ok(parsed) = PasswordHash::new(stored) else {
            return false;
        };
        let ok = self
            .argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && real
    }
}

/// Encrypts JID passwords at rest, bound to their JID (AAD) so a ciphertext
/// copied to another row does not decrypt.
#[derive(Clone)]
pub struct JidCipher {
    cipher: XChaCha20Poly1305,
}

impl JidCipher {
    pub fn new(key: &[u8; 32]) -> JidCipher {
        JidCipher {
            cipher: XChaCha20Poly1305::new_from_slice(key).expect("32-byte key"),
        }
    }

    /// nonce (24 bytes) || ciphertext || tag.
    pub fn encrypt(&self, jid: &str, password: &SecretString) -> Vec<u8> {
        let nonce_bytes = random_bytes::<24>();
        let nonce = XNonce::try_from(&nonce_bytes[..]).expect("24 bytes");
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: password.expose_secret().as_bytes(),
                    aad: jid.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption of a short message");
        let mut out = Vec::with_capacity(24 + sealed.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn decrypt(&self, jid: &str, blob: &[u8]) -> anyhow::Result<SecretString> {
        anyhow::ensure!(blob.len() > 24, "JID password ciphertext too short");
        let nonce = XNonce::try_from(&blob[..24]).expect("24 bytes");
        let plain = self
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: &blob[24..],
                    aad: jid.as_bytes(),
                },
            )
            .map_err(|_| {
                anyhow::anyhow!("JID password does not decrypt (wrong secrets.jid_key?)")
            })?;
        Ok(SecretString::from(String::from_utf8(plain)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> PasswordConfig {
        PasswordConfig {
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            argon2_parallelism: 1,
        }
    }

    #[test]
    fn password_hash_verifies_only_the_right_password() {
        let h = PasswordHasher::new(&fast()).unwrap();
        let stored = h.hash("correct horse").unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(h.verify("correct horse", Some(&stored)));
        assert!(!h.verify("correct horsf", Some(&stored)));
        assert!(!h.verify("correct horse", Some("not a hash")));
        assert!(!h.verify("anything", None));
    }

    #[test]
    fn jid_passwords_round_trip_and_are_bound_to_their_jid() {
        let c = JidCipher::new(&[7u8; 32]);
        let pw = SecretString::from("s3cret-jid-password".to_owned());
        let blob = c.encrypt("d.abc@localhost", &pw);
        assert!(!blob.windows(6).any(|w| w == b"s3cret"));
        let back = c.decrypt("d.abc@localhost", &blob).unwrap();
        assert_eq!(back.expose_secret(), "s3cret-jid-password");
        assert!(c.decrypt("d.other@localhost", &blob).is_err());
        assert!(
            JidCipher::new(&[8u8; 32])
                .decrypt("d.abc@localhost", &blob)
                .is_err()
        );
        let mut tampered = blob.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(c.decrypt("d.abc@localhost", &tampered).is_err());
    }

    #[test]
    fn random_tokens_differ() {
        let a = random_token::<32>();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token::<32>());
    }
}

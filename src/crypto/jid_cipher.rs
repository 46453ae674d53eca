//! JID passwords at rest: XChaCha20-Poly1305, bound to their JID.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretString};

use super::random_bytes;

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
}

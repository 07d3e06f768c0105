//! Project secrets (environment variables) sealed at rest.
//!
//! AES-256-GCM with a key from `AETHER_SECRETS_KEY` (64 hex digits) or, by
//! default, one generated under the data folder. A sealed value is a version
//! byte, a random 96-bit nonce and the ciphertext with its tag; the project's
//! id is the associated data, so a value copied onto another project's row
//! does not open.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use uuid::Uuid;

const VERSION: u8 = 1;

/// Seals and opens project secrets with one key.
pub struct Sealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer with a 32-byte key.
    pub fn new(key: &[u8]) -> anyhow::Result<Self> {
        let key =
            UnboundKey::new(&AES_256_GCM, key).map_err(|_| anyhow::anyhow!("the secrets key must be 32 bytes"))?;
        Ok(Self { key: LessSafeKey::new(key), rng: SystemRandom::new() })
    }

    /// Parses `AETHER_SECRETS_KEY`: 64 hex digits.
    pub fn from_hex(hex: &str) -> anyhow::Result<Self> {
        let bytes = hex::decode(hex.trim()).ok().filter(|b| b.len() == 32);
        Self::new(&bytes.ok_or_else(|| anyhow::anyhow!("AETHER_SECRETS_KEY must be 64 hex digits"))?)
    }

    /// `plain` sealed for `project`.
    pub fn seal(&self, project: Uuid, plain: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| anyhow::anyhow!("no randomness for a nonce"))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plain.len() + AES_256_GCM.tag_len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(project.as_bytes()), &mut body)
            .map_err(|_| anyhow::anyhow!("sealing failed"))?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// What `seal` sealed for `project`; `None` if it was sealed for another
    /// project, with another key, or altered.
    pub fn open(&self, project: Uuid, sealed: &[u8]) -> Option<Vec<u8>> {
        let (&version, rest) = sealed.split_first()?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = body.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::from(project.as_bytes()), &mut body).ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_per_project_and_detects_tampering() {
        let sealer = Sealer::new(&[7u8; 32]).unwrap();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let plain = br#"{"API_KEY":"s3cret-value"}"#;
        let sealed = sealer.seal(a, plain).unwrap();
        assert!(!sealed.windows(12).any(|w| w == b"s3cret-value"), "the plaintext shows");
        assert_ne!(sealer.seal(a, plain).unwrap(), sealed, "a fresh nonce every time");
        assert_eq!(sealer.open(a, &sealed).as_deref(), Some(&plain[..]));
        assert_eq!(sealer.open(b, &sealed), None, "another project's row");
        assert_eq!(Sealer::new(&[8u8; 32]).unwrap().open(a, &sealed), None, "another key");
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(sealer.open(a, &altered), None);
        assert_eq!(sealer.open(a, &sealed[..10]), None);
        assert_eq!(sealer.open(a, &[]), None);
    }

    #[test]
    fn keys_are_64_hex_digits() {
        assert!(Sealer::from_hex(&"ab".repeat(32)).is_ok());
        assert!(Sealer::from_hex("abc").is_err());
        assert!(Sealer::from_hex(&"zz".repeat(32)).is_err());
    }
}

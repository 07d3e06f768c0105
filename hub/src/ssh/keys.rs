//! SSH keys: new agent key pairs, checks of uploaded public keys, their
//! fingerprints, and the jump host's own host key.
//!
//! A generated private key leaves this module once, in the API's answer;
//! nothing stores or logs it. An uploaded key must be one plain OpenSSH
//! public key line of a type both the jump host and OpenSSH's sshd verify,
//! with no `authorized_keys` options in front of it (aetherd adds its own).

use aether_protocol::agents::{KEY_TYPES, KeyLine};
use anyhow::Context;
use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, HashAlg, PrivateKey, PublicKey};
use std::path::Path;

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: u32 = 2048;
/// Largest RSA modulus accepted, in bits.
pub const MAX_RSA_BITS: u32 = 16384;
/// Longest upload accepted.
pub const MAX_UPLOAD: usize = 16 * 1024;

/// OpenSSH's fingerprint of a key: `SHA256:…`.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// A key as `type base64`, without its comment.
pub fn key_line(key: &PublicKey) -> anyhow::Result<KeyLine> {
    let text = key.to_openssh().context("encoding a public key")?;
    let mut parts = text.split(' ');
    let line = format!("{} {}", parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    KeyLine::parse(&line).map_err(|e| anyhow::anyhow!("{e}"))
}

/// A fresh agent key pair.
pub struct Generated {
    pub line: KeyLine,
    pub fingerprint: String,
    /// The private key in OpenSSH's format, for the one answer that shows it.
    pub private_openssh: zeroize_string::Secret,
}

/// Generates an ed25519 key pair; `comment` goes into the private key file.
pub fn generate(comment: &str) -> anyhow::Result<Generated> {
    let mut key = PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)
        .context("generating an ed25519 key")?;
    key.set_comment(comment);
    let private = key.to_openssh(LineEnding::LF).context("encoding the private key")?;
    Ok(Generated {
        line: key_line(key.public_key())?,
        fingerprint: fingerprint(key.public_key()),
        private_openssh: zeroize_string::Secret(private),
    })
}

/// Checks an uploaded public key; on success, its bare line and fingerprint.
/// The error says what is wrong, for the API's 400.
pub fn parse_upload(text: &str) -> Result<(KeyLine, String), String> {
    if text.len() > MAX_UPLOAD {
        return Err("public_key is too long".into());
    }
    let text = text.trim();
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err("public_key must be a single line".into());
    }
    let mut fields = text.split_whitespace();
    let (Some(kind), Some(body)) = (fields.next(), fields.next()) else {
        return Err("public_key must be an OpenSSH public key line: `type base64 [comment]`".into());
    };
    if !KEY_TYPES.contains(&kind) {
        return Err(if kind.contains('=') || kind.contains(',') || kind.contains('"') {
            "public_key must not carry authorized_keys options".into()
        } else {
            format!("key type {kind:?} is not accepted; use one of {}", KEY_TYPES.join(", "))
        });
    }
    let key = PublicKey::from_openssh(&format!("{kind} {body}")).map_err(|e| format!("public_key is invalid: {e}"))?;
    if key.algorithm().as_str() != kind {
        return Err("public_key's type does not match its contents".into());
    }
    if let Some(rsa) = key.key_data().rsa() {
        let bits = rsa.key_size();
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
            return Err(format!("RSA keys must have {MIN_RSA_BITS} to {MAX_RSA_BITS} bits, not {bits}"));
        }
    }
    let line = key_line(&key).map_err(|e| e.to_string())?;
    Ok((line, fingerprint(&key)))
}

/// The jump host's key from `stored` (OpenSSH text), made the first time:
/// from the key file an older hub kept at `legacy`, if there is one, else a
/// new Ed25519 key.
pub async fn host_key<F, Fut>(legacy: &Path, stored: F) -> anyhow::Result<PrivateKey>
where
    F: FnOnce(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Vec<u8>>>,
{
    let initial = match std::fs::read_to_string(legacy) {
        Ok(text) => text,
        Err(_) => {
            let mut key = PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)?;
            key.set_comment("aether-hub");
            key.to_openssh(LineEnding::LF)?.to_string()
        }
    };
    let text = stored(initial.into_bytes()).await?;
    let text = std::str::from_utf8(&text).context("the stored SSH host key is not text")?;
    PrivateKey::from_openssh(text).context("reading the stored SSH host key")
}

/// A secret string that never shows in `Debug` output.
pub mod zeroize_string {
    /// The private key text; `Debug` prints nothing of it.
    pub struct Secret(pub zeroize::Zeroizing<String>);

    impl std::fmt::Debug for Secret {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("<private key>")
        }
    }

    impl Secret {
        pub fn expose(&self) -> &str {
            &self.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_back_and_have_fingerprints() {
        let g = generate("aether:test").unwrap();
        assert_eq!(g.line.kind(), "ssh-ed25519");
        assert!(g.fingerprint.starts_with("SHA256:"));
        assert!(g.private_openssh.expose().starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        assert!(!format!("{:?}", g.private_openssh).contains("BEGIN"));
        let private = PrivateKey::from_openssh(g.private_openssh.expose()).unwrap();
        assert_eq!(fingerprint(private.public_key()), g.fingerprint);
        let (line, fp) = parse_upload(&format!("{} some comment\n", g.line.as_str())).unwrap();
        assert_eq!((line, fp), (g.line, g.fingerprint));
    }

    #[test]
    fn uploads_with_options_or_junk_are_refused() {
        let g = generate("x").unwrap();
        let line = g.line.as_str();
        for bad in [
            format!("command=\"/bin/sh\" {line}"),
            format!("no-pty,{line}"),
            format!("{line}\n{line}"),
            "ssh-dss AAAAB3NzaC1kc3MAAACBAP".into(),
            "ssh-ed25519 AAAAnotbase64!!".into(),
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIGQ2eWv8fGcl5KpE5a4w1g0s0mJ8m1yK0yQ6x0v1b2c3".into(),
            String::new(),
            "x".repeat(MAX_UPLOAD + 1),
        ] {
            assert!(parse_upload(&bad).is_err(), "{bad:?}");
        }
    }
}

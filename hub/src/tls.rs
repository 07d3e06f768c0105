//! The tunnel's TLS identity in local mode: a CA and a server certificate
//! created under the data folder on first start and reused afterwards.
//!
//! The CA certificate (never its key's use beyond signing once) is handed to
//! the VMs the hub starts, so aetherd verifies the hub like any TLS client.
//! Also here: the key that signs QUIC stateless resets, kept across restarts
//! so that a restarted hub can tell old tunnels at once that it forgot them.

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::path::{Path, PathBuf};

/// The hub's certificate chain and key, and where its CA lives.
pub struct TlsIdentity {
    pub cert_chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub ca_file: PathBuf,
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(contents)?;
    Ok(())
}

/// Loads the local identity, creating the CA and certificate on first use.
pub fn local_identity(dir: &Path, extra_names: &[String]) -> anyhow::Result<TlsIdentity> {
    std::fs::create_dir_all(dir)?;
    let ca_file = dir.join("ca.pem");
    let cert_file = dir.join("hub.pem");
    let key_file = dir.join("hub.key");
    if !(ca_file.exists() && cert_file.exists() && key_file.exists()) {
        tracing::info!(dir = %dir.display(), "creating the local tunnel CA and certificate");
        let ca_key = KeyPair::generate().context("generating CA key")?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.distinguished_name.push(DnType::CommonName, "aether local tunnel CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.not_after = rcgen::date_time_ymd(2046, 1, 1);
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, ca_key);

        let mut names = vec!["localhost".to_owned(), "aether-hub".to_owned()];
        names.extend(extra_names.iter().cloned());
        let mut params = CertificateParams::new(names)?;
        params.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse()?));
        params.subject_alt_names.push(SanType::IpAddress("::1".parse()?));
        params.distinguished_name.push(DnType::CommonName, "aether hub");
        params.not_after = rcgen::date_time_ymd(2046, 1, 1);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        write_private(&key_file, key.serialize_pem().as_bytes())?;
        std::fs::write(&cert_file, cert.pem())?;
        std::fs::write(&ca_file, ca_cert.pem())?;
    }
    let cert_chain = rustls_pemfile::certs(&mut std::fs::read(&cert_file)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .context("reading hub certificate")?;
    let key_pem = std::fs::read(&key_file)?;
    let key = rustls_pemfile::pkcs8_private_keys(&mut key_pem.as_slice()).next().context("no key in hub.key")??;
    Ok(TlsIdentity {
        cert_chain,
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.secret_pkcs8_der().to_vec())),
        ca_file,
    })
}

/// A secret kept under the data folder, created on first use.
pub fn persistent_secret(path: &Path, bytes: usize) -> anyhow::Result<Vec<u8>> {
    if let Ok(existing) = std::fs::read(path)
        && existing.len() == bytes
    {
        return Ok(existing);
    }
    let mut secret = vec![0u8; bytes];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    write_private(path, &secret)?;
    Ok(secret)
}

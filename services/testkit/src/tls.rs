//! Throwaway TLS material for tests: a CA and a certificate it signed (for `localhost` and
//! `127.0.0.1`, or names of the test's choice), as PEM files in a directory.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// PEM files: `ca.pem` (to trust), `cert.pem` and `key.pem` (to serve with).
#[derive(Debug, Clone)]
pub struct TestCerts {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The server certificate, signed by the CA.
    pub cert: PathBuf,
    /// The server certificate's key.
    pub key: PathBuf,
}

impl TestCerts {
    /// A new CA and a server certificate for `localhost` and `127.0.0.1`, written into `dir`.
    pub fn generate(dir: &Path) -> anyhow::Result<Self> {
        Self::generate_for(dir, &["localhost".to_string(), "127.0.0.1".to_string()])
    }

    /// A new CA and a server certificate for `names` (DNS names or IP addresses), written
    /// into `dir`.
    pub fn generate_for(dir: &Path, names: &[String]) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let pki = Pki::issue("ferrite test CA", "ferrite test server", names)?;
        let certs = Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&certs.ca, &pki.ca_pem)?;
        std::fs::write(&certs.cert, &pki.cert_pem)?;
        std::fs::write(&certs.key, &pki.key_pem)?;
        Ok(certs)
    }

    /// `ferrite` flags that serve with this certificate and trust the CA.
    pub fn ferrite_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
            "--tls-ca".into(),
            self.ca.display().to_string(),
        ]
    }
}

/// A new CA and a server certificate it signed, as PEM.
#[derive(Debug, Clone)]
pub(crate) struct Pki {
    pub ca_pem: String,
    /// The CA's key (a test control plane signs with it).
    pub ca_key_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Pki {
    /// A CA named `ca_name` and a certificate named `server_name`, valid for `names` (DNS
    /// names or IP addresses).
    pub(crate) fn issue(
        ca_name: &str,
        server_name: &str,
        names: &[String],
    ) -> anyhow::Result<Self> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, ca_name);
        let ca = ca_params.self_signed(&ca_key)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.to_vec())?;
        params
            .distinguished_name
            .push(DnType::CommonName, server_name);
        let cert = params.signed_by(&key, &ca, &ca_key)?;
        Ok(Self {
            ca_pem: ca.pem(),
            ca_key_pem: ca_key.serialize_pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

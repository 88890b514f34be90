//! TLS for the HTTPS listener, and a throwaway PKI for tests: a CA and a server certificate for
//! `localhost`/`127.0.0.1` made with rcgen, so pilot's TLS tests need no files of their own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsIdentity;

/// Why TLS material could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen failed.
    #[error("generating test certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// The PEM certificate chain could not be read.
    #[error("reading certificate pem: {0}")]
    Certificate(String),
    /// The PEM private key could not be read.
    #[error("reading private key pem: {0}")]
    Key(String),
    /// rustls refused the pair.
    #[error("building tls server config: {0}")]
    Config(#[from] rustls::Error),
    /// Writing the files failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A test CA and a server identity it signed.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA certificate, PEM (what a client trusts, e.g. `CONSUL_CACERT`).
    pub ca_cert_pem: String,
    /// The CA private key, PEM (to sign client certificates for mTLS tests).
    pub ca_key_pem: String,
    /// Server certificate (leaf) and key, PEM.
    pub server: TlsIdentity,
}

/// Paths of a [`TestPki`] written to disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiFiles {
    /// `ca.pem`
    pub ca_cert: PathBuf,
    /// `server.pem`
    pub server_cert: PathBuf,
    /// `server-key.pem`
    pub server_key: PathBuf,
}

/// Makes a CA and a server certificate valid for `names` (DNS names or IP literals).
pub fn generate_test_pki(names: &[&str]) -> Result<TestPki, TlsError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "consul-double test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().copied().unwrap_or("localhost"),
    );
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca_cert, &ca_key)?;
    Ok(TestPki {
        ca_cert_pem: ca_cert.pem(),
        ca_key_pem: ca_key.serialize_pem(),
        server: TlsIdentity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        },
    })
}

/// The usual test PKI: `localhost`, `127.0.0.1` and `::1`.
pub fn generate_localhost_pki() -> Result<TestPki, TlsError> {
    generate_test_pki(&["localhost", "127.0.0.1", "::1"])
}

impl TestPki {
    /// Writes `ca.pem`, `server.pem` and `server-key.pem` into `dir`.
    pub fn write_to(&self, dir: &Path) -> Result<PkiFiles, TlsError> {
        let files = PkiFiles {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server-key.pem"),
        };
        for (path, content) in [
            (&files.ca_cert, &self.ca_cert_pem),
            (&files.server_cert, &self.server.cert_pem),
            (&files.server_key, &self.server.key_pem),
        ] {
            std::fs::write(path, content).map_err(|source| TlsError::Write {
                path: path.clone(),
                source,
            })?;
        }
        Ok(files)
    }

    /// A rustls client config that trusts this CA (for tests that talk HTTPS to the double).
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_cert_pem.as_bytes()) {
            let cert = cert.map_err(|e| TlsError::Certificate(e.to_string()))?;
            roots.add(cert)?;
        }
        Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
    }
}

/// A rustls server config for an identity.
pub(crate) fn server_config(identity: &TlsIdentity) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Certificate("no certificate found".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes())
        .map_err(|e| TlsError::Key(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

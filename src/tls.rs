//! PEM files → rustls configurations. Every error names the offending file.

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A TLS file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file is missing or unreadable, or holds no usable PEM item.
    #[error("TLS file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The crypto provider refused the protocol versions (a build defect).
    #[error("TLS provider: {0}")]
    Provider(#[source] rustls::Error),
    /// The certificate and key do not form a usable server identity.
    #[error("TLS certificate {cert} with key {key}: {message}")]
    Pair {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
        /// rustls's reason.
        message: String,
    },
}

fn file_err(path: &Path, message: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, e))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(file_err(path, "no CERTIFICATE in PEM file"));
    }
    Ok(certs)
}

/// Reads the private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, e))?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| file_err(path, format!("no usable private key: {e}")))
}

/// A certificate chain and the key that matches its leaf, read and checked.
#[derive(Debug, Clone)]
pub struct CertPair {
    pair: Arc<CertifiedKey>,
    /// Unix time at which the leaf expires.
    pub expiry: i64,
}

impl CertPair {
    /// Reads `cert` and `key`; the key must match the leaf certificate.
    pub fn load(cert: &Path, key: &Path) -> Result<CertPair, TlsError> {
        let chain = load_certs(cert)?;
        let expiry = leaf_expiry(&chain, cert)?;
        let private = load_key(key)?;
        let pair =
            CertifiedKey::from_der(chain, private, &provider()).map_err(|e| TlsError::Pair {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                message: e.to_string(),
            })?;
        Ok(CertPair {
            pair: Arc::new(pair),
            expiry,
        })
    }
}

/// The server's certificate and key, replaced whole on reload: handshakes
/// in progress keep the pair they started with, new ones take the new pair,
/// and open connections are not touched.
#[derive(Debug)]
pub struct CertSlot(ArcSwap<CertifiedKey>);

impl CertSlot {
    /// A slot holding `pair`.
    pub fn new(pair: CertPair) -> CertSlot {
        CertSlot(ArcSwap::new(pair.pair))
    }

    /// A slot holding the pair read from `cert` and `key`.
    pub fn load(cert: &Path, key: &Path) -> Result<CertSlot, TlsError> {
        Ok(CertSlot::new(CertPair::load(cert, key)?))
    }

    /// Puts `pair` in force for new handshakes.
    pub fn put(&self, pair: CertPair) {
        self.0.store(pair.pair);
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// Builds the HEC listener's config: TLS 1.2+, ALPN h2 and http/1.1,
/// optional client certificates, the certificate from a slot that reload
/// replaces.
pub fn server_config(
    certs: Arc<CertSlot>,
    client_ca: Option<&Path>,
) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Provider)?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in load_certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| file_err(ca, format!("not a usable CA certificate: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| file_err(ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(certs);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Unix time at which the first (leaf) certificate of a PEM file expires.
pub fn cert_expiry(path: &Path) -> Result<i64, TlsError> {
    leaf_expiry(&load_certs(path)?, path)
}

fn leaf_expiry(chain: &[CertificateDer<'_>], path: &Path) -> Result<i64, TlsError> {
    let leaf = chain
        .first()
        .ok_or_else(|| file_err(path, "no CERTIFICATE in PEM file"))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| file_err(path, format!("cannot parse certificate: {e}")))?;
    Ok(parsed.validity().not_after.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = load_certs(&missing).unwrap_err().to_string();
        assert!(e.contains("nope.pem"), "{e}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello").unwrap();
        let e = load_certs(&junk).unwrap_err().to_string();
        assert!(e.contains("junk.pem"), "{e}");
        let e = load_key(&junk).unwrap_err().to_string();
        assert!(e.contains("junk.pem"), "{e}");
    }
}

//! First start: a local CA, a server certificate it signs, and a HEC token,
//! generated into the data dir so Sluice runs with no configuration at all.

use crate::hec::TokenSecret;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// Generation failed; names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("generating {path}: {message}")]
    Cert {
        /// The file being generated.
        path: PathBuf,
        /// rcgen's reason.
        message: String,
    },
}

/// Paths of the generated TLS material.
#[derive(Debug, Clone)]
pub struct GeneratedTls {
    /// Local CA certificate: what clients trust.
    pub ca: PathBuf,
    /// Server certificate chain (leaf, then CA).
    pub cert: PathBuf,
    /// Server private key (mode 0600).
    pub key: PathBuf,
    /// Whether this call created new files.
    pub created: bool,
}

/// The default token and whether it was generated now.
#[derive(Debug, Clone)]
pub struct DefaultToken {
    /// The token.
    pub secret: TokenSecret,
    /// Where it is stored (None when it came from `SLUICE_HEC_TOKEN`).
    pub path: Option<PathBuf>,
    /// True only on the start that generated it.
    pub generated: bool,
}

const LEAF_DAYS: i64 = 825;
const RENEW_BEFORE_DAYS: i64 = 30;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BootstrapError + '_ {
    move |source| BootstrapError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn cert_err(path: &Path) -> impl FnOnce(rcgen::Error) -> BootstrapError + '_ {
    move |e| BootstrapError::Cert {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Writes a file atomically; `secret` files get mode 0600.
fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<(), BootstrapError> {
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    if secret {
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io(&tmp))?;
    f.write_all(contents).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Names the generated server certificate covers.
fn server_names(listen: IpAddr) -> Result<Vec<SanType>, rcgen::Error> {
    let mut names = vec![
        SanType::DnsName("localhost".try_into()?),
        SanType::IpAddress(IpAddr::from([127, 0, 0, 1])),
        SanType::IpAddress(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
    ];
    if let Ok(h) = hostname::get() {
        if let Some(h) = h.to_str() {
            if let Ok(name) = h.to_string().try_into() {
                if h != "localhost" {
                    names.push(SanType::DnsName(name));
                }
            }
        }
    }
    if !listen.is_unspecified() && !listen.is_loopback() {
        names.push(SanType::IpAddress(listen));
    }
    Ok(names)
}

/// Makes sure `<data_dir>/tls` holds a CA and a valid server certificate it signed.
pub fn ensure_tls(data_dir: &Path, listen: IpAddr) -> Result<GeneratedTls, BootstrapError> {
    let dir = data_dir.join("tls");
    crate::private_fs::create_dir(&dir).map_err(io(&dir))?;
    let ca_path = dir.join("ca.pem");
    let ca_key_path = dir.join("ca.key");
    let cert_path = dir.join("server.pem");
    let key_path = dir.join("server.key");

    if cert_path.is_file() && key_path.is_file() && ca_path.is_file() {
        let renew_at = OffsetDateTime::now_utc() + Duration::days(RENEW_BEFORE_DAYS);
        match crate::tls::cert_expiry(&cert_path) {
            Ok(exp) if exp > renew_at.unix_timestamp() => {
                return Ok(GeneratedTls {
                    ca: ca_path,
                    cert: cert_path,
                    key: key_path,
                    created: false,
                })
            }
            _ => {
                tracing::warn!(path = %cert_path.display(), "generated server certificate expires soon or is unreadable; issuing a new one")
            }
        }
    }

    let (ca_pem, issuer) = if ca_path.is_file() && ca_key_path.is_file() {
        let ca_pem = std::fs::read_to_string(&ca_path).map_err(io(&ca_path))?;
        let key_pem = std::fs::read_to_string(&ca_key_path).map_err(io(&ca_key_path))?;
        let key = KeyPair::from_pem(&key_pem).map_err(cert_err(&ca_key_path))?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, key).map_err(cert_err(&ca_path))?;
        (ca_pem, issuer)
    } else {
        let key = KeyPair::generate().map_err(cert_err(&ca_key_path))?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(cert_err(&ca_path))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Sluice");
        dn.push(DnType::CommonName, "Sluice local CA");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(3650);
        let cert = params.self_signed(&key).map_err(cert_err(&ca_path))?;
        write_file(&ca_key_path, key.serialize_pem().as_bytes(), true)?;
        write_file(&ca_path, cert.pem().as_bytes(), false)?;
        (cert.pem(), Issuer::new(params, key))
    };

    let key = KeyPair::generate().map_err(cert_err(&key_path))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err(&cert_path))?;
    params.subject_alt_names = server_names(listen).map_err(cert_err(&cert_path))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Sluice");
    dn.push(DnType::CommonName, "Sluice HEC");
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    // Python 3.13+ (and strict X.509 checkers) require the AKI on the leaf.
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(LEAF_DAYS);
    let leaf = params
        .signed_by(&key, &issuer)
        .map_err(cert_err(&cert_path))?;
    write_file(&key_path, key.serialize_pem().as_bytes(), true)?;
    write_file(
        &cert_path,
        format!("{}{}", leaf.pem(), ca_pem).as_bytes(),
        false,
    )?;
    Ok(GeneratedTls {
        ca: ca_path,
        cert: cert_path,
        key: key_path,
        created: true,
    })
}

/// The generated TLS files as they are, for a reload: nothing is created or
/// renewed (a reload must not change what clients trust behind their back).
pub fn existing_tls(data_dir: &Path) -> Result<GeneratedTls, BootstrapError> {
    let dir = data_dir.join("tls");
    let paths = GeneratedTls {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        created: false,
    };
    for p in [&paths.ca, &paths.cert, &paths.key] {
        std::fs::metadata(p).map_err(io(p))?;
    }
    Ok(paths)
}

/// The default token as it is, for a reload: `SLUICE_HEC_TOKEN`, else the
/// data dir's token file, which must exist (a reload never generates one).
pub fn existing_default_token(data_dir: &Path) -> Result<DefaultToken, BootstrapError> {
    if let Ok(v) = std::env::var("SLUICE_HEC_TOKEN") {
        if !v.trim().is_empty() {
            return Ok(DefaultToken {
                secret: TokenSecret::new(v.trim().to_string()),
                path: None,
                generated: false,
            });
        }
    }
    let path = data_dir.join("hec_token");
    let v = std::fs::read_to_string(&path).map_err(io(&path))?;
    if v.trim().is_empty() {
        return Err(BootstrapError::Io {
            path,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "the token file is empty"),
        });
    }
    Ok(DefaultToken {
        secret: TokenSecret::new(v.trim().to_string()),
        path: Some(path),
        generated: false,
    })
}

/// The token used when no `[[tokens]]` are configured: `SLUICE_HEC_TOKEN`,
/// else `<data_dir>/hec_token`, generated (mode 0600) on first start.
pub fn ensure_default_token(data_dir: &Path) -> Result<DefaultToken, BootstrapError> {
    if let Ok(v) = std::env::var("SLUICE_HEC_TOKEN") {
        if !v.trim().is_empty() {
            return Ok(DefaultToken {
                secret: TokenSecret::new(v.trim().to_string()),
                path: None,
                generated: false,
            });
        }
    }
    crate::private_fs::create_dir(data_dir).map_err(io(data_dir))?;
    let path = data_dir.join("hec_token");
    if path.is_file() {
        let v = std::fs::read_to_string(&path).map_err(io(&path))?;
        let v = v.trim();
        if !v.is_empty() {
            return Ok(DefaultToken {
                secret: TokenSecret::new(v.to_string()),
                path: Some(path),
                generated: false,
            });
        }
    }
    let secret = TokenSecret::generate();
    write_file(&path, format!("{}\n", secret.expose()).as_bytes(), true)?;
    Ok(DefaultToken {
        secret,
        path: Some(path),
        generated: true,
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_reload_reads_generated_files_but_never_makes_them() {
        let dir = tempfile::tempdir().unwrap();
        assert!(existing_tls(dir.path()).is_err());
        assert!(!dir.path().join("tls").exists(), "nothing was created");
        if std::env::var_os("SLUICE_HEC_TOKEN").is_none() {
            let e = existing_default_token(dir.path()).unwrap_err().to_string();
            assert!(e.contains("hec_token"), "{e}");
            assert!(!dir.path().join("hec_token").exists());
        }
        let made = ensure_tls(dir.path(), [127, 0, 0, 1].into()).unwrap();
        let found = existing_tls(dir.path()).unwrap();
        assert_eq!((found.cert, found.key), (made.cert, made.key));
    }

    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generates_once_and_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let t = ensure_tls(dir.path(), IpAddr::from([127, 0, 0, 1])).unwrap();
        assert!(t.created);
        let mode = std::fs::metadata(&t.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = ensure_tls(dir.path(), IpAddr::from([127, 0, 0, 1])).unwrap();
        assert!(!again.created);
        // The leaf is not a CA and chains to the generated CA.
        let chain = crate::tls::load_certs(&t.cert).unwrap();
        assert_eq!(chain.len(), 2);
        let (_, leaf) = x509_parser::parse_x509_certificate(chain[0].as_ref()).unwrap();
        assert!(!leaf.is_ca());
        let ca = crate::tls::load_certs(&t.ca).unwrap();
        assert_eq!(ca[0], chain[1]);
        let slot = std::sync::Arc::new(crate::tls::CertSlot::load(&t.cert, &t.key).unwrap());
        crate::tls::server_config(slot, Some(&t.ca)).unwrap();
    }

    #[test]
    fn token_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let t = ensure_default_token(dir.path()).unwrap();
        if t.path.is_none() {
            return; // SLUICE_HEC_TOKEN set in this environment
        }
        assert!(t.generated);
        let p = t.path.clone().unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = ensure_default_token(dir.path()).unwrap();
        assert!(!again.generated);
        assert!(again.secret.matches(t.secret.expose()));
    }
}

//! HTTPS: `serve --tls-cert/--tls-key` (rustls, HTTP/1.1 and HTTP/2 chosen by ALPN) and
//! `smsctx dev-cert` (a local certificate authority and a localhost certificate it signs).
//!
//! The accept loop (`crate::listen`) serves every decrypted connection with the same router
//! as the plain ones; each request on it carries [`ServedOverTls`], so the URLs the edge writes
//! (`@odata.context`, `OData-EntityId`, next links) say `https`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::request::Parts;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// Marks a request that reached smsctx over its own TLS listener.
#[derive(Debug, Clone, Copy)]
pub struct ServedOverTls;

/// The scheme a client used to reach this server: `X-Forwarded-Proto` (`http`/`https`) when a
/// proxy in front says so, else `https` on the TLS listener, else `http`.
pub fn request_scheme(parts: &Parts) -> &'static str {
    match parts
        .headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
    {
        Some("https") => "https",
        Some("http") => "http",
        _ if parts.extensions.get::<ServedOverTls>().is_some() => "https",
        _ => "http",
    }
}

/// The host (and port) a client addressed: the `Host` header (HTTP/1.1), else the request
/// target's authority (HTTP/2 sends `:authority` and no `Host`).
pub fn request_host(parts: &Parts) -> &str {
    parts
        .headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("localhost")
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {detail}")]
    NoKey { path: PathBuf, detail: String },
    #[error("the certificate and key are not usable together: {0}")]
    Config(#[from] rustls::Error),
    #[error("cannot generate the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The certificate chain (leaf first) and private key files `serve` presents.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// A rustls acceptor offering `h2` and `http/1.1` by ALPN.
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        let cert_pem = read(&self.cert)?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .filter_map(Result::ok)
            .collect();
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: self.cert.clone(),
            });
        }
        let key =
            PrivateKeyDer::from_pem_slice(&read(&self.key)?).map_err(|e| TlsError::NoKey {
                path: self.key.clone(),
                detail: e.to_string(),
            })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// What `dev-cert` wrote.
#[derive(Debug)]
pub struct DevCert {
    /// The authority clients trust (`REQUESTS_CA_BUNDLE`, `SSL_CERT_FILE`, `NODE_EXTRA_CA_CERTS`).
    pub ca: PathBuf,
    /// The server's certificate followed by the authority's (`--tls-cert`).
    pub cert: PathBuf,
    /// The server's private key (`--tls-key`).
    pub key: PathBuf,
}

/// Writes `ca.pem`, `cert.pem` and `key.pem` into `dir`: a development certificate authority
/// and a certificate it signs for `localhost`, `127.0.0.1`, `::1` and `extra_names`, valid
/// for `days` days. The authority's key is not kept: nothing else can ever be signed by it.
pub fn dev_cert(dir: &Path, extra_names: &[String], days: u32) -> Result<DevCert, TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let now = time::OffsetDateTime::now_utc();
    let not_before = now - time::Duration::days(1);
    let not_after = now + time::Duration::days(i64::from(days.max(1)));

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "smsctx development CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    names.extend(extra_names.iter().cloned());
    let leaf_key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(names)?;
    leaf.distinguished_name = DistinguishedName::new();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    leaf.not_before = not_before;
    leaf.not_after = not_after;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;

    let written = DevCert {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).map_err(|source| TlsError::Write {
            path: path.to_path_buf(),
            source,
        })
    };
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    write(&written.ca, ca_cert.pem())?;
    write(
        &written.cert,
        format!("{}{}", leaf_cert.pem(), ca_cert.pem()),
    )?;
    write(&written.key, leaf_key.serialize_pem())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&written.key, std::fs::Permissions::from_mode(0o600));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dev_cert_loads_as_the_server_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dev_cert(dir.path(), &["smsctx.test".into()], 30).unwrap();
        let chain = std::fs::read(&cert.cert).unwrap();
        assert_eq!(CertificateDer::pem_slice_iter(&chain).count(), 2);
        TlsFiles {
            cert: cert.cert,
            key: cert.key,
        }
        .acceptor()
        .expect("rustls accepts the pair");
    }

    #[test]
    fn a_missing_key_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dev_cert(dir.path(), &[], 1).unwrap();
        let error = TlsFiles {
            cert: cert.cert.clone(),
            key: cert.cert,
        }
        .acceptor()
        .err()
        .expect("a certificate is not a key");
        assert!(error.to_string().contains("no PEM private key"), "{error}");
    }
}

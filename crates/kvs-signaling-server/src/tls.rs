//! TLS: the certificate and key the server presents, and a local development certificate
//! authority for `serve`'s default, so that the official JavaScript SDK (which accepts only
//! `wss://` endpoints) works out of the box once the user trusts the printed CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The certificate chain and private key the server presents, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files at `cert` and `key`.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
        }
    }
}

/// A local development certificate: the CA to trust, and the server's files.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DevCertificate {
    /// The CA certificate a client must trust (`NODE_EXTRA_CA_CERTS`, a browser's store).
    pub ca: PathBuf,
    /// The server's certificate (for `localhost`, `127.0.0.1` and `::1`) and key.
    pub files: TlsFiles,
    /// Whether it was created now rather than found.
    pub created: bool,
}

/// TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

impl TlsError {
    fn new(what: impl std::fmt::Display, err: impl std::fmt::Display) -> Self {
        Self(format!("{what}: {err}"))
    }
}

/// The development certificate in `dir/tls/`, created on first use: a CA, and a certificate for
/// `localhost`, `127.0.0.1` and `::1` that it signed.
pub fn dev_certificate(dir: &Path) -> Result<DevCertificate, TlsError> {
    let tls = dir.join("tls");
    let ca = tls.join("ca.pem");
    let files = TlsFiles::new(tls.join("cert.pem"), tls.join("key.pem"));
    if ca.exists() && files.cert.exists() && files.key.exists() {
        return Ok(DevCertificate {
            ca,
            files,
            created: false,
        });
    }
    std::fs::create_dir_all(&tls).map_err(|err| TlsError::new(tls.display(), err))?;
    let generated =
        |err: rcgen::Error| TlsError::new("generating the development certificate", err);

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(generated)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kvs-signaling local development CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().map_err(generated)?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(generated)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let mut leaf_params = CertificateParams::new(names).map_err(generated)?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let leaf_key = KeyPair::generate().map_err(generated)?;
    let leaf_cert = leaf_params
        .signed_by(&leaf_key, &issuer)
        .map_err(generated)?;

    write(&ca, &ca_cert.pem(), false)?;
    write(
        &files.cert,
        &format!("{}{}", leaf_cert.pem(), ca_cert.pem()),
        false,
    )?;
    write(&files.key, &leaf_key.serialize_pem(), true)?;
    Ok(DevCertificate {
        ca,
        files,
        created: true,
    })
}

fn write(path: &Path, contents: &str, secret: bool) -> Result<(), TlsError> {
    std::fs::write(path, contents).map_err(|err| TlsError::new(path.display(), err))?;
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|err| TlsError::new(path.display(), err))?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    Ok(())
}

/// The TLS configuration presenting `files`, speaking HTTP/1.1 (the official C SDK pins it).
pub(crate) fn acceptor(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|err| TlsError::new(files.cert.display(), err))?
        .collect::<Result<_, _>>()
        .map_err(|err| TlsError::new(files.cert.display(), err))?;
    if certs.is_empty() {
        return Err(TlsError::new(
            files.cert.display(),
            "no certificate in the file",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|err| TlsError::new(files.key.display(), err))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsError::new("TLS versions", err))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|err| TlsError::new("the certificate and key", err))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

//! TLS for `mqtts` listeners: rustls on the ring provider, certificates
//! and keys from PEM files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("certificate and key do not go together: {0}")]
    Config(#[from] rustls::Error),
}

/// A server configuration for one listener: the certificate chain in
/// `cert_file` (leaf first), the private key in `key_file`.
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
    client_ca: Option<(&Path, bool)>,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let file_err = |path: &Path, reason: String| TlsSetupError::File {
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| file_err(cert_file, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(cert_file, e.to_string()))?;
    if certs.is_empty() {
        return Err(file_err(cert_file, "no CERTIFICATE in the PEM file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| file_err(key_file, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some((ca_file, required)) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| file_err(ca_file, e.to_string()))? {
                let cert = cert.map_err(|e| file_err(ca_file, e.to_string()))?;
                roots.add(cert).map_err(|e| file_err(ca_file, e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(file_err(ca_file, "no CERTIFICATE in the PEM file".into()));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            // Without require_certificate a client may still present one
            // (and be named by it); it must then be valid.
            let verifier = if required {
                verifier.build()
            } else {
                verifier.allow_unauthenticated().build()
            }
            .map_err(|e| file_err(ca_file, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    Ok(Arc::new(builder.with_single_cert(certs, key)?))
}

/// The subject common name of the client's certificate, if it sent one.
pub fn peer_common_name(tls: &rustls::ServerConnection) -> Option<String> {
    let leaf = tls.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?.to_owned();
    Some(cn)
}

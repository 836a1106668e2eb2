//! TLS termination for a service's public listener, as Kong and Traefik
//! terminate it: a certificate chain and key from PEM files named by
//! `GANTRY_TLS_CERT` and `GANTRY_TLS_KEY`, HTTP/1.1 over it.
//!
//! rustls with the `ring` provider: no OpenSSL to install, and the same
//! provider the harness's clients use. The configuration is built once at
//! start; a bad file stops the service with the variable and the reason.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{self, ConfigError};

/// The certificate chain's PEM file: the server's certificate first.
pub const CERT_VAR: &str = "GANTRY_TLS_CERT";
/// The private key's PEM file (PKCS#8, PKCS#1 or SEC1).
pub const KEY_VAR: &str = "GANTRY_TLS_KEY";

/// Where a TLS listener's certificate and key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Both variables, or neither (plain HTTP); one without the other is an
    /// error rather than a silent fallback to plain text.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        match (config::raw(CERT_VAR), config::raw(KEY_VAR)) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(Self {
                cert: cert.into(),
                key: key.into(),
            })),
            (Some(_), None) => Err(ConfigError::new(
                KEY_VAR,
                "",
                "the key for GANTRY_TLS_CERT's certificate",
            )),
            (None, Some(_)) => Err(ConfigError::new(
                CERT_VAR,
                "",
                "the certificate for GANTRY_TLS_KEY's key",
            )),
        }
    }

    /// Reads the files and builds the server configuration (ALPN `http/1.1`).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
        let certs = read_certs(&self.cert)?;
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| {
            ConfigError::new(
                KEY_VAR,
                self.key.display().to_string(),
                format!("a PEM private key ({e})"),
            )
        })?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::new(CERT_VAR, self.cert.display().to_string(), e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| {
                ConfigError::new(
                    KEY_VAR,
                    self.key.display().to_string(),
                    format!("the private key of the certificate in {CERT_VAR} ({e})"),
                )
            })?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    read_certs_of(CERT_VAR, path)
}

fn read_certs_of(var: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bad = |why: String| ConfigError::new(var, path.display().to_string(), why);
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(format!("a readable PEM certificate chain ({e})")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("a PEM certificate chain ({e})")))?;
    if certs.is_empty() {
        return Err(bad("at least one PEM CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// The acceptor for a listener: `None` for plain HTTP.
pub fn acceptor_from_env() -> Result<Option<tokio_rustls::TlsAcceptor>, ConfigError> {
    TlsFiles::from_env()?
        .map(|files| files.server_config().map(tokio_rustls::TlsAcceptor::from))
        .transpose()
}

/// A private certificate authority's PEM file that HTTP clients trust
/// besides the system's roots (a deployment with its own CA).
pub const CA_CERT_VAR: &str = "GANTRY_CA_CERT";

/// What names a CA file given by the program rather than by the
/// environment (a stack the harness started with its own CA), in errors.
pub const EXPLICIT_CA: &str = "the CA certificate file";

/// The one place HTTP clients are set up to reach a gateway: HTTPS with the
/// system's roots (rustls) plus, when `GANTRY_CA_CERT` names one, a private
/// CA's certificates.
pub fn client_builder() -> Result<reqwest::ClientBuilder, ConfigError> {
    client_builder_trusting(None)
}

/// [`client_builder`] that also trusts the CA certificates in `ca_file`:
/// for a stack the harness started with a CA it generated, whose clients
/// must trust it without anyone setting `GANTRY_CA_CERT`.
pub fn client_builder_trusting(ca_file: Option<&Path>) -> Result<reqwest::ClientBuilder, ConfigError> {
    let mut builder = reqwest::Client::builder().use_rustls_tls();
    if let Some(path) = config::raw(CA_CERT_VAR) {
        builder = trust(builder, CA_CERT_VAR, Path::new(&path))?;
    }
    if let Some(path) = ca_file {
        builder = trust(builder, EXPLICIT_CA, path)?;
    }
    Ok(builder)
}

fn trust(
    builder: reqwest::ClientBuilder,
    var: &'static str,
    path: &Path,
) -> Result<reqwest::ClientBuilder, ConfigError> {
    let certs = read_certs_of(var, path)?;
    certs.into_iter().try_fold(builder, |b, der| {
        let cert = reqwest::Certificate::from_der(der.as_ref())
            .map_err(|e| ConfigError::new(var, path.display().to_string(), format!("a PEM CA certificate ({e})")))?;
        Ok(b.add_root_certificate(cert))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("writing a test file");
        path
    }

    fn self_signed() -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("a certificate");
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    #[test]
    fn a_certificate_and_its_key_make_a_server_config() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (cert, key) = self_signed();
        let files = TlsFiles {
            cert: write(dir.path(), "cert.pem", &cert),
            key: write(dir.path(), "key.pem", &key),
        };
        let cfg = files.server_config().expect("a valid pair");
        assert_eq!(cfg.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn bad_files_name_the_variable_and_what_was_expected() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (cert, key) = self_signed();
        let (_, other_key) = self_signed();
        let cert = write(dir.path(), "cert.pem", &cert);
        let key = write(dir.path(), "key.pem", &key);
        let cases = [
            (write(dir.path(), "empty.pem", ""), key.clone(), CERT_VAR, "PEM"),
            (dir.path().join("missing.pem"), key.clone(), CERT_VAR, "readable"),
            (
                cert.clone(),
                write(dir.path(), "nokey.pem", "not a key"),
                KEY_VAR,
                "PEM private key",
            ),
            (
                cert.clone(),
                write(dir.path(), "other.pem", &other_key),
                KEY_VAR,
                "private key of the certificate",
            ),
        ];
        for (cert, key, var, expected) in cases {
            let e = TlsFiles { cert, key }.server_config().expect_err("a bad pair");
            assert_eq!(e.var, var, "{e}");
            assert!(e.to_string().contains(expected), "{e}");
        }
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let missing = dir.path().join("ca.pem");
        let e = client_builder_trusting(Some(&missing)).expect_err("no such file");
        assert_eq!(e.var, EXPLICIT_CA);
        assert!(e.value.ends_with("ca.pem"), "{e}");
    }
}

//! A private certificate authority and a server certificate it signed, made
//! on the spot for a test's TLS-terminating gateway.
//!
//! Why a CA and not one self-signed certificate: that is how a deployment
//! with its own CA looks (`GANTRY_CA_CERT` names the CA, the gateway serves
//! a leaf), so the clients are proven to trust a chain, not a pinned leaf.

pub use crate::error::PkiError;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// The names the server certificate is valid for: what the harness's URLs
/// use (`https://localhost:<port>`) and the loopback address.
pub const SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// The PEM files written: the CA's certificate (what clients trust), and
/// the server's certificate and key (`GANTRY_TLS_CERT`/`GANTRY_TLS_KEY`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestPki {
    /// The CA's certificate: what clients are told to trust (`GANTRY_CA_CERT`).
    pub ca_cert: PathBuf,
    /// The gateway's certificate, signed by the CA (`GANTRY_TLS_CERT`).
    pub server_cert: PathBuf,
    /// The gateway certificate's private key (`GANTRY_TLS_KEY`).
    pub server_key: PathBuf,
}

impl TestPki {
    /// Generates a CA and a server certificate for [`SERVER_NAMES`] into
    /// `dir` as `ca.pem`, `server.pem` and `server.key`.
    pub fn generate(dir: &Path) -> Result<Self, PkiError> {
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "Gantry test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, ca_key);

        let key = KeyPair::generate()?;
        let mut server = CertificateParams::new(SERVER_NAMES.map(String::from).to_vec())?;
        server.distinguished_name.push(DnType::CommonName, "localhost");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server.signed_by(&key, &issuer)?;

        let pki = Self {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
        };
        write(&pki.ca_cert, &ca_cert.pem())?;
        write(&pki.server_cert, &server_cert.pem())?;
        write(&pki.server_key, &key.serialize_pem())?;
        Ok(pki)
    }
}

fn write(path: &Path, text: &str) -> Result<(), PkiError> {
    std::fs::write(path, text).map_err(|source| PkiError::Write {
        path: path.to_owned(),
        source,
    })
}

//! The server's TLS settings: a certificate chain and its private key (PEM or DER), the
//! largest record to send, and how many resumption tickets a handshake hands out. Read and
//! checked once, when the setting is made, into a rustls `ServerConfig` every connection
//! shares.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The smallest and largest plaintext a record may carry (rustls's floor; TLS's ceiling).
pub(crate) const FRAGMENT_SIZES: std::ops::RangeInclusive<usize> = 32..=16384;

/// TLS for the server's port (`wss://`), set with [`Config::tls`](crate::Config::tls).
///
/// ```
/// # fn main() -> Result<(), wsloop::TlsError> {
/// # let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
/// # let (chain_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
/// let tls = wsloop::TlsConfig::from_pem(chain_pem.as_bytes(), key_pem.as_bytes())?
///     .max_fragment_size(Some(4096))
///     .tickets(0);
/// let config = wsloop::Config::default().tls(tls);
/// # assert!(config.validate().is_ok());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    pub(crate) server: Arc<ServerConfig>,
}

impl TlsConfig {
    /// Reads the certificate chain (leaf first) and the private key (PKCS#8, PKCS#1 or
    /// SEC1) from PEM files.
    ///
    /// # Errors
    /// A file that cannot be read, no certificate or key in it, bad PEM, or a key rustls
    /// refuses (see [`TlsError`]).
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        private_key: impl AsRef<Path>,
    ) -> Result<TlsConfig, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path)
                .map_err(|e| TlsError::Read { path: path.to_owned(), kind: e.kind() })
        };
        TlsConfig::from_pem(&read(cert_chain.as_ref())?, &read(private_key.as_ref())?)
    }

    /// Reads the certificate chain (leaf first) and the private key from PEM text.
    ///
    /// # Errors
    /// As [`TlsConfig::from_pem_files`], without the file errors.
    pub fn from_pem(cert_chain: &[u8], private_key: &[u8]) -> Result<TlsConfig, TlsError> {
        let chain = CertificateDer::pem_slice_iter(cert_chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::from_pem(e, TlsError::NoCertificate))?;
        let key = PrivateKeyDer::from_pem_slice(private_key)
            .map_err(|e| TlsError::from_pem(e, TlsError::NoPrivateKey))?;
        TlsConfig::from_der(chain, key)
    }

    /// Takes a certificate chain (leaf first) and its private key in DER.
    ///
    /// # Errors
    /// [`TlsError::NoCertificate`] for an empty chain; [`TlsError::Rejected`] when the key
    /// is of a kind the ring provider does not sign with, or does not match the leaf.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<TlsConfig, TlsError> {
        if chain.is_empty() {
            return Err(TlsError::NoCertificate);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Rejected)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(TlsError::Rejected)?;
        // Stateless tickets: resumption costs the server no memory per client.
        server.ticketer = rustls::crypto::ring::Ticketer::new().map_err(TlsError::Rejected)?;
        Ok(TlsConfig { server: Arc::new(server) })
    }

    /// The largest plaintext one record carries: `None` for TLS's 16 KiB (the default).
    /// Smaller records let a constrained client start decrypting sooner, at 22 to 29
    /// bytes of overhead each. [`Config::validate`](crate::Config::validate) checks it is
    /// 32 to 16384.
    pub fn max_fragment_size(mut self, bytes: Option<usize>) -> TlsConfig {
        Arc::make_mut(&mut self.server).max_fragment_size = bytes;
        self
    }

    /// How many TLS 1.3 resumption tickets each full handshake sends (default 2; 0 turns
    /// TLS 1.3 resumption off). A ticket is about 150 bytes on the wire and nothing kept
    /// on the server.
    pub fn tickets(mut self, count: usize) -> TlsConfig {
        Arc::make_mut(&mut self.server).send_tls13_tickets = count;
        self
    }

    /// The configured largest record plaintext (`None`: 16 KiB).
    pub fn get_max_fragment_size(&self) -> Option<usize> {
        self.server.max_fragment_size
    }

    /// The configured number of tickets per handshake.
    pub fn get_tickets(&self) -> usize {
        self.server.send_tls13_tickets
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("max_fragment_size", &self.server.max_fragment_size)
            .field("tickets", &self.server.send_tls13_tickets)
            .finish_non_exhaustive()
    }
}

/// TLS settings that could not be made: what to fix.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        kind: io::ErrorKind,
    },
    /// No certificate in the chain's PEM (or an empty chain).
    NoCertificate,
    /// No private key in the key's PEM.
    NoPrivateKey,
    /// The PEM text is malformed.
    Pem(pem::Error),
    /// rustls refused the certificate or key: a key kind it cannot sign with, or a key
    /// that does not match the leaf certificate.
    Rejected(rustls::Error),
}

impl TlsError {
    /// A PEM error, with "nothing found" named by what was looked for.
    fn from_pem(error: pem::Error, missing: TlsError) -> TlsError {
        match error {
            pem::Error::NoItemsFound => missing,
            other => TlsError::Pem(other),
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { path, kind } => write!(f, "cannot read {}: {kind}", path.display()),
            TlsError::NoCertificate => f.write_str("no certificate in the chain's PEM"),
            TlsError::NoPrivateKey => f.write_str("no private key in the key's PEM"),
            TlsError::Pem(e) => write!(f, "bad PEM: {e}"),
            TlsError::Rejected(e) => write!(f, "certificate or key refused: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Pem(e) => Some(e),
            TlsError::Rejected(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (String, String) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        (cert.cert.pem(), cert.signing_key.serialize_pem())
    }

    #[test]
    fn a_generated_pair_is_taken_with_its_knobs() {
        let (chain, key) = pair();
        let tls = TlsConfig::from_pem(chain.as_bytes(), key.as_bytes()).unwrap();
        assert_eq!(tls.get_tickets(), 2);
        let tls = tls.max_fragment_size(Some(1024)).tickets(0);
        assert_eq!((tls.get_max_fragment_size(), tls.get_tickets()), (Some(1024), 0));
    }

    #[test]
    fn bad_input_names_what_is_wrong() {
        let (chain, key) = pair();
        let (_, other_key) = pair();
        let err = |c: &str, k: &str| TlsConfig::from_pem(c.as_bytes(), k.as_bytes()).unwrap_err();
        assert!(matches!(err("", &key), TlsError::NoCertificate));
        assert!(matches!(err(&chain, ""), TlsError::NoPrivateKey));
        assert!(matches!(err(&chain, &chain), TlsError::NoPrivateKey));
        let broken = chain.replace("-----END CERTIFICATE-----", "");
        assert!(matches!(err(&broken, &key), TlsError::Pem(_)));
        assert!(matches!(err(&chain, &other_key), TlsError::Rejected(_)));
        let missing = TlsConfig::from_pem_files("/nonexistent/cert.pem", "/nonexistent/key.pem");
        assert!(matches!(missing, Err(TlsError::Read { kind: io::ErrorKind::NotFound, .. })));
    }
}

//! What a client connection trusts: the bundled Mozilla roots (`webpki-roots`, so no
//! system store is read and a build behaves the same everywhere), or a custom CA given
//! as PEM, which replaces them.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// The TLS side of one client connection's target, made once on the caller's thread and
/// used again at every reconnect.
pub(crate) struct ClientTls {
    pub(crate) config: Arc<rustls::ClientConfig>,
    pub(crate) name: ServerName<'static>,
}

/// Why a client's TLS could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientTlsError {
    /// The custom CA is not PEM holding at least one certificate rustls accepts.
    BadCa,
    /// The host is neither a DNS name nor an IP address.
    BadName,
}

impl ClientTls {
    /// Trust for `host`: the certificates of `ca_pem` when given, else the bundled roots.
    pub(crate) fn new(host: &str, ca_pem: Option<&[u8]>) -> Result<ClientTls, ClientTlsError> {
        let roots = match ca_pem {
            Some(pem) => custom_roots(pem)?,
            None => RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() },
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|_| ClientTlsError::BadCa)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(host.to_owned()).map_err(|_| ClientTlsError::BadName)?;
        Ok(ClientTls { config: Arc::new(config), name })
    }
}

fn custom_roots(pem: &[u8]) -> Result<RootCertStore, ClientTlsError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|_| ClientTlsError::BadCa)?;
        roots.add(cert).map_err(|_| ClientTlsError::BadCa)?;
    }
    if roots.is_empty() {
        return Err(ClientTlsError::BadCa);
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_custom_ca_replaces_the_roots_and_bad_input_is_refused() {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let ca = made.cert.pem();
        assert!(ClientTls::new("localhost", Some(ca.as_bytes())).is_ok());
        assert!(ClientTls::new("127.0.0.1", None).is_ok(), "an IP address is a name too");
        let not_pem = ClientTls::new("localhost", Some(b"no certificate here"));
        assert_eq!(not_pem.err(), Some(ClientTlsError::BadCa));
        let bad_name = ClientTls::new("bad name!", None);
        assert_eq!(bad_name.err(), Some(ClientTlsError::BadName));
    }
}

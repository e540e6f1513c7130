//! A TLS client's trust for the tests that talk to wsloop over TLS (kept out of `util`,
//! which the server crate's tests share without rustls).

use std::sync::Arc;

use rustls::pki_types::CertificateDer;

/// A TLS client configuration (ring, safe defaults) that trusts `cert` alone.
pub fn trusting(cert: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

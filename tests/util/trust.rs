//! A TLS client's trust for the tests (and benches/echo.rs) that talk to wsloop over TLS
//! (kept out of `util`, which the server crate's tests share without rustls), and the
//! `wss://` clients made with it.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use wsloop::TlsConfig;

/// A rustls client stream over TCP.
pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;
/// A tungstenite client over [`TlsStream`].
pub type WssClient = tungstenite::WebSocket<TlsStream>;

/// A certificate for `localhost` made for this test, and the server config serving it.
pub struct Identity {
    pub cert: CertificateDer<'static>,
    pub tls: TlsConfig,
}

pub fn identity() -> Identity {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (chain, key) = (made.cert.pem(), made.signing_key.serialize_pem());
    let tls = TlsConfig::from_pem(chain.as_bytes(), key.as_bytes()).unwrap();
    Identity { cert: made.cert.der().clone(), tls }
}
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

/// A TLS stream to `addr`, its handshake done.
pub fn tls_stream(addr: SocketAddr, cert: &CertificateDer<'static>) -> TlsStream {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(trusting(cert), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    // No Nagle delay on a small write (benches/echo.rs times round trips over it).
    tcp.set_nodelay(true).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).expect("TLS handshake");
    }
    stream
}

/// A `wss://` client of the server at `addr`, upgraded.
pub fn wss(addr: SocketAddr, cert: &CertificateDer<'static>) -> WssClient {
    let url = format!("wss://localhost:{}/", addr.port());
    let (client, response) =
        tungstenite::client(url.as_str(), tls_stream(addr, cert)).expect("upgrade");
    assert_eq!(response.status(), 101);
    client
}

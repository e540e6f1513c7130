//! `wss://`: TLS (rustls with the `ring` provider) over a non-blocking socket, for the
//! generator's connections and for the sink (`sink --tls-cert`).
//!
//! One [`ClientConfig`] serves every connection of a run. Each `wss` connection owns a
//! rustls session; [`read`] and [`write`] move bytes between it and the socket with the
//! same contract as the socket's own `read` and `write` (`WouldBlock` when nothing can
//! move now), so the event loops treat both kinds of connection alike.
//!
//! Each connection does a full handshake: session resumption is off, so every connection
//! costs the server what a new visitor costs.

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConnection, Resumption};
use rustls::crypto::{WebPkiSupportedAlgorithms, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ServerConfig;
use rustls::{
    ClientConfig, ConnectionCommon, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// Which server certificates a `wss://` connection accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Chains to a root of the Mozilla set bundled by `webpki-roots`.
    WebPki,
    /// Chains to a certificate of this PEM file (`--ca`), and to nothing else.
    Ca(PathBuf),
    /// Anything (`--insecure`): the handshake's signatures are still checked, the
    /// certificate is not.
    Insecure,
}

/// Why TLS cannot be set up for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsError {
    /// `--ca` cannot be read or holds no certificate.
    Ca {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the configuration (no usable protocol version).
    Config(String),
    /// A `wss://` host that is not a valid DNS name or IP address.
    ServerName(String),
    /// The sink's `--tls-cert` or `--tls-key` cannot be used.
    Identity {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Ca { path, reason } => write!(f, "--ca {}: {reason}", path.display()),
            TlsError::Config(e) => write!(f, "TLS configuration: {e}"),
            TlsError::ServerName(h) => write!(f, "{h:?} is not a valid TLS server name"),
            TlsError::Identity { path, reason } => write!(f, "{}: {reason}", path.display()),
        }
    }
}

impl std::error::Error for TlsError {}

/// The client configuration every `wss` connection of a run shares.
///
/// # Errors
/// [`TlsError::Ca`] when `--ca` is unreadable or empty; [`TlsError::Config`] when rustls
/// refuses the protocol versions.
pub fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = match trust {
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        Trust::WebPki => {
            let roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Ca(path) => builder.with_root_certificates(ca_roots(path)?).with_no_client_auth(),
    };
    config.resumption = Resumption::disabled();
    // WebSocket's upgrade is HTTP/1.1 (RFC 6455 §4.1).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn ca_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let fail = |reason: String| TlsError::Ca { path: path.to_path_buf(), reason };
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| fail(e.to_string()))?;
    for cert in certs {
        let cert = cert.map_err(|e| fail(e.to_string()))?;
        roots.add(cert).map_err(|e| fail(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(fail("no certificate in the file".into()));
    }
    Ok(roots)
}

/// The sink's server configuration: the certificate chain in `cert` and the private key in
/// `key` (PEM files).
///
/// # Errors
/// [`TlsError::Identity`] when a file is unreadable, empty, or the key does not fit.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let fail =
        |path: &Path, reason: String| TlsError::Identity { path: path.to_path_buf(), reason };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| fail(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(fail(cert, "no certificate in the file".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| fail(key, e.to_string()))?;
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| fail(key, e.to_string()))?;
    Ok(Arc::new(config))
}

/// Checks that `host` can name a TLS server, once, before any connection is made.
///
/// # Errors
/// [`TlsError::ServerName`] for a host that is neither a DNS name nor an IP address.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(host.to_string()).map_err(|_| TlsError::ServerName(host.to_string()))
}

/// A new client session for one connection to `name`; its ClientHello is ready to write.
///
/// # Errors
/// rustls's error when the session cannot start (it does not, for a valid config).
pub fn connect(
    config: &Arc<ClientConfig>,
    name: ServerName<'static>,
) -> Result<Box<ClientConnection>, rustls::Error> {
    ClientConnection::new(config.clone(), name).map(Box::new)
}

/// Reads decrypted bytes into `buf`, with a socket's contract: `Ok(0)` is the end of the
/// stream (TCP closed, or the server's `close_notify`), `WouldBlock` that nothing is
/// readable now.
///
/// Fills `buf` as far as the socket allows, so a short read means the socket was drained
/// (the engine relies on it, as with a plain socket). A TLS error (a bad record, an alert,
/// a certificate the trust refuses) is an `InvalidData` error, after the alert is sent.
pub fn read<D>(
    tls: &mut ConnectionCommon<D>,
    sock: &mut impl ReadWrite,
    buf: &mut [u8],
) -> io::Result<usize> {
    let mut filled = 0;
    loop {
        while filled < buf.len() {
            match tls.reader().read(&mut buf[filled..]) {
                // close_notify: nothing more will come.
                Ok(0) => return Ok(filled),
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // TCP closed without close_notify: an end all the same (the WebSocket
                // close handshake, not TLS, says whether the ending was clean).
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(filled),
                Err(e) => return Err(e),
            }
        }
        if filled == buf.len() {
            return Ok(filled);
        }
        match tls.read_tls(sock) {
            Ok(0) => return Ok(filled),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock && filled > 0 => return Ok(filled),
            Err(e) => return Err(e),
        }
        let processed = tls.process_new_packets();
        // Handshake messages, alerts and key updates go out now; if the socket is full
        // they wait for the next writable event.
        match push(tls, sock) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if let Err(e) = processed {
            return Err(io::Error::new(ErrorKind::InvalidData, e));
        }
    }
}

/// Encrypts a prefix of `data` and writes it (and anything rustls had pending) to the
/// socket, with a socket's contract: `Ok(n)` bytes taken, `WouldBlock` when rustls's
/// buffer is full and the socket takes nothing.
///
/// Bytes written before the handshake ends are held by rustls and sent once it ends.
pub fn write<D>(
    tls: &mut ConnectionCommon<D>,
    sock: &mut impl ReadWrite,
    data: &[u8],
) -> io::Result<usize> {
    push(tls, sock)?;
    let n = tls.writer().write(data)?;
    match push(tls, sock) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    if n == 0 && !data.is_empty() {
        return Err(ErrorKind::WouldBlock.into());
    }
    Ok(n)
}

/// Writes what rustls has pending to the socket until it is all out (`Ok`) or the socket
/// is full (`WouldBlock`).
pub fn push<D>(tls: &mut ConnectionCommon<D>, sock: &mut impl ReadWrite) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(sock) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A socket both ways (`mio::net::TcpStream`, or a test's stream).
pub trait ReadWrite: Read + Write {}

impl<T: Read + Write> ReadWrite for T {}

/// `--insecure`: every certificate is accepted; the handshake's signatures are still
/// verified (with the provider's algorithms), so the peer must hold the key it shows.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

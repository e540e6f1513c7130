//! What a client connection is opened with, and why opening one can be refused.

use std::fmt;
use std::time::Duration;

use crate::protocol::CloseCode;

/// How a client connection comes back after it drops: exponential backoff with full
/// jitter (see [`ClientOptions::reconnect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconnect {
    /// The first attempt's window (default 500 ms): it waits a random time up to this.
    pub initial: Duration,
    /// The largest window (default 20 s); each failed attempt doubles it up to this.
    pub max: Duration,
    /// A connection that stayed open this long starts the schedule over when it drops
    /// (default 30 s).
    pub reset_after: Duration,
    /// Give up after this many failed attempts in a row (default: never).
    pub max_attempts: Option<u32>,
    /// Close codes from the server that end the connection for good instead of
    /// reconnecting (default: none). A close the application asks for through
    /// [`Handle::close`](crate::Handle::close) and a server shutdown always do.
    pub terminal_codes: Vec<CloseCode>,
}

impl Default for Reconnect {
    fn default() -> Reconnect {
        Reconnect {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(20),
            reset_after: Duration::from_secs(30),
            max_attempts: None,
            terminal_codes: Vec::new(),
        }
    }
}

/// Options of one outgoing connection, for [`Handle::connect`](crate::Handle::connect).
///
/// ```
/// use std::time::Duration;
/// use wsloop::{ClientOptions, Reconnect};
///
/// let options = ClientOptions::new()
///     .header("Authorization", "Bearer secret")
///     .protocol("feed.v1")
///     .compression(true)
///     .topic("upstream")
///     .connect_timeout(Duration::from_secs(5))
///     .reconnect(Some(Reconnect { max_attempts: Some(10), ..Reconnect::default() }));
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub(crate) connect_timeout: Duration,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) protocols: Vec<String>,
    pub(crate) compression: bool,
    pub(crate) ca_pem: Option<Vec<u8>>,
    pub(crate) reconnect: Option<Reconnect>,
    pub(crate) topics: Vec<String>,
    pub(crate) offline_queue_bytes: usize,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            headers: Vec::new(),
            protocols: Vec::new(),
            compression: false,
            ca_pem: None,
            reconnect: Some(Reconnect::default()),
            topics: Vec::new(),
            offline_queue_bytes: 1 << 20,
        }
    }
}

impl ClientOptions {
    /// The defaults: 10 s to connect, reconnect forever with the default backoff, a
    /// 1 MiB offline queue, no compression, no subprotocol.
    pub fn new() -> ClientOptions {
        ClientOptions::default()
    }

    /// How long the TCP connect plus the opening handshake may take (default 10 s); an
    /// attempt that takes longer fails (and counts for the backoff). Never fires early, at
    /// most one 100 ms tick late.
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientOptions {
        self.connect_timeout = timeout;
        self
    }

    /// An extra header line of the upgrade request (e.g. `Authorization`). Checked by
    /// [`Handle::connect`](crate::Handle::connect): no CR, LF or NUL, a token as name.
    pub fn header(mut self, name: &str, value: &str) -> ClientOptions {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Offers a subprotocol (in order of preference); the server's choice is in
    /// [`ConnectInfo::protocol`](crate::ConnectInfo::protocol).
    pub fn protocol(mut self, protocol: &str) -> ClientOptions {
        self.protocols.push(protocol.to_owned());
        self
    }

    /// Offers permessage-deflate (RFC 7692) with `client_max_window_bits`; messages are
    /// compressed by the reactor's codecs as on the server side.
    pub fn compression(mut self, offer: bool) -> ClientOptions {
        self.compression = offer;
        self
    }

    /// Trusts this CA (PEM) for `wss://`, besides the system roots.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> ClientOptions {
        self.ca_pem = Some(pem.into());
        self
    }

    /// How to come back after the connection drops; `None`: the first end is final.
    pub fn reconnect(mut self, reconnect: Option<Reconnect>) -> ClientOptions {
        self.reconnect = reconnect;
        self
    }

    /// A topic of this server the connection joins when it opens, and re-joins on every
    /// reconnect (so what is published there goes to the remote server).
    pub fn topic(mut self, topic: &str) -> ClientOptions {
        self.topics.push(topic.to_owned());
        self
    }

    /// What [`Handle::send`](crate::Handle::send) may hold while the connection is down
    /// (default 1 MiB, each message counted at its length plus 64 bytes); past it a send
    /// fails with [`SendErrorKind::OfflineQueueFull`](crate::SendErrorKind::OfflineQueueFull).
    pub fn offline_queue_bytes(mut self, bytes: usize) -> ClientOptions {
        self.offline_queue_bytes = bytes;
        self
    }
}

/// Why [`Handle::connect`](crate::Handle::connect) refused to open a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectError {
    /// Not a `ws://` or `wss://` URL.
    UnsupportedScheme,
    /// The URL has no host, a bad port, or characters a request line cannot carry.
    InvalidUrl,
    /// An extra header's name or value cannot be sent (CR, LF, NUL, or not a token).
    InvalidHeader,
    /// The custom CA (`ClientOptions::ca_pem`) is not PEM holding a certificate.
    InvalidCa,
    /// The server is at `max_connections`.
    TooManyConnections,
    /// The server has stopped.
    ServerStopped,
    /// Called on a reactor thread of a server with one reactor (an inline handler): the
    /// reactor cannot wait for itself. Call it from a worker or another thread.
    OnReactorThread,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectError::UnsupportedScheme => "URL scheme is not ws:// or wss://",
            ConnectError::InvalidUrl => "invalid URL",
            ConnectError::InvalidHeader => "invalid extra header",
            ConnectError::InvalidCa => "the custom CA holds no usable PEM certificate",
            ConnectError::TooManyConnections => "server at max_connections",
            ConnectError::ServerStopped => "server stopped",
            ConnectError::OnReactorThread => "connect called on the only reactor's thread",
        })
    }
}

impl std::error::Error for ConnectError {}

//! The opening handshake (RFC 6455 §4.2): HTTP/1.1 request parsing and the responses. Sans-IO.
//!
//! CONTRACT (to be implemented; signatures are fixed, the reactor calls them):

use std::fmt;

/// A parsed HTTP/1.1 request head, as the upgrade hook sees it.
#[derive(Debug, Clone)]
pub struct Request {
    _todo: (),
}

impl Request {
    /// The method, e.g. `GET`.
    pub fn method(&self) -> &str {
        todo!()
    }
    /// The path without the query, e.g. `/chat`.
    pub fn path(&self) -> &str {
        todo!()
    }
    /// The query string without `?`, empty when absent.
    pub fn query(&self) -> &str {
        todo!()
    }
    /// The first header of this name (case-insensitive), if any and if UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        let _ = name;
        todo!()
    }
    /// Every header as (name, value) in arrival order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        std::iter::empty()
    }
    /// The subprotocols the client offered (`Sec-WebSocket-Protocol`, all headers, comma lists).
    pub fn protocols(&self) -> impl Iterator<Item = &str> {
        std::iter::empty()
    }
    /// Whether this asks for a WebSocket upgrade (has `Upgrade: websocket`).
    pub fn is_upgrade(&self) -> bool {
        todo!()
    }
}

/// Why a handshake was refused; [`HandshakeError::status`] is the HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// The head exceeded the configured maximum before its end (431).
    HeadersTooLarge,
    /// Not parseable as HTTP/1.1 (400).
    Malformed,
    /// Not GET (405) -- answered as 400 Bad Request per §4.2.1 unless routed elsewhere.
    NotGet,
    /// HTTP version below 1.1 (400).
    OldHttpVersion,
    /// No `Host` header (400).
    MissingHost,
    /// No `Upgrade: websocket` (400).
    MissingUpgrade,
    /// `Connection` lacks the `upgrade` token (400).
    MissingConnectionUpgrade,
    /// `Sec-WebSocket-Key` absent or not 16 bytes of base64 (400).
    InvalidKey,
    /// `Sec-WebSocket-Version` is not 13 (426, with `Sec-WebSocket-Version: 13`).
    UnsupportedVersion,
    /// The Origin is not allowed (403).
    OriginRefused,
}

impl HandshakeError {
    /// The HTTP status code to answer with.
    pub fn status(self) -> u16 {
        todo!()
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for HandshakeError {}

/// Parses a request head from the start of `buf`.
///
/// `Ok(None)`: incomplete and under `max_header_bytes`, read more. `Ok(Some((req, used)))`:
/// the head was `used` bytes. `Err(HeadersTooLarge)` once `buf` passes `max_header_bytes`
/// without a complete head.
pub fn parse_request(
    buf: &[u8],
    max_header_bytes: usize,
) -> Result<Option<(Request, usize)>, HandshakeError> {
    let _ = (buf, max_header_bytes);
    todo!()
}

/// Checks the §4.2.1 rules for a WebSocket upgrade: GET, HTTP/1.1, Host, Upgrade,
/// Connection, Sec-WebSocket-Key, Sec-WebSocket-Version: 13.
pub fn validate_upgrade(req: &Request) -> Result<(), HandshakeError> {
    let _ = req;
    todo!()
}

/// The default origin rule: no `Origin`, or an Origin whose host[:port] equals `Host`.
pub fn origin_matches_host(req: &Request) -> bool {
    let _ = req;
    todo!()
}

/// The server's first preference the client also offered.
pub fn select_protocol<'a>(req: &Request, supported: &'a [String]) -> Option<&'a str> {
    let _ = (req, supported);
    todo!()
}

/// `Sec-WebSocket-Accept` for a key (§4.2.2: base64(SHA-1(key + GUID))).
pub fn accept_key(key: &[u8]) -> String {
    let _ = key;
    todo!()
}

/// The 101 response for `req`, with the chosen subprotocol and extensions header value.
pub fn accept_response(req: &Request, protocol: Option<&str>, extensions: Option<&str>) -> Vec<u8> {
    let _ = (req, protocol, extensions);
    todo!()
}

/// An error response with `Connection: close` and an empty body; 426 carries
/// `Sec-WebSocket-Version: 13`. `status` is any 4xx/5xx.
pub fn error_response(status: u16) -> Vec<u8> {
    let _ = status;
    todo!()
}

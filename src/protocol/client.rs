//! The opening handshake from the client's side (RFC 6455 §4.1), sans-IO: a request to
//! send, then the server's response bytes in and checked against what was asked.
//!
//! # Example
//!
//! ```
//! use wsloop::protocol::client::{Offer, check_response, parse_response, request};
//! use wsloop::protocol::handshake::accept_key;
//!
//! let key = *b"dGhlIHNhbXBsZSBub25jZQ==";
//! let offer = Offer { host: "server.example.com", path: "/chat", ..Offer::default() };
//! let bytes = request(&offer, &key);
//! assert!(bytes.starts_with(b"GET /chat HTTP/1.1\r\n"));
//!
//! let answer = format!(
//!     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
//!      Sec-WebSocket-Accept: {}\r\n\r\n",
//!     accept_key(&key)
//! );
//! let (response, used) = parse_response(answer.as_bytes(), 8192).unwrap().expect("complete");
//! assert_eq!(used, answer.len());
//! let agreed = check_response(&response, &key, &offer).unwrap();
//! assert_eq!(agreed.protocol, None);
//! ```

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::handshake::accept_key;

/// The most headers a response may carry.
const MAX_HEADERS: usize = 64;

/// What a client asks for in its upgrade request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Offer<'a> {
    /// The `Host` header: the server's authority (`host[:port]`).
    pub host: &'a str,
    /// The request target: path and query, e.g. `/chat?room=1`. Empty means `/`.
    pub path: &'a str,
    /// Subprotocols offered, in order of preference.
    pub protocols: &'a [&'a str],
    /// The `Sec-WebSocket-Extensions` offer, if any.
    pub extensions: Option<&'a str>,
    /// Extra header lines, written as given (`(name, value)`).
    pub headers: &'a [(&'a str, &'a str)],
}

/// A `Sec-WebSocket-Key` from 16 random bytes (§4.1: "a randomly selected 16-byte value
/// that has been base64-encoded").
pub fn key_from(random: [u8; 16]) -> [u8; 24] {
    let mut key = [0u8; 24];
    // 16 bytes encode to exactly 24 characters, so this cannot fail.
    let _ = STANDARD.encode_slice(random, &mut key);
    key
}

/// The upgrade request for `offer` with `key` (from [`key_from`]).
pub fn request(offer: &Offer<'_>, key: &[u8; 24]) -> Vec<u8> {
    let path = if offer.path.is_empty() { "/" } else { offer.path };
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(format!("GET {path} HTTP/1.1\r\n").as_bytes());
    let mut header = |name: &str, value: &[u8]| {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    header("Host", offer.host.as_bytes());
    header("Upgrade", b"websocket");
    header("Connection", b"Upgrade");
    header("Sec-WebSocket-Key", key);
    header("Sec-WebSocket-Version", b"13");
    if !offer.protocols.is_empty() {
        header("Sec-WebSocket-Protocol", offer.protocols.join(", ").as_bytes());
    }
    if let Some(extensions) = offer.extensions {
        header("Sec-WebSocket-Extensions", extensions.as_bytes());
    }
    for (name, value) in offer.headers {
        header(name, value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The parts of a server's response the client checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    upgrade_websocket: bool,
    connection_upgrade: bool,
    accept: Option<String>,
    protocol: Option<String>,
    extensions: Option<String>,
}

/// Why a server's response does not open the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// Not an HTTP/1.1 response head.
    Malformed,
    /// The head passed the size limit, or had too many headers.
    HeadersTooLarge,
    /// A status other than 101 (§4.1: the handshake failed).
    Status(u16),
    /// No `Upgrade: websocket`.
    MissingUpgrade,
    /// `Connection` lacks the `upgrade` token.
    MissingConnectionUpgrade,
    /// `Sec-WebSocket-Accept` absent or not the hash of the key sent.
    BadAccept,
    /// A subprotocol the client did not offer.
    UnofferedProtocol,
    /// An extension the client did not offer, or one it offered answered with
    /// parameters it did not offer or cannot accept (RFC 7692 §7.1: an unknown parameter,
    /// a bad value, a parameter twice).
    UnofferedExtension,
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for ResponseError {}

/// What the server agreed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreed {
    /// The subprotocol the server chose.
    pub protocol: Option<String>,
    /// The `Sec-WebSocket-Extensions` the server answered, if any (one the client offered).
    pub extensions: Option<String>,
}

/// Parses a response head from the start of `buf`: `Ok(None)` means read more.
///
/// # Errors
/// [`ResponseError::HeadersTooLarge`] once `buf` holds `max_header_bytes` without a whole
/// head; [`ResponseError::Malformed`] for anything that is not a response head.
pub fn parse_response(
    buf: &[u8],
    max_header_bytes: usize,
) -> Result<Option<(Response, usize)>, ResponseError> {
    let window = buf.get(..max_header_bytes).unwrap_or(buf);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut headers);
    let used = match parsed.parse(window) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) if buf.len() >= max_header_bytes => {
            return Err(ResponseError::HeadersTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ResponseError::HeadersTooLarge),
        Err(_) => return Err(ResponseError::Malformed),
    };
    let status = parsed.code.ok_or(ResponseError::Malformed)?;
    let mut response = Response {
        status,
        upgrade_websocket: false,
        connection_upgrade: false,
        accept: None,
        protocol: None,
        extensions: None,
    };
    for header in parsed.headers.iter() {
        let value = std::str::from_utf8(header.value).map_err(|_| ResponseError::Malformed)?;
        let value = value.trim();
        let name = header.name;
        if name.eq_ignore_ascii_case("upgrade") {
            response.upgrade_websocket |= value.eq_ignore_ascii_case("websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            response.connection_upgrade |=
                value.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
        } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
            response.accept = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            response.protocol = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("sec-websocket-extensions") && !value.is_empty() {
            append(&mut response.extensions, value);
        }
    }
    Ok(Some((response, used)))
}

fn append(list: &mut Option<String>, value: &str) {
    match list {
        Some(list) => {
            list.push_str(", ");
            list.push_str(value);
        }
        None => *list = Some(value.to_owned()),
    }
}

/// Checks a response against the request that was sent (§4.1, the client's checks 1–6).
///
/// # Errors
/// The first rule the response breaks.
pub fn check_response(
    response: &Response,
    key: &[u8; 24],
    offer: &Offer<'_>,
) -> Result<Agreed, ResponseError> {
    if response.status != 101 {
        return Err(ResponseError::Status(response.status));
    }
    if !response.upgrade_websocket {
        return Err(ResponseError::MissingUpgrade);
    }
    if !response.connection_upgrade {
        return Err(ResponseError::MissingConnectionUpgrade);
    }
    if response.accept.as_deref() != Some(accept_key(key).as_str()) {
        return Err(ResponseError::BadAccept);
    }
    if let Some(protocol) = &response.protocol
        && !offer.protocols.contains(&protocol.as_str())
    {
        return Err(ResponseError::UnofferedProtocol);
    }
    if let Some(extensions) = &response.extensions
        && !extensions_offered(extensions, offer.extensions)
    {
        return Err(ResponseError::UnofferedExtension);
    }
    Ok(Agreed { protocol: response.protocol.clone(), extensions: response.extensions.clone() })
}

/// Whether every extension named in the answer was named in the offer.
fn extensions_offered(answer: &str, offer: Option<&str>) -> bool {
    let name = |ext: &str| ext.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let offered: Vec<String> = offer.unwrap_or("").split(',').map(name).collect();
    answer.split(',').map(name).all(|n| !n.is_empty() && offered.contains(&n))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 24] = *b"dGhlIHNhbXBsZSBub25jZQ==";

    fn answer(extra: &str) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n{extra}\r\n"
        )
    }

    fn check(text: &str, offer: &Offer<'_>) -> Result<Agreed, ResponseError> {
        let (response, used) = parse_response(text.as_bytes(), 8192)?.expect("complete");
        assert_eq!(used, text.len());
        check_response(&response, &KEY, offer)
    }

    #[test]
    fn the_rfc_example_is_accepted_at_every_split() {
        // RFC 6455 §1.3: this key hashes to s3pPLMBiTxaQ9kYGzzhZRbK+xOo=.
        let text = answer("");
        for cut in 0..text.len() {
            assert_eq!(parse_response(&text.as_bytes()[..cut], 8192), Ok(None), "cut {cut}");
        }
        let agreed = check(&text, &Offer::default()).unwrap();
        assert_eq!(agreed, Agreed { protocol: None, extensions: None });
    }

    #[test]
    fn every_broken_rule_is_named() {
        let offer = Offer { protocols: &["chat"], ..Offer::default() };
        let bad_accept = answer("").replace("s3pP", "AAAA");
        assert_eq!(check(&bad_accept, &offer), Err(ResponseError::BadAccept));
        let no_upgrade = answer("").replace("Upgrade: websocket\r\n", "");
        assert_eq!(check(&no_upgrade, &offer), Err(ResponseError::MissingUpgrade));
        let no_connection = answer("").replace("Connection: Upgrade\r\n", "");
        assert_eq!(check(&no_connection, &offer), Err(ResponseError::MissingConnectionUpgrade));
        let refused = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(check(refused, &offer), Err(ResponseError::Status(403)));
        let other = answer("Sec-WebSocket-Protocol: other\r\n");
        assert_eq!(check(&other, &offer), Err(ResponseError::UnofferedProtocol));
        let chat = answer("Sec-WebSocket-Protocol: chat\r\n");
        assert_eq!(check(&chat, &offer).unwrap().protocol.as_deref(), Some("chat"));
        let deflate = answer("Sec-WebSocket-Extensions: permessage-deflate\r\n");
        assert_eq!(check(&deflate, &offer), Err(ResponseError::UnofferedExtension));
        let offered = Offer {
            extensions: Some("permessage-deflate; client_max_window_bits"),
            ..Offer::default()
        };
        assert!(check(&deflate, &offered).is_ok());
        assert_eq!(parse_response(b"garbage\r\n\r\n", 8192), Err(ResponseError::Malformed));
        let long = format!("HTTP/1.1 101 OK\r\nX-Long: {}", "a".repeat(300));
        assert_eq!(parse_response(long.as_bytes(), 256), Err(ResponseError::HeadersTooLarge));
    }

    #[test]
    fn the_request_is_one_the_server_parser_accepts() {
        let offer = Offer {
            host: "example.com:9001",
            path: "/feed?x=1",
            protocols: &["a", "b"],
            extensions: Some("permessage-deflate"),
            headers: &[("Authorization", "Bearer t")],
        };
        let key = key_from([7; 16]);
        let bytes = request(&offer, &key);
        let (req, used) =
            crate::protocol::handshake::parse_request(&bytes, 8192).unwrap().expect("complete");
        assert_eq!(used, bytes.len());
        crate::protocol::handshake::validate_upgrade(&req).unwrap();
        assert_eq!(req.path(), "/feed");
        assert_eq!(req.protocols().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(req.header("Authorization"), Some("Bearer t"));
        assert_eq!(req.header("Sec-WebSocket-Key"), std::str::from_utf8(&key).ok());
    }
}

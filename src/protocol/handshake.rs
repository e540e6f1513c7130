//! The opening handshake (RFC 6455 §4.2), sans-IO: request bytes in, a [`Request`] and
//! response bytes out.
//!
//! The reactor accumulates the bytes of a new connection and calls [`parse_request`] on the
//! whole buffer after every read. `Ok(None)` means "read more"; the head is never copied
//! until it is complete. A head that reaches the configured maximum without ending is
//! refused with [`HandshakeError::HeadersTooLarge`] (431), so a slow or hostile client
//! cannot make the buffer grow without bound.
//!
//! Once a head is parsed, the reactor (or the application's upgrade hook) checks it:
//!
//! 1. [`validate_upgrade`]: the §4.2.1 rules (GET, HTTP/1.1, Host, Upgrade, Connection,
//!    Sec-WebSocket-Key, Sec-WebSocket-Version: 13);
//! 2. an origin policy, by default [`origin_matches_host`] (403 when refused);
//! 3. [`select_protocol`] for the subprotocol;
//!
//! and answers with [`accept_response`] (101) or [`error_response`] for
//! [`HandshakeError::status`].
//!
//! # Example
//!
//! ```
//! use wsloop::protocol::handshake::{accept_response, parse_request, validate_upgrade};
//!
//! let bytes = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
//!     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
//!     Sec-WebSocket-Version: 13\r\n\r\n";
//! let (req, used) = parse_request(bytes, 8192).unwrap().expect("complete head");
//! assert_eq!(used, bytes.len());
//! assert_eq!(req.path(), "/chat");
//! validate_upgrade(&req).unwrap();
//! let response = accept_response(&req, None, None);
//! assert!(response.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
//! ```

use std::fmt;
use std::net::Ipv6Addr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The most headers one request may carry; more is answered like an oversized head (431).
const MAX_HEADERS: usize = 64;

/// The GUID of RFC 6455 §1.3, appended to the key before hashing.
const WS_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The length of a `Sec-WebSocket-Accept` value: base64 of a 20-byte SHA-1 digest.
const ACCEPT_LEN: usize = 28;

/// A parsed HTTP/1.1 request head, as the upgrade hook sees it.
///
/// It owns its data in three allocations: one string holding the method, the request
/// target and every header name; one byte buffer holding every header value (values may
/// be any bytes, names and the target are always UTF-8); and one table of end offsets.
/// Accessors cannot panic.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    /// `method ++ target ++ name_0 ++ name_1 ++ ...`.
    text: Box<str>,
    /// `value_0 ++ value_1 ++ ...`.
    values: Box<[u8]>,
    /// Per header, in arrival order: (end of its name in `text`, end of its value in `values`).
    /// A header starts where the previous one ended (the first name at `target_end`).
    headers: Box<[(u32, u32)]>,
    /// End of the method in `text`.
    method_end: u32,
    /// End of the path in `text` (the `?` or the end of the target).
    path_end: u32,
    /// End of the request target (path and query) in `text`.
    target_end: u32,
    /// The HTTP minor version: 1 for HTTP/1.1.
    version: u8,
}

impl Request {
    /// The method, e.g. `GET`.
    pub fn method(&self) -> &str {
        self.text_range(0, self.method_end)
    }

    /// The path without the query, e.g. `/chat`.
    pub fn path(&self) -> &str {
        self.text_range(self.method_end, self.path_end)
    }

    /// The query string without `?`, empty when absent.
    pub fn query(&self) -> &str {
        let start = if self.path_end < self.target_end { self.path_end + 1 } else { self.path_end };
        self.text_range(start, self.target_end)
    }

    /// The HTTP minor version of the request line: `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The first header of this name (case-insensitive), if any and if UTF-8.
    ///
    /// Only the first header of that name is looked at: when its value is not UTF-8 the
    /// answer is `None` even if a later header of the same name is.
    pub fn header(&self, name: &str) -> Option<&str> {
        let value = self.header_bytes(name)?;
        std::str::from_utf8(value).ok()
    }

    /// Every header as (name, value) in arrival order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let mut name_start = self.target_end;
        let mut value_start = 0u32;
        self.headers.iter().map(move |&(name_end, value_end)| {
            let name = self.text_range(name_start, name_end);
            let value = self.values.get(value_start as usize..value_end as usize).unwrap_or(&[]);
            name_start = name_end;
            value_start = value_end;
            (name, value)
        })
    }

    /// The subprotocols the client offered (`Sec-WebSocket-Protocol`, all headers, comma lists).
    ///
    /// Entries are trimmed of spaces and tabs; empty entries and non-UTF-8 headers are skipped.
    pub fn protocols(&self) -> impl Iterator<Item = &str> {
        self.headers_named("Sec-WebSocket-Protocol")
            .filter_map(|value| std::str::from_utf8(value).ok())
            .flat_map(|value| value.split(','))
            .map(|entry| entry.trim_matches([' ', '\t']))
            .filter(|entry| !entry.is_empty())
    }

    /// Whether this asks for a WebSocket upgrade (has `Upgrade: websocket`).
    ///
    /// The token is matched case-insensitively in a comma list, across all `Upgrade` headers.
    pub fn is_upgrade(&self) -> bool {
        self.has_token("Upgrade", b"websocket")
    }

    /// `text[start..end]`, or `""` if the range is not valid (it always is).
    fn text_range(&self, start: u32, end: u32) -> &str {
        self.text.get(start as usize..end as usize).unwrap_or("")
    }

    /// The raw value of the first header of this name (case-insensitive).
    fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.headers_named(name).next()
    }

    /// The raw values of every header of this name (case-insensitive), in arrival order.
    fn headers_named<'s, 'n>(
        &'s self,
        name: &'n str,
    ) -> impl Iterator<Item = &'s [u8]> + use<'s, 'n> {
        self.headers().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, value)| value)
    }

    /// Whether some header of this name holds `token` (case-insensitive) in its comma list.
    fn has_token(&self, name: &str, token: &[u8]) -> bool {
        self.headers_named(name).any(|value| {
            value.split(|&b| b == b',').any(|entry| trim_ows(entry).eq_ignore_ascii_case(token))
        })
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Headers<'a>(&'a Request);
        impl fmt::Debug for Headers<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list()
                    .entries(
                        self.0
                            .headers()
                            .map(|(name, value)| (name, String::from_utf8_lossy(value))),
                    )
                    .finish()
            }
        }
        f.debug_struct("Request")
            .field("method", &self.method())
            .field("path", &self.path())
            .field("query", &self.query())
            .field("version", &format_args!("HTTP/1.{}", self.version))
            .field("headers", &Headers(self))
            .finish()
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
        match self {
            HandshakeError::HeadersTooLarge => 431,
            HandshakeError::UnsupportedVersion => 426,
            HandshakeError::OriginRefused => 403,
            HandshakeError::Malformed
            | HandshakeError::NotGet
            | HandshakeError::OldHttpVersion
            | HandshakeError::MissingHost
            | HandshakeError::MissingUpgrade
            | HandshakeError::MissingConnectionUpgrade
            | HandshakeError::InvalidKey => 400,
        }
    }

    /// The full response for this error: `error_response(self.status())`.
    pub fn response(self) -> Vec<u8> {
        error_response(self.status())
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
///
/// Call it again with the whole accumulated buffer after each read; a head split at any
/// byte gives the same result as the head in one piece. Bytes after the head (`buf[used..]`)
/// are not looked at.
///
/// # Errors
///
/// - [`HandshakeError::HeadersTooLarge`]: `buf` holds `max_header_bytes` or more without a
///   complete head, the complete head is longer than `max_header_bytes`, or it has more
///   than 64 headers.
/// - [`HandshakeError::Malformed`]: not an HTTP/1.x request head.
pub fn parse_request(
    buf: &[u8],
    max_header_bytes: usize,
) -> Result<Option<(Request, usize)>, HandshakeError> {
    // Parsing at most `max_header_bytes` makes a head longer than the limit look incomplete,
    // which the limit check below then refuses, whether or not the rest has arrived.
    let window = buf.get(..max_header_bytes).unwrap_or(buf);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(window) {
        Ok(httparse::Status::Complete(used)) => Ok(Some((build_request(&parsed)?, used))),
        Ok(httparse::Status::Partial) if buf.len() >= max_header_bytes => {
            Err(HandshakeError::HeadersTooLarge)
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HandshakeError::HeadersTooLarge),
        Err(_) => Err(HandshakeError::Malformed),
    }
}

/// Copies a complete `httparse` head into an owned [`Request`].
fn build_request(parsed: &httparse::Request<'_, '_>) -> Result<Request, HandshakeError> {
    let (Some(method), Some(target), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Err(HandshakeError::Malformed);
    };
    let headers = &*parsed.headers;
    let text_len =
        method.len() + target.len() + headers.iter().map(|h| h.name.len()).sum::<usize>();
    let values_len = headers.iter().map(|h| h.value.len()).sum::<usize>();
    // The head is bounded by `max_header_bytes`; offsets are stored as u32.
    let offset = |n: usize| u32::try_from(n).map_err(|_| HandshakeError::HeadersTooLarge);
    offset(text_len.max(values_len))?;

    let mut text = String::with_capacity(text_len);
    let mut values = Vec::with_capacity(values_len);
    let mut spans = Vec::with_capacity(headers.len());
    text.push_str(method);
    let method_end = offset(text.len())?;
    text.push_str(target);
    let target_end = offset(text.len())?;
    let path_end = match target.find('?') {
        Some(i) => offset(method.len() + i)?,
        None => target_end,
    };
    for header in headers {
        text.push_str(header.name);
        values.extend_from_slice(header.value);
        spans.push((offset(text.len())?, offset(values.len())?));
    }
    Ok(Request {
        text: text.into_boxed_str(),
        values: values.into_boxed_slice(),
        headers: spans.into_boxed_slice(),
        method_end,
        path_end,
        target_end,
        version,
    })
}

/// Checks the §4.2.1 rules for a WebSocket upgrade: GET, HTTP/1.1, Host, Upgrade,
/// Connection, Sec-WebSocket-Key, Sec-WebSocket-Version: 13.
///
/// The checks run in that order (the order of §4.2.1) and the first failure is returned.
/// The origin is not checked here: see [`origin_matches_host`].
///
/// # Errors
///
/// The [`HandshakeError`] of the first rule broken; [`HandshakeError::status`] gives the
/// answer (400, or 426 for a missing or unsupported version).
pub fn validate_upgrade(req: &Request) -> Result<(), HandshakeError> {
    // §4.2.1 1: "An HTTP/1.1 or higher GET request".
    if req.method() != "GET" {
        return Err(HandshakeError::NotGet);
    }
    if req.version() < 1 {
        return Err(HandshakeError::OldHttpVersion);
    }
    // §4.2.1 2: "A |Host| header field containing the server's authority."
    if req.header_bytes("Host").is_none() {
        return Err(HandshakeError::MissingHost);
    }
    // §4.2.1 3: "An |Upgrade| header field containing the value "websocket", treated as an
    // ASCII case-insensitive value."
    if !req.has_token("Upgrade", b"websocket") {
        return Err(HandshakeError::MissingUpgrade);
    }
    // §4.2.1 4: "A |Connection| header field that includes the token "Upgrade", treated as
    // an ASCII case-insensitive value."
    if !req.has_token("Connection", b"upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    // §4.2.1 5: "A |Sec-WebSocket-Key| header field with a base64-encoded value that, when
    // decoded, is 16 bytes in length."
    if !req.header_bytes("Sec-WebSocket-Key").is_some_and(is_valid_key) {
        return Err(HandshakeError::InvalidKey);
    }
    // §4.2.1 6: "A |Sec-WebSocket-Version| header field, with a value of 13." §4.4: otherwise
    // answer with an error (426) and the versions we support.
    let version = req.header_bytes("Sec-WebSocket-Version").map(trim_ows);
    if version != Some(b"13".as_slice()) {
        return Err(HandshakeError::UnsupportedVersion);
    }
    Ok(())
}

/// Whether a `Sec-WebSocket-Key` value is standard, padded base64 of exactly 16 bytes.
fn is_valid_key(value: &[u8]) -> bool {
    let key = trim_ows(value);
    // 16 bytes are 24 base64 characters ending in `==`; checking the length first keeps
    // the decode bounded and the output buffer fixed.
    if key.len() != 24 {
        return false;
    }
    let mut decoded = [0u8; 24];
    matches!(STANDARD.decode_slice(key, &mut decoded), Ok(16))
}

/// The default origin rule: no `Origin`, or an Origin whose `host[:port]` equals `Host`.
///
/// The Origin (`scheme://host[:port]`, scheme `http`, `https`, `ws` or `wss`) and the
/// `Host` header are compared by host (ASCII case-insensitive; IPv6 literals by address)
/// and by port, a missing port meaning the Origin scheme's default (80 or 443). The
/// `null` origin, an unknown scheme and anything unparseable do not match.
pub fn origin_matches_host(req: &Request) -> bool {
    let Some(origin) = req.header_bytes("Origin") else {
        return true;
    };
    let Some(host) = req.header_bytes("Host") else {
        return false;
    };
    let (Ok(origin), Ok(host)) = (std::str::from_utf8(origin), std::str::from_utf8(host)) else {
        return false;
    };
    let origin = origin.trim_matches([' ', '\t']);
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("ws") {
        80
    } else if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
        443
    } else {
        return false;
    };
    let (Some((origin_host, origin_port)), Some((host_host, host_port))) =
        (split_authority(authority), split_authority(host.trim_matches([' ', '\t'])))
    else {
        return false;
    };
    let origin_port = origin_port.unwrap_or(default_port);
    let host_port = host_port.unwrap_or(default_port);
    origin_port == host_port && same_host(origin_host, host_host)
}

/// Splits `host[:port]` (or `[v6]:port`) into host and port, or `None` if malformed.
///
/// The host keeps its brackets. No path, userinfo or whitespace is allowed.
fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']')?;
        let (host, rest) = authority.split_at(close + 1);
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let bad = |c: char| c.is_whitespace() || c.is_control() || "/?#@[]\\".contains(c);
    let inner = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if inner.is_empty() || inner.contains(bad) {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse().ok()?)
        }
        Some(_) => return None,
    };
    Some((host, port))
}

/// Host equality: IPv6 literals by address, everything else ASCII case-insensitively.
fn same_host(a: &str, b: &str) -> bool {
    let v6 = |h: &str| {
        h.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .and_then(|h| h.parse::<Ipv6Addr>().ok())
    };
    match (v6(a), v6(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a.eq_ignore_ascii_case(b),
    }
}

/// The server's first preference the client also offered.
///
/// `supported` is in the server's order of preference; the match is exact (subprotocol
/// names are case-sensitive, RFC 6455 §11.3.4).
pub fn select_protocol<'a>(req: &Request, supported: &'a [String]) -> Option<&'a str> {
    supported
        .iter()
        .map(String::as_str)
        .find(|wanted| req.protocols().any(|offered| offered == *wanted))
}

/// `Sec-WebSocket-Accept` for a key (§4.2.2: base64(SHA-1(key + GUID))).
///
/// `key` is the header value as sent (surrounding spaces excluded), not its decoded bytes.
pub fn accept_key(key: &[u8]) -> String {
    let encoded = accept_key_bytes(key);
    // Base64 output is ASCII.
    String::from_utf8_lossy(&encoded).into_owned()
}

/// [`accept_key`] into a fixed buffer, so the 101 response needs no extra allocation.
fn accept_key_bytes(key: &[u8]) -> [u8; ACCEPT_LEN] {
    let mut sha1 = sha1_smol::Sha1::new();
    sha1.update(key);
    sha1.update(WS_GUID);
    let mut out = [0u8; ACCEPT_LEN];
    // 20 bytes encode to exactly 28 characters, so this cannot fail.
    let _ = STANDARD.encode_slice(sha1.digest().bytes(), &mut out);
    out
}

/// The 101 response for `req`, with the chosen subprotocol and extensions header value.
///
/// `req` should have passed [`validate_upgrade`]; its `Sec-WebSocket-Key` is hashed as
/// sent. `protocol` and `extensions` are written as given: they come from the server
/// (e.g. [`select_protocol`]) and must be valid header values. The response is built in
/// one allocation of the exact size.
pub fn accept_response(req: &Request, protocol: Option<&str>, extensions: Option<&str>) -> Vec<u8> {
    const HEAD: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Accept: ";
    const PROTOCOL: &[u8] = b"Sec-WebSocket-Protocol: ";
    const EXTENSIONS: &[u8] = b"Sec-WebSocket-Extensions: ";
    let key = req.header_bytes("Sec-WebSocket-Key").map_or(&[][..], trim_ows);
    let accept = accept_key_bytes(key);
    let len = HEAD.len()
        + ACCEPT_LEN
        + 2
        + protocol.map_or(0, |p| PROTOCOL.len() + p.len() + 2)
        + extensions.map_or(0, |e| EXTENSIONS.len() + e.len() + 2)
        + 2;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(HEAD);
    out.extend_from_slice(&accept);
    out.extend_from_slice(b"\r\n");
    if let Some(protocol) = protocol {
        out.extend_from_slice(PROTOCOL);
        out.extend_from_slice(protocol.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(extensions) = extensions {
        out.extend_from_slice(EXTENSIONS);
        out.extend_from_slice(extensions.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    debug_assert_eq!(out.len(), len);
    out
}

/// An error response with `Connection: close` and an empty body; 426 carries
/// `Sec-WebSocket-Version: 13`. `status` is any 4xx/5xx.
///
/// The reason phrase is the standard one for 400, 403, 404, 405, 408, 413, 426, 429, 431,
/// 500, 501 and 503, and `Error` for any other status.
pub fn error_response(status: u16) -> Vec<u8> {
    let version = if status == 426 { "Sec-WebSocket-Version: 13\r\n" } else { "" };
    format!(
        "HTTP/1.1 {status} {}\r\nConnection: close\r\nContent-Length: 0\r\n{version}\r\n",
        reason_phrase(status)
    )
    .into_bytes()
}

/// The reason phrase for a status code, `Error` when unknown.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Trims optional whitespace (spaces and tabs, RFC 9110 §5.6.3) from both ends.
fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !is_ows(b)).map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 8192;

    /// The client handshake of RFC 6455 §1.3.
    const RFC_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
        Host: server.example.com\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\n\
        Sec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    /// Parses a head that must be complete and well-formed.
    fn parse(bytes: &[u8]) -> Request {
        match parse_request(bytes, MAX) {
            Ok(Some((req, used))) => {
                assert_eq!(used, bytes.len());
                req
            }
            other => panic!("expected a complete head, got {other:?}"),
        }
    }

    /// A valid upgrade request with `extra` header lines (each ending in `\r\n`) appended.
    fn upgrade_with(extra: &str) -> Vec<u8> {
        format!(
            "GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
        .into_bytes()
    }

    /// A request from a request line and header lines, each ending in `\r\n`.
    fn request(line: &str, headers: &str) -> Vec<u8> {
        format!("{line}\r\n{headers}\r\n").into_bytes()
    }

    const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    const V13: &str = "Sec-WebSocket-Version: 13\r\n";
    const BASE: &str = "Host: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";

    fn validate(bytes: &[u8]) -> Result<(), HandshakeError> {
        validate_upgrade(&parse(bytes))
    }

    #[test]
    fn rfc_example_request() {
        let req = parse(RFC_REQUEST);
        assert_eq!(req.method(), "GET");
        assert_eq!(req.path(), "/chat");
        assert_eq!(req.query(), "");
        assert_eq!(req.version(), 1);
        assert_eq!(req.header("host"), Some("server.example.com"));
        assert_eq!(req.header("Origin"), Some("http://example.com"));
        assert_eq!(req.header("X-Absent"), None);
        assert!(req.is_upgrade());
        assert_eq!(req.protocols().collect::<Vec<_>>(), ["chat", "superchat"]);
        assert_eq!(req.headers().count(), 7);
        assert_eq!(
            req.headers().nth(3),
            Some(("Sec-WebSocket-Key", &b"dGhlIHNhbXBsZSBub25jZQ=="[..]))
        );
        assert_eq!(validate_upgrade(&req), Ok(()));
        // The Origin is example.com, the Host server.example.com.
        assert!(!origin_matches_host(&req));

        let response = accept_response(&req, Some("chat"), None);
        assert_eq!(
            response,
            b"HTTP/1.1 101 Switching Protocols\r\n\
              Upgrade: websocket\r\n\
              Connection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
              Sec-WebSocket-Protocol: chat\r\n\r\n"
        );
        assert_eq!(response.capacity(), response.len());
    }

    #[test]
    fn accept_key_rfc_vector_and_tungstenite() {
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        for key in [&b""[..], b"x", b"AAAAAAAAAAAAAAAAAAAAAA==", b"/+/+/+/+/+/+/+/+/+/+/w=="] {
            assert_eq!(accept_key(key), tungstenite::handshake::derive_accept_key(key));
        }
    }

    #[test]
    fn accept_response_exact_bytes() {
        let req = parse(&upgrade_with(""));
        assert_eq!(
            accept_response(&req, None, None),
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
        let response = accept_response(
            &req,
            Some("v2.json"),
            Some("permessage-deflate; server_no_context_takeover"),
        );
        assert_eq!(
            response,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
              Sec-WebSocket-Protocol: v2.json\r\n\
              Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n"
        );
        assert_eq!(response.capacity(), response.len());
        // A key with surrounding spaces is hashed without them.
        let spaced =
            request("GET / HTTP/1.1", "Sec-WebSocket-Key: \t dGhlIHNhbXBsZSBub25jZQ== \t\r\n");
        let response = accept_response(&parse(&spaced), None, None);
        let text = String::from_utf8(response).unwrap();
        assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    }

    #[test]
    fn every_split_point() {
        let whole = parse(RFC_REQUEST);
        for split in 0..RFC_REQUEST.len() {
            assert_eq!(parse_request(&RFC_REQUEST[..split], MAX), Ok(None), "split at {split}");
        }
        // Bytes after the head (a first frame, pipelined) are not consumed.
        let mut more = RFC_REQUEST.to_vec();
        more.extend_from_slice(&[0x81, 0x85, 1, 2, 3, 4]);
        assert_eq!(parse_request(&more, MAX), Ok(Some((whole, RFC_REQUEST.len()))));
    }

    #[test]
    fn status_of_every_error() {
        use HandshakeError::*;
        let cases = [
            (HeadersTooLarge, 431),
            (Malformed, 400),
            (NotGet, 400),
            (OldHttpVersion, 400),
            (MissingHost, 400),
            (MissingUpgrade, 400),
            (MissingConnectionUpgrade, 400),
            (InvalidKey, 400),
            (UnsupportedVersion, 426),
            (OriginRefused, 403),
        ];
        for (error, status) in cases {
            assert_eq!(error.status(), status, "{error}");
            assert_eq!(error.response(), error_response(status));
        }
    }

    #[test]
    fn validation_errors_in_order() {
        use HandshakeError::*;
        let all = format!("{BASE}{KEY}{V13}");
        assert_eq!(validate(&request("GET / HTTP/1.1", &all)), Ok(()));
        assert_eq!(validate(&request("POST / HTTP/1.1", &all)), Err(NotGet));
        assert_eq!(validate(&request("get / HTTP/1.1", &all)), Err(NotGet));
        assert_eq!(validate(&request("GET / HTTP/1.0", &all)), Err(OldHttpVersion));
        // A POST over HTTP/1.0 fails on the method first.
        assert_eq!(validate(&request("POST / HTTP/1.0", "")), Err(NotGet));

        let without = |line: &str| all.replace(line, "");
        let line = "Host: example.com\r\n";
        assert_eq!(validate(&request("GET / HTTP/1.1", &without(line))), Err(MissingHost));
        let line = "Upgrade: websocket\r\n";
        assert_eq!(validate(&request("GET / HTTP/1.1", &without(line))), Err(MissingUpgrade));
        let h2c = all.replace(line, "Upgrade: h2c\r\n");
        assert_eq!(validate(&request("GET / HTTP/1.1", &h2c)), Err(MissingUpgrade));
        let line = "Connection: Upgrade\r\n";
        assert_eq!(
            validate(&request("GET / HTTP/1.1", &without(line))),
            Err(MissingConnectionUpgrade)
        );
        let keep_alive = all.replace(line, "Connection: keep-alive\r\n");
        assert_eq!(
            validate(&request("GET / HTTP/1.1", &keep_alive)),
            Err(MissingConnectionUpgrade)
        );
        // A token is matched whole, not as a substring.
        let upgrades = all.replace(line, "Connection: upgrades\r\n");
        assert_eq!(validate(&request("GET / HTTP/1.1", &upgrades)), Err(MissingConnectionUpgrade));

        // Key and version: a missing key with version 13 is 400, a bad version with a good
        // key is 426, and so is a missing version.
        assert_eq!(validate(&request("GET / HTTP/1.1", &without(KEY))), Err(InvalidKey));
        assert_eq!(InvalidKey.status(), 400);
        let v8 = all.replace(V13, "Sec-WebSocket-Version: 8\r\n");
        assert_eq!(validate(&request("GET / HTTP/1.1", &v8)), Err(UnsupportedVersion));
        assert_eq!(validate(&request("GET / HTTP/1.1", &without(V13))), Err(UnsupportedVersion));
        let v13_8 = all.replace(V13, "Sec-WebSocket-Version: 13, 8\r\n");
        assert_eq!(validate(&request("GET / HTTP/1.1", &v13_8)), Err(UnsupportedVersion));
    }

    #[test]
    fn invalid_keys() {
        for key in [
            "",
            "dGhlIHNhbXBsZSBub25jZQ",    // unpadded
            "dGhlIHNhbXBsZSBub25jZQ=",   // short padding
            "dGhlIHNhbXBsZSBub25jZQ===", // 25 characters
            "dGhlIHNhbXBsZSBub25j",      // 15 bytes
            "dGhlIHNhbXBsZSBub25jZXM=",  // 17 bytes
            "dGhlIHNhbXBsZSBub25jZ-==",  // URL-safe alphabet
            "dGhlIHNhbXBsZSBub2 5jZQ==", // inner space
            "!!!!!!!!!!!!!!!!!!!!!!==",
        ] {
            let bytes =
                request("GET / HTTP/1.1", &format!("{BASE}Sec-WebSocket-Key: {key}\r\n{V13}"));
            assert_eq!(validate(&bytes), Err(HandshakeError::InvalidKey), "{key:?}");
        }
        let valid = request(
            "GET / HTTP/1.1",
            &format!("{BASE}Sec-WebSocket-Key:  AAAAAAAAAAAAAAAAAAAAAA==  \r\n{V13}"),
        );
        assert_eq!(validate(&valid), Ok(()));
    }

    #[test]
    fn header_names_are_case_insensitive() {
        let bytes = request(
            "GET /ws HTTP/1.1",
            "hOsT: example.com\r\nUPGRADE: WebSocket\r\nconnection: UPGRADE\r\n\
             sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nSEC-WEBSOCKET-VERSION: 13\r\n\
             sec-WEBSOCKET-protocol: chat\r\n",
        );
        let req = parse(&bytes);
        assert_eq!(req.header("Host"), Some("example.com"));
        assert_eq!(req.header("HOST"), Some("example.com"));
        assert!(req.is_upgrade());
        assert_eq!(req.protocols().collect::<Vec<_>>(), ["chat"]);
        assert_eq!(validate_upgrade(&req), Ok(()));
        // Names are kept as sent.
        assert_eq!(req.headers().next(), Some(("hOsT", &b"example.com"[..])));
    }

    #[test]
    fn token_lists_in_connection_and_upgrade() {
        let keep_alive = request(
            "GET / HTTP/1.1",
            &format!(
                "Host: h\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n{KEY}{V13}"
            ),
        );
        assert_eq!(validate(&keep_alive), Ok(()));
        let split = request(
            "GET / HTTP/1.1",
            &format!(
                "Host: h\r\nUpgrade: h2c,  WebSocket \r\nConnection: keep-alive\r\n\
                 Connection: ,upgrade\t\r\n{KEY}{V13}"
            ),
        );
        let req = parse(&split);
        assert!(req.is_upgrade());
        assert_eq!(validate_upgrade(&req), Ok(()));
        assert!(!parse(&request("GET / HTTP/1.1", "Upgrade: websockets\r\n")).is_upgrade());
        assert!(!parse(&request("GET / HTTP/1.1", "")).is_upgrade());
    }

    #[test]
    fn protocols_across_headers() {
        let req = parse(&upgrade_with(
            "Sec-WebSocket-Protocol: chat, , superchat,\r\n\
             X-Other: a, b\r\n\
             Sec-WebSocket-Protocol:  v2.json \t, v1.json\r\n\
             Sec-WebSocket-Protocol:\r\n",
        ));
        assert_eq!(
            req.protocols().collect::<Vec<_>>(),
            ["chat", "superchat", "v2.json", "v1.json"]
        );
        let supported = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(select_protocol(&req, &supported(&["v1.json", "chat"])), Some("v1.json"));
        assert_eq!(select_protocol(&req, &supported(&["mqtt", "superchat"])), Some("superchat"));
        assert_eq!(select_protocol(&req, &supported(&["CHAT", "mqtt"])), None);
        assert_eq!(select_protocol(&req, &[]), None);
        assert_eq!(select_protocol(&parse(&upgrade_with("")), &supported(&["chat"])), None);
    }

    #[test]
    fn origins() {
        let origin = |host: &str, origin: Option<&str>| {
            let mut headers = format!("Host: {host}\r\n");
            if let Some(origin) = origin {
                headers.push_str(&format!("Origin: {origin}\r\n"));
            }
            origin_matches_host(&parse(&request("GET / HTTP/1.1", &headers)))
        };
        // None.
        assert!(origin("example.com", None));
        // Same host, case-insensitive, explicit ports.
        assert!(origin("example.com", Some("http://example.com")));
        assert!(origin("Example.COM", Some("HTTPS://example.com")));
        assert!(origin("example.com:8080", Some("http://example.com:8080")));
        // Same host with the explicit default port on either side.
        assert!(origin("example.com", Some("http://example.com:80")));
        assert!(origin("example.com:80", Some("http://example.com")));
        assert!(origin("example.com", Some("https://example.com:443")));
        assert!(origin("example.com:443", Some("wss://example.com")));
        assert!(origin("example.com", Some("ws://example.com")));
        // Different host.
        assert!(!origin("example.com", Some("http://evil.com")));
        assert!(!origin("example.com", Some("http://example.com.evil.com")));
        // Different port.
        assert!(!origin("example.com:8080", Some("http://example.com:8081")));
        assert!(!origin("example.com:8080", Some("http://example.com")));
        assert!(!origin("example.com", Some("http://example.com:8080")));
        assert!(!origin("example.com:443", Some("http://example.com")));
        assert!(!origin("example.com", Some("https://example.com:80")));
        // `null` and the unparseable.
        assert!(!origin("example.com", Some("null")));
        assert!(!origin("example.com", Some("")));
        assert!(!origin("example.com", Some("example.com")));
        assert!(!origin("example.com", Some("ftp://example.com")));
        assert!(!origin("example.com", Some("http://example.com/")));
        assert!(!origin("example.com", Some("http://user@example.com")));
        assert!(!origin("example.com", Some("http://example.com:")));
        assert!(!origin("example.com", Some("http://example.com:99999")));
        assert!(!origin("example.com", Some("http://example.com:+80")));
        assert!(!origin("example.com", Some("http://")));
        assert!(!origin("", Some("http://example.com")));
        assert!(!origin("example.com:x", Some("http://example.com")));
        // IPv6 literals.
        assert!(origin("[::1]:9001", Some("http://[::1]:9001")));
        assert!(origin("[::1]", Some("ws://[::1]")));
        assert!(origin("[::1]", Some("http://[::1]:80")));
        assert!(origin("[0:0::1]:9001", Some("http://[::1]:9001")));
        assert!(origin("[FE80::1]:9001", Some("http://[fe80::1]:9001")));
        assert!(!origin("[::1]:9001", Some("http://[::1]:9002")));
        assert!(!origin("[::1]:9001", Some("http://[::2]:9001")));
        assert!(!origin("[::1]:9001", Some("http://[::1]9001")));
        assert!(!origin("[::1]:9001", Some("http://[::1")));
        assert!(!origin("[::1]:9001", Some("http://[]:9001")));
        assert!(!origin("[::1]:9001", Some("http://::1:9001")));
        // The Origin check without a Host header.
        let no_host = request("GET / HTTP/1.1", "Origin: http://example.com\r\n");
        assert!(!origin_matches_host(&parse(&no_host)));
    }

    #[test]
    fn headers_too_large() {
        // 9000 bytes, incomplete.
        let mut head = b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Big: ".to_vec();
        head.resize(9000, b'a');
        assert_eq!(parse_request(&head, MAX), Err(HandshakeError::HeadersTooLarge));
        // Under the limit it is only incomplete.
        assert_eq!(parse_request(&head[..MAX - 1], MAX), Ok(None));
        assert_eq!(parse_request(&head[..MAX], MAX), Err(HandshakeError::HeadersTooLarge));
        // 9000 bytes, complete.
        head.truncate(9000 - 4);
        head.extend_from_slice(b"\r\n\r\n");
        assert_eq!(head.len(), 9000);
        assert_eq!(parse_request(&head, MAX), Err(HandshakeError::HeadersTooLarge));
        assert!(matches!(parse_request(&head, 9000), Ok(Some((_, 9000)))));
        // A head of exactly the limit is accepted.
        assert!(matches!(parse_request(&head, 9000), Ok(Some(_))));
        assert_eq!(parse_request(&head, 8999), Err(HandshakeError::HeadersTooLarge));
        // Too many headers.
        let many = |n: usize| {
            let headers: String = (0..n).map(|i| format!("X-{i}: v\r\n")).collect();
            request("GET / HTTP/1.1", &headers)
        };
        assert!(matches!(parse_request(&many(64), MAX), Ok(Some(_))));
        assert_eq!(parse_request(&many(65), MAX), Err(HandshakeError::HeadersTooLarge));
        // Degenerate limits.
        assert_eq!(parse_request(b"", MAX), Ok(None));
        assert_eq!(parse_request(b"", 0), Err(HandshakeError::HeadersTooLarge));
    }

    #[test]
    fn malformed() {
        for bytes in [
            &b"\x00\x01\x02\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
            b"GET / HTTP/1.1\r\n: empty\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / FTP/1.1\r\n\r\n",
            b"GET  HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
            b"GET /\x7f HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
        ] {
            assert_eq!(
                parse_request(bytes, MAX),
                Err(HandshakeError::Malformed),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        // Errors are reported before the head is complete.
        assert_eq!(parse_request(b"\x00", MAX), Err(HandshakeError::Malformed));
    }

    #[test]
    fn path_query_and_raw_values() {
        let req = parse(
            b"GET /chat/room?id=1&x=a?b HTTP/1.1\r\n\
              X-Bin: a\xffb\r\nX-Bin: text\r\nX-Empty:\r\n\r\n",
        );
        assert_eq!(req.path(), "/chat/room");
        assert_eq!(req.query(), "id=1&x=a?b");
        // First match only, and only if UTF-8.
        assert_eq!(req.header("x-bin"), None);
        assert_eq!(
            req.headers().map(|(_, v)| v).collect::<Vec<_>>(),
            [&b"a\xffb"[..], b"text", b""]
        );
        assert_eq!(req.header("X-Empty"), Some(""));

        let req = parse(&request("GET /? HTTP/1.1", ""));
        assert_eq!((req.path(), req.query()), ("/", ""));
        let req = parse(&request("OPTIONS * HTTP/1.1", ""));
        assert_eq!((req.method(), req.path(), req.query()), ("OPTIONS", "*", ""));
        assert_eq!(req.headers().count(), 0);
        let debug = format!("{req:?}");
        assert!(debug.contains("OPTIONS"), "{debug}");
    }

    #[test]
    fn request_is_compact() {
        assert!(std::mem::size_of::<Request>() <= 64);
    }

    #[test]
    fn error_responses_exact_bytes() {
        assert_eq!(
            error_response(400),
            b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        );
        assert_eq!(
            error_response(426),
            b"HTTP/1.1 426 Upgrade Required\r\nConnection: close\r\nContent-Length: 0\r\n\
              Sec-WebSocket-Version: 13\r\n\r\n"
        );
        assert_eq!(
            error_response(431),
            b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\
              Content-Length: 0\r\n\r\n"
        );
        assert_eq!(
            error_response(418),
            b"HTTP/1.1 418 Error\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        );
        for (status, reason) in [
            (403, "Forbidden"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (500, "Internal Server Error"),
            (503, "Service Unavailable"),
        ] {
            let expected = format!(
                "HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            );
            assert_eq!(error_response(status), expected.as_bytes());
        }
    }

    /// Mutated and truncated requests never panic, and a parsed head always validates to
    /// some answer.
    #[test]
    fn no_panic_on_mutations() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let base = upgrade_with("Origin: http://[::1]:80\r\nSec-WebSocket-Protocol: a, b\r\n");
        let interesting = b"\r\n:, []?\x00\xff\t/@";
        for _ in 0..20_000 {
            let mut bytes = base.clone();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % bytes.len();
                match next() % 3 {
                    0 => bytes[at] = interesting[(next() as usize) % interesting.len()],
                    1 => bytes[at] = next() as u8,
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            let max = (next() as usize) % (base.len() + 16);
            if let Ok(Some((req, used))) = parse_request(&bytes, max) {
                assert!(used <= bytes.len() && used <= max);
                let _ = validate_upgrade(&req);
                let _ = origin_matches_host(&req);
                let _ = select_protocol(&req, &["b".to_string()]);
                let _ = accept_response(&req, Some("b"), None);
                let _ = (req.path(), req.query(), req.headers().count(), format!("{req:?}"));
            }
        }
    }
}

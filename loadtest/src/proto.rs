//! The generator's thin layer over `wsloop::protocol`: client frames out, server frames in,
//! and the client side of the opening handshake.
//!
//! No WebSocket codec lives here: frame headers, masking, message decoding and the accept
//! key all come from `wsloop::protocol`. This module only decides what the client sends
//! (masked frames, the upgrade request); the server's 101 is parsed and checked by the
//! library's client role (`wsloop::protocol::client`), the same code a wsloop client
//! connection runs.

use std::fmt;

use base64::Engine as _;
use wsloop::protocol::client::{self, Offer, ResponseError};
use wsloop::protocol::frame::{FrameHeader, MAX_HEADER_LEN, OpCode, apply_mask};
use wsloop::protocol::message::{Decoder, DecoderLimits, Role};

use crate::session::Session;
use crate::target::Target;

/// Largest response head accepted from a server.
pub const MAX_RESPONSE_HEAD: usize = 8 * 1024;

/// The permessage-deflate offer of the upgrade request.
const DEFLATE_OFFER: &str = "permessage-deflate; client_max_window_bits";

/// Appends one masked, unfragmented client frame carrying `payload` to `out`.
pub fn push_frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8], mask: [u8; 4]) {
    let start = push_header(out, opcode, payload.len(), mask);
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask, 0);
}

/// Appends a masked frame whose payload is `template` with `patch` applied before masking
/// (used to write a stamp into a copy of a payload template without a second copy).
pub fn push_frame_with(
    out: &mut Vec<u8>,
    opcode: OpCode,
    template: &[u8],
    mask: [u8; 4],
    patch: impl FnOnce(&mut [u8]),
) {
    let start = push_header(out, opcode, template.len(), mask);
    out.extend_from_slice(template);
    let payload = &mut out[start..];
    patch(payload);
    apply_mask(payload, mask, 0);
}

/// Appends a close frame with `code` (masked) to `out`.
pub fn push_close(out: &mut Vec<u8>, code: u16, mask: [u8; 4]) {
    push_frame(out, OpCode::Close, &code.to_be_bytes(), mask);
}

fn push_header(out: &mut Vec<u8>, opcode: OpCode, len: usize, mask: [u8; 4]) -> usize {
    let header =
        FrameHeader { fin: true, rsv1: false, opcode, mask: Some(mask), payload_len: len as u64 };
    let mut buf = [0u8; MAX_HEADER_LEN];
    let used = header.encode(&mut buf);
    out.reserve(used + len);
    out.extend_from_slice(&buf[..used]);
    out.len()
}

/// A decoder for frames a server sends (unmasked), bounded by `max_message` bytes.
pub fn client_decoder(max_message: usize) -> Decoder {
    Decoder::new(
        Role::Client,
        DecoderLimits { max_message_size: max_message, max_frame_size: max_message },
    )
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64 (24 characters).
pub fn handshake_key(random: [u8; 16]) -> [u8; 24] {
    let mut key = [0u8; 24];
    let n = base64::engine::general_purpose::STANDARD.encode_slice(random, &mut key).unwrap_or(0);
    debug_assert_eq!(n, 24, "16 bytes are 24 base64 characters");
    key
}

/// The HTTP/1.1 upgrade request for `target`, offering permessage-deflate when `deflate`,
/// with the session's extra headers and subprotocols.
pub fn upgrade_request(
    target: &Target,
    key: &[u8; 24],
    deflate: bool,
    session: &Session,
) -> Vec<u8> {
    let mut req = Vec::with_capacity(256);
    req.extend_from_slice(b"GET ");
    req.extend_from_slice(target.path.as_bytes());
    req.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    req.extend_from_slice(target.host.as_bytes());
    req.extend_from_slice(
        b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ",
    );
    req.extend_from_slice(key);
    if deflate {
        req.extend_from_slice(b"\r\nSec-WebSocket-Extensions: ");
        req.extend_from_slice(DEFLATE_OFFER.as_bytes());
    }
    req.extend_from_slice(b"\r\nUser-Agent: wsloop-loadtest\r\n");
    session.write_headers(&mut req);
    req.extend_from_slice(b"\r\n");
    req
}

/// What the server agreed to in its 101.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upgraded {
    /// The server accepted permessage-deflate.
    pub deflate: bool,
}

/// Why a server's answer to the upgrade request is not a valid 101 (RFC 6455 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// A status other than 101.
    Status(u16),
    /// Not parseable as an HTTP/1.1 response head.
    Malformed,
    /// The head grew past [`MAX_RESPONSE_HEAD`].
    TooLarge,
    /// `Upgrade: websocket` or `Connection: upgrade` missing.
    MissingUpgrade,
    /// `Sec-WebSocket-Accept` missing or wrong for our key.
    BadAccept,
    /// An extension we did not offer.
    UnexpectedExtension,
    /// A subprotocol we did not offer.
    UnexpectedSubprotocol,
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeFailure::Status(s) => write!(f, "HTTP status {s}"),
            HandshakeFailure::Malformed => f.write_str("malformed HTTP response"),
            HandshakeFailure::TooLarge => f.write_str("response head too large"),
            HandshakeFailure::MissingUpgrade => f.write_str("no Upgrade/Connection headers"),
            HandshakeFailure::BadAccept => f.write_str("wrong Sec-WebSocket-Accept"),
            HandshakeFailure::UnexpectedExtension => f.write_str("extension not offered"),
            HandshakeFailure::UnexpectedSubprotocol => f.write_str("subprotocol not offered"),
        }
    }
}

impl std::error::Error for HandshakeFailure {}

/// Checks the server's answer at the start of `buf`.
///
/// `Ok(None)`: the head is not complete yet. `Ok(Some((upgraded, used)))`: a valid 101 of
/// `used` bytes; what follows in `buf` is already frames.
///
/// # Errors
/// [`HandshakeFailure`] when the answer is complete and not a valid 101 for `key`.
pub fn check_response(
    buf: &[u8],
    key: &[u8; 24],
    offered_deflate: bool,
    session: &Session,
) -> Result<Option<(Upgraded, usize)>, HandshakeFailure> {
    // The library's client role parses and checks the answer (RFC 6455 §4.1).
    let (response, used) = match client::parse_response(buf, MAX_RESPONSE_HEAD) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return Ok(None),
        Err(e) => return Err(HandshakeFailure::from(e)),
    };
    let protocols: Vec<&str> = session.subprotocols.iter().map(String::as_str).collect();
    let offer = Offer {
        protocols: &protocols,
        extensions: offered_deflate.then_some(DEFLATE_OFFER),
        ..Offer::default()
    };
    let agreed = client::check_response(&response, key, &offer)?;
    Ok(Some((Upgraded { deflate: agreed.extensions.is_some() }, used)))
}

impl From<ResponseError> for HandshakeFailure {
    fn from(e: ResponseError) -> HandshakeFailure {
        match e {
            ResponseError::Status(s) => HandshakeFailure::Status(s),
            ResponseError::Malformed => HandshakeFailure::Malformed,
            ResponseError::HeadersTooLarge => HandshakeFailure::TooLarge,
            ResponseError::MissingUpgrade | ResponseError::MissingConnectionUpgrade => {
                HandshakeFailure::MissingUpgrade
            }
            ResponseError::BadAccept => HandshakeFailure::BadAccept,
            ResponseError::UnofferedExtension => HandshakeFailure::UnexpectedExtension,
            ResponseError::UnofferedProtocol => HandshakeFailure::UnexpectedSubprotocol,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsloop::protocol::handshake::accept_key;

    fn target() -> Target {
        Target::parse("ws://127.0.0.1:9/chat").expect("valid")
    }

    #[test]
    fn request_shape() {
        let key = handshake_key([7; 16]);
        let session = Session::new(&["X-Token: t".into()], &["chat".into()], &[]).expect("ok");
        let req = upgrade_request(&target(), &key, true, &session);
        let text = String::from_utf8(req).expect("ascii");
        assert!(text.starts_with("GET /chat HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"));
        assert!(text.contains("Sec-WebSocket-Key: BwcHBwcHBwcHBwcHBwcHBw==\r\n"));
        assert!(text.contains("permessage-deflate"));
        assert!(text.contains("\r\nX-Token: t\r\nSec-WebSocket-Protocol: chat\r\n\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn refusals_are_classified() {
        let key = handshake_key([1; 16]);
        let none = Session::default();
        assert_eq!(check_response(b"HTTP/1.1 101 Swi", &key, false, &none), Ok(None));
        assert_eq!(
            check_response(b"HTTP/1.1 404 Not Found\r\n\r\n", &key, false, &none),
            Err(HandshakeFailure::Status(404))
        );
        assert_eq!(
            check_response(b"NOPE\r\n\r\n", &key, false, &none),
            Err(HandshakeFailure::Malformed)
        );
        let huge = vec![b'a'; MAX_RESPONSE_HEAD + 1];
        let mut big = b"HTTP/1.1 101 OK\r\nX: ".to_vec();
        big.extend_from_slice(&huge);
        assert_eq!(check_response(&big, &key, false, &none), Err(HandshakeFailure::TooLarge));
        let ok = format!(
            "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
            accept_key(&key)
        );
        assert_eq!(
            check_response(ok.as_bytes(), &key, false, &none),
            Err(HandshakeFailure::UnexpectedSubprotocol)
        );
        let mqtt = Session::new(&[], &["mqtt".into()], &[]).expect("ok");
        assert!(matches!(check_response(ok.as_bytes(), &key, false, &mqtt), Ok(Some(_))));
    }
}

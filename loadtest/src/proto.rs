//! The generator's thin layer over `wsloop::protocol`: client frames out, server frames in,
//! and the client side of the opening handshake.
//!
//! No WebSocket codec lives here: frame headers, masking, message decoding, close
//! payloads, the upgrade request and the accept key all come from `wsloop::protocol`. The
//! request is written and the server's 101 is parsed and checked by the library's client
//! role (`wsloop::protocol::client`), the same code a wsloop client connection runs. This
//! module only decides what the client sends and when.

use std::fmt;

use wsloop::protocol::CloseCode;
use wsloop::protocol::client::{self, Offer, ResponseError};
use wsloop::protocol::deflate::Agreed;
use wsloop::protocol::frame::{
    FrameHeader, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, OpCode, apply_mask,
};
use wsloop::protocol::message::{Decoder, DecoderLimits, Role, encode_close_payload};

use crate::compress;
use crate::session::Session;
use crate::target::Target;

/// Largest response head accepted from a server.
pub const MAX_RESPONSE_HEAD: usize = 8 * 1024;

/// Appends one masked, unfragmented client frame carrying `payload` to `out`.
pub fn push_frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8], mask: [u8; 4]) {
    let start = push_header(out, opcode, false, payload.len(), mask);
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask, 0);
}

/// Appends one masked frame carrying a compressed message `body` (RSV1 set, RFC 7692 §6).
pub fn push_compressed(out: &mut Vec<u8>, opcode: OpCode, body: &[u8], mask: [u8; 4]) {
    let start = push_header(out, opcode, true, body.len(), mask);
    out.extend_from_slice(body);
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
    let start = push_header(out, opcode, false, template.len(), mask);
    out.extend_from_slice(template);
    let payload = &mut out[start..];
    patch(payload);
    apply_mask(payload, mask, 0);
}

/// Appends a close frame (masked) to `out`: with `code`, or with no payload for `None`
/// (the answer to a close that had none: RFC 6455 §5.5.1 echoes the status received).
pub fn push_close(out: &mut Vec<u8>, code: Option<CloseCode>, mask: [u8; 4]) {
    let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
    let len = code.map_or(0, |code| encode_close_payload(code, "", &mut payload));
    push_frame(out, OpCode::Close, &payload[..len], mask);
}

fn push_header(out: &mut Vec<u8>, opcode: OpCode, rsv1: bool, len: usize, mask: [u8; 4]) -> usize {
    let header = FrameHeader { fin: true, rsv1, opcode, mask: Some(mask), payload_len: len as u64 };
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

/// A fresh `Sec-WebSocket-Key` from 16 random bytes (the library's client role).
pub fn handshake_key(random: [u8; 16]) -> [u8; 24] {
    client::key_from(random)
}

/// The HTTP/1.1 upgrade request for `target`, offering permessage-deflate when `deflate`,
/// with the session's extra headers and subprotocols, written by the library's client role.
pub fn upgrade_request(
    target: &Target,
    key: &[u8; 24],
    deflate: bool,
    session: &Session,
) -> Vec<u8> {
    let protocols: Vec<&str> = session.subprotocols.iter().map(String::as_str).collect();
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(session.headers.len() + 1);
    headers.push(("User-Agent", "wsloop-loadtest"));
    headers.extend(session.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let offer = Offer {
        host: &target.host,
        path: &target.path,
        protocols: &protocols,
        extensions: deflate.then_some(compress::OFFER),
        headers: &headers,
    };
    client::request(&offer, key)
}

/// What the server agreed to in its 101.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upgraded {
    /// The permessage-deflate parameters in force, if the server accepted the offer.
    pub deflate: Option<Agreed>,
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
    /// permessage-deflate agreed with parameters RFC 7692 does not allow (§5: the client
    /// fails the connection).
    BadDeflateParameters,
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
            HandshakeFailure::BadDeflateParameters => {
                f.write_str("invalid permessage-deflate parameters")
            }
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
        extensions: offered_deflate.then_some(compress::OFFER),
        ..Offer::default()
    };
    let agreed = client::check_response(&response, key, &offer)?;
    let deflate = match agreed.extensions.as_deref() {
        None => None,
        Some(answer) => {
            Some(compress::agreed(answer).ok_or(HandshakeFailure::BadDeflateParameters)?)
        }
    };
    Ok(Some((Upgraded { deflate }, used)))
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
        assert!(text.contains("Sec-WebSocket-Extensions: permessage-deflate"));
        assert!(text.contains("\r\nSec-WebSocket-Protocol: chat\r\n"));
        assert!(text.contains("\r\nUser-Agent: wsloop-loadtest\r\nX-Token: t\r\n"));
        // The server side of the library reads it as a valid upgrade.
        let (parsed, used) = wsloop::protocol::handshake::parse_request(text.as_bytes(), 8192)
            .expect("parses")
            .expect("complete");
        assert_eq!(used, text.len());
        wsloop::protocol::handshake::validate_upgrade(&parsed).expect("valid upgrade");
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
        let deflate = |params: &str| {
            format!(
                "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Extensions: permessage-deflate{params}\r\n\r\n",
                accept_key(&key)
            )
        };
        let shared = deflate("; server_no_context_takeover; client_no_context_takeover");
        let up = check_response(shared.as_bytes(), &key, true, &none).expect("valid");
        assert!(up.expect("complete").0.deflate.is_some_and(|a| a.server_no_context_takeover));
        assert_eq!(
            check_response(shared.as_bytes(), &key, false, &none),
            Err(HandshakeFailure::UnexpectedExtension)
        );
        assert_eq!(
            check_response(deflate("; server_max_window_bits=7").as_bytes(), &key, true, &none),
            Err(HandshakeFailure::BadDeflateParameters)
        );
    }
}

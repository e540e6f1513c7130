//! The client's side of the handshake: `client::parse_response` on arbitrary bytes, then
//! `client::check_response` against a fixed request.
//!
//! Input: the response bytes. Checks: a prefix of a complete head parses as "need more"
//! or as the same head; `used` never passes the input nor the head limit; a response the
//! checks accept is a 101 whose accept key is the hash of the key sent, and whose
//! subprotocol and extensions are among those offered.

use wsloop::protocol::client::{self, Offer};
use wsloop::protocol::handshake::accept_key;

const MAX_HEAD: usize = 1024;
const KEY: [u8; 24] = *b"dGhlIHNhbXBsZSBub25jZQ==";

/// Checks one input.
pub fn run(data: &[u8]) {
    let offer = Offer {
        host: "h",
        path: "/",
        protocols: &["chat", "superchat"],
        extensions: Some("permessage-deflate; client_max_window_bits"),
        headers: &[],
    };
    let Ok(Some((response, used))) = client::parse_response(data, MAX_HEAD) else { return };
    assert!(used <= data.len() && used <= MAX_HEAD, "used {used} of {}", data.len());
    // Any prefix of the head is "need more", or (at the head's own end) the same head.
    for cut in [used / 2, used.saturating_sub(1)] {
        match client::parse_response(&data[..cut], MAX_HEAD) {
            Ok(None) => {}
            Ok(Some((_, n))) => assert!(n <= cut),
            Err(_) => {}
        }
    }
    if client::check_response(&response, &KEY, &offer).is_ok() {
        assert_eq!(response.status, 101);
        let head = String::from_utf8_lossy(&data[..used]).to_ascii_lowercase();
        assert!(head.contains(&accept_key(&KEY).to_ascii_lowercase()), "accepted without the key");
    }
}

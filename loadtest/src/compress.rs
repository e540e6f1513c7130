//! permessage-deflate (RFC 7692) on the client's side: what the server's 101 agreed to,
//! and the deflaters and inflaters that follow from it.
//!
//! The codecs are `wsloop::protocol::deflate`'s. A direction without context takeover
//! (wsloop's default, shared mode, agrees to none in either direction) uses one codec per
//! generator thread for all its connections, so such a connection holds no compression
//! memory; a direction with context takeover gets its own codec on the connection's first
//! message in that direction (about 250–380 KB for a deflater, 48 KB for an inflater).

use wsloop::protocol::ProtocolError;
use wsloop::protocol::deflate::{
    Agreed, DeflatePolicy, Deflater, Inflater, MAX_WINDOW_BITS, MIN_WINDOW_BITS, negotiate,
};

/// The offer of the upgrade request: what browsers send.
pub const OFFER: &str = "permessage-deflate; client_max_window_bits";

/// zlib level of the generator's deflaters: the fastest, so the generator is not the limit.
const LEVEL: u32 = 1;

/// The parameters in force from the server's `Sec-WebSocket-Extensions` answer, or `None`
/// when they break RFC 7692 §7.1 (an unknown parameter, a bad window size, a parameter
/// twice): the client must then fail the connection (§5).
///
/// The answer has the offer's grammar and parameter names, so the library's negotiation
/// parses it; a dedicated policy with the largest window takes every value as written.
pub fn agreed(answer: &str) -> Option<Agreed> {
    let policy = DeflatePolicy::Dedicated { window_bits: MAX_WINDOW_BITS };
    negotiate(std::iter::once(answer), &policy).ok().flatten()
}

/// One connection's compression: the agreement, and its own codecs for the directions
/// that keep their context (built on first use).
pub struct ConnCodec {
    agreed: Agreed,
    deflater: Option<Deflater>,
    inflater: Option<Inflater>,
}

impl ConnCodec {
    /// A connection whose server agreed to `agreed`; no codec is built yet.
    pub fn new(agreed: Agreed) -> ConnCodec {
        ConnCodec { agreed, deflater: None, inflater: None }
    }
}

/// One generator thread's codecs for the directions without context takeover, shared by
/// its connections, and the buffers a message is compressed into or inflated into.
#[derive(Default)]
pub struct ThreadCodecs {
    /// Deflaters without context, by window bits (8 to 15), built on first use.
    deflaters: [Option<Deflater>; (MAX_WINDOW_BITS - MIN_WINDOW_BITS + 1) as usize],
    inflater: Option<Inflater>,
    /// A compressed message body, reused.
    pub body: Vec<u8>,
    /// An inflated message, reused.
    pub inflated: Vec<u8>,
}

impl ThreadCodecs {
    /// Compresses `payload` for `conn` into [`ThreadCodecs::body`] (cleared first).
    pub fn compress(&mut self, conn: &mut ConnCodec, payload: &[u8]) {
        let a = &conn.agreed;
        let bits = a.client_max_window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        self.body.clear();
        let deflater = if a.client_no_context_takeover {
            let slot = &mut self.deflaters[usize::from(bits - MIN_WINDOW_BITS)];
            slot.get_or_insert_with(|| Deflater::new(bits, LEVEL, true))
        } else {
            conn.deflater.get_or_insert_with(|| Deflater::new(bits, LEVEL, false))
        };
        deflater.compress(payload, &mut self.body);
    }

    /// Inflates a compressed message `body` for `conn` into [`ThreadCodecs::inflated`]
    /// (cleared first), at most `max` bytes.
    ///
    /// # Errors
    /// [`ProtocolError::MessageTooLarge`] past `max`; [`ProtocolError::InvalidCompressedData`]
    /// for a body that does not inflate. The shared inflater is reset either way.
    pub fn inflate(
        &mut self,
        conn: &mut ConnCodec,
        body: &[u8],
        max: usize,
    ) -> Result<&[u8], ProtocolError> {
        let a = &conn.agreed;
        self.inflated.clear();
        let inflater = if a.server_no_context_takeover {
            self.inflater.get_or_insert_with(|| Inflater::new(MAX_WINDOW_BITS, true))
        } else {
            let bits = a.server_max_window_bits;
            conn.inflater.get_or_insert_with(|| Inflater::new(bits, false))
        };
        inflater.decompress(body, max, &mut self.inflated)?;
        Ok(&self.inflated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_written() {
        let shared =
            agreed("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
                .expect("valid");
        assert!(shared.server_no_context_takeover && shared.client_no_context_takeover);
        assert_eq!((shared.server_max_window_bits, shared.client_max_window_bits), (15, 15));
        let python =
            agreed("permessage-deflate; server_max_window_bits=12; client_max_window_bits=12")
                .expect("valid");
        assert!(!python.server_no_context_takeover && !python.client_no_context_takeover);
        assert_eq!((python.server_max_window_bits, python.client_max_window_bits), (12, 12));
        assert!(agreed("permessage-deflate").is_some());
        // RFC 7692 §7.1: invalid values and unknown parameters fail the connection.
        assert_eq!(agreed("permessage-deflate; server_max_window_bits=99"), None);
        assert_eq!(agreed("permessage-deflate; x_custom"), None);
        assert_eq!(
            agreed("permessage-deflate; server_no_context_takeover; server_no_context_takeover"),
            None
        );
    }

    /// What one side compresses the other inflates, in both context modes, over several
    /// messages (context takeover refers back across them).
    #[test]
    fn round_trips_with_and_without_context() {
        for answer in [
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; client_max_window_bits=9",
            "permessage-deflate",
        ] {
            let a = agreed(answer).expect("valid");
            let mut conn = ConnCodec::new(a);
            let mut codecs = ThreadCodecs::default();
            // The server's inflater for our messages, and its deflater for its own.
            let mut server_in =
                Inflater::new(a.client_max_window_bits, a.client_no_context_takeover);
            let mut server_out =
                Deflater::new(a.server_max_window_bits, 6, a.server_no_context_takeover);
            for n in 0..5 {
                let msg = format!("message {n}: {}", "hello wsloop ".repeat(40 + n));
                codecs.compress(&mut conn, msg.as_bytes());
                assert!(codecs.body.len() < msg.len(), "{answer}: compressed");
                let mut plain = Vec::new();
                server_in.decompress(&codecs.body, 1 << 20, &mut plain).expect("inflates");
                assert_eq!(plain, msg.as_bytes(), "{answer}");
                let mut body = Vec::new();
                server_out.compress(msg.as_bytes(), &mut body);
                let got = codecs.inflate(&mut conn, &body, 1 << 20).expect("inflates");
                assert_eq!(got, msg.as_bytes(), "{answer}");
            }
            assert_eq!(
                codecs.inflate(&mut conn, &[0xff, 0xff, 0xff], 1 << 20),
                Err(ProtocolError::InvalidCompressedData)
            );
            let mut big = Vec::new();
            Deflater::new(15, 6, true).compress(&[0u8; 4096], &mut big);
            let mut fresh = ConnCodec::new(a);
            assert_eq!(codecs.inflate(&mut fresh, &big, 100), Err(ProtocolError::MessageTooLarge));
        }
    }
}

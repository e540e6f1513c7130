//! A reactor's permessage-deflate: the codecs it shares among its connections, each
//! connection's own codecs where it keeps context, and compress-once for fan-out.
//!
//! The rule is per direction: where the agreed parameters say "no context takeover", the
//! reactor's shared codec serves (it resets after every message, so it carries nothing
//! from one connection to the next); where the context is kept (the dedicated mode), the
//! connection gets its own codec, built on its first compressed message in that
//! direction. The shared mode therefore costs no compression memory per connection.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};

use crate::config::Config;
use crate::protocol::ProtocolError;
use crate::protocol::deflate::{Agreed, Deflater, Inflater, MAX_WINDOW_BITS};
use crate::protocol::frame::{FrameHeader, MAX_HEADER_LEN, OpCode};

/// A connection's codecs for the directions that keep their context.
#[derive(Default)]
pub(crate) struct OwnCodecs {
    deflater: Option<Deflater>,
    inflater: Option<Inflater>,
}

/// One reactor's compression state.
pub(crate) struct Compressor {
    level: u32,
    /// Window 15, no context takeover.
    shared_deflater: Option<Deflater>,
    shared_inflater: Option<Inflater>,
    /// No context takeover, for clients that limit the server's window below 15 bits and
    /// messages longer than that window.
    small_window: HashMap<u8, Deflater>,
    body: Vec<u8>,
    /// Where messages are inflated, and lent from (`Session` takes it for one message).
    inflated: Vec<u8>,
}

/// The most the inflate buffer keeps between messages; a larger message's buffer is
/// freed after it.
const KEPT_INFLATE_BYTES: usize = 64 * 1024;

impl Compressor {
    pub(crate) fn new(config: &Config) -> Compressor {
        Compressor {
            level: config.compression_level,
            shared_deflater: None,
            shared_inflater: None,
            small_window: HashMap::new(),
            body: Vec::new(),
            inflated: Vec::new(),
        }
    }

    /// Inflates a compressed message from a connection into `out` (emptied first): the
    /// buffer from [`Compressor::lend_inflate_buffer`], so the message is lent from it
    /// like a plain one is lent from the read buffer, and nothing is allocated per
    /// message once the buffer has grown.
    pub(crate) fn inflate_into(
        &mut self,
        agreed: &Agreed,
        own: &mut Option<Box<OwnCodecs>>,
        body: &[u8],
        max: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), ProtocolError> {
        out.clear();
        let inflater = if agreed.client_no_context_takeover {
            self.shared_inflater.get_or_insert_with(|| Inflater::new(MAX_WINDOW_BITS, true))
        } else {
            let own = own.get_or_insert_with(Default::default);
            own.inflater.get_or_insert_with(|| agreed.inflater())
        };
        inflater.decompress(body, max, out)
    }

    /// The reactor's inflate buffer, lent for one message ([`Compressor::inflate_into`]).
    pub(crate) fn lend_inflate_buffer(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.inflated)
    }

    /// Takes the inflate buffer back, unless a large message grew it past what is kept.
    pub(crate) fn return_inflate_buffer(&mut self, out: Vec<u8>) {
        if out.capacity() <= KEPT_INFLATE_BYTES {
            self.inflated = out;
        }
    }

    /// A compressed frame for one connection.
    pub(crate) fn frame_for(
        &mut self,
        agreed: &Agreed,
        own: &mut Option<Box<OwnCodecs>>,
        opcode: OpCode,
        payload: &[u8],
    ) -> Bytes {
        let level = self.level;
        let deflater = if agreed.fits_shared_deflater(payload.len()) {
            self.shared_deflater.get_or_insert_with(|| Deflater::new(MAX_WINDOW_BITS, level, true))
        } else if agreed.server_no_context_takeover {
            let bits = agreed.server_max_window_bits;
            self.small_window.entry(bits).or_insert_with(|| Deflater::new(bits, level, true))
        } else {
            let own = own.get_or_insert_with(Default::default);
            own.deflater.get_or_insert_with(|| agreed.deflater(level))
        };
        self.body.clear();
        deflater.compress(payload, &mut self.body);
        compressed_frame(opcode, &self.body)
    }

    /// The frame the shared deflater makes, for every recipient whose parameters allow
    /// it ([`Agreed::fits_shared_deflater`]): compressed once, shared by all.
    pub(crate) fn shared_frame(&mut self, opcode: OpCode, payload: &[u8]) -> Bytes {
        let level = self.level;
        let deflater =
            self.shared_deflater.get_or_insert_with(|| Deflater::new(MAX_WINDOW_BITS, level, true));
        self.body.clear();
        deflater.compress(payload, &mut self.body);
        compressed_frame(opcode, &self.body)
    }
}

/// One whole frame with RSV1 set (RFC 7692 §6: on a message's first frame only).
fn compressed_frame(opcode: OpCode, body: &[u8]) -> Bytes {
    let header =
        FrameHeader { fin: true, rsv1: true, opcode, mask: None, payload_len: body.len() as u64 };
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut head);
    let mut out = BytesMut::with_capacity(n + body.len());
    out.put_slice(&head[..n]);
    out.put_slice(body);
    out.freeze()
}

/// What a fan-out command carries: the plain frame for everyone, and the payload for the
/// recipients that negotiated compression (when the message is worth compressing).
#[derive(Clone)]
pub(crate) struct Outgoing {
    pub(crate) plain: Bytes,
    pub(crate) payload: Option<(OpCode, Bytes)>,
}

//! Frame headers (RFC 6455 §5.2) and masking (§5.3). Sans-IO.
//!
//! CONTRACT (to be implemented; signatures are fixed, the reactor calls them):

use super::ProtocolError;

/// The longest header: 2 bytes + 8-byte length + 4-byte mask.
pub const MAX_HEADER_LEN: usize = 14;

/// A frame opcode (§5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// 0x0
    Continuation,
    /// 0x1
    Text,
    /// 0x2
    Binary,
    /// 0x8
    Close,
    /// 0x9
    Ping,
    /// 0xA
    Pong,
}

impl OpCode {
    /// Close, Ping and Pong.
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Final fragment of a message.
    pub fin: bool,
    /// RSV1 (permessage-deflate's "compressed" bit).
    pub rsv1: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on client-to-server frames.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Parses a header at the start of `buf`.
    ///
    /// `Ok(None)`: not enough bytes yet, nothing consumed. `Ok(Some((header, used)))`:
    /// `used` header bytes. Rejects RSV2/RSV3, RSV1 unless `rsv1_allowed`, unknown opcodes,
    /// fragmented or over-125-byte control frames, and 64-bit lengths with the top bit set.
    pub fn parse(
        buf: &[u8],
        rsv1_allowed: bool,
    ) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        let _ = (buf, rsv1_allowed);
        todo!()
    }

    /// Writes this header into `out`, returning the bytes used (2 to 14).
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        let _ = out;
        todo!()
    }
}

/// XORs `buf` with `mask`, as if `buf` started `offset` bytes into the payload.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let _ = (buf, mask, offset);
    todo!()
}

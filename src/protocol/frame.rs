//! Frame headers (RFC 6455 §5.2) and masking (§5.3), sans-IO: bytes in, bytes out.
//!
//! [`FrameHeader::parse`] is an incremental parser in the usual shape: `Ok(None)` means
//! "need more bytes, nothing consumed", `Ok(Some((header, used)))` says how many header
//! bytes were read. It enforces every rule that can be checked from the header alone
//! (reserved bits, opcodes, control-frame shape, the 64-bit length's top bit). Rules that
//! depend on the connection (masking by role, size limits, fragmentation order) belong to
//! the decoder in [`super::message`].
//!
//! [`apply_mask`] unmasks (or masks: XOR is its own inverse) a payload, eight bytes at a
//! time, from any offset into the payload, so a frame can be unmasked in pieces as its
//! bytes arrive.
//!
//! ```
//! use wsloop::protocol::frame::{apply_mask, FrameHeader, OpCode};
//!
//! // RFC 6455 §5.7: a single-frame masked text message containing "Hello".
//! let mut wire = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
//! let (header, used) = FrameHeader::parse(&wire, false).unwrap().unwrap();
//! assert_eq!(header.opcode, OpCode::Text);
//! assert_eq!((used, header.payload_len), (6, 5));
//! apply_mask(&mut wire[used..], header.mask.unwrap(), 0);
//! assert_eq!(&wire[used..], b"Hello");
//! ```

use super::ProtocolError;

/// The longest header: 2 bytes + 8-byte length + 4-byte mask.
pub const MAX_HEADER_LEN: usize = 14;

/// The largest payload a control frame may carry (§5.5: "125 bytes or less").
pub const MAX_CONTROL_PAYLOAD: usize = 125;

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

    /// The opcode for the low four bits of a frame's first byte.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::UnknownOpcode`] for the opcodes §5.2 reserves (0x3–0x7, 0xB–0xF).
    pub fn from_u8(n: u8) -> Result<OpCode, ProtocolError> {
        match n {
            0x0 => Ok(OpCode::Continuation),
            0x1 => Ok(OpCode::Text),
            0x2 => Ok(OpCode::Binary),
            0x8 => Ok(OpCode::Close),
            0x9 => Ok(OpCode::Ping),
            0xA => Ok(OpCode::Pong),
            other => Err(ProtocolError::UnknownOpcode(other)),
        }
    }

    /// The four-bit wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
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

/// The first byte's final-fragment bit.
pub(crate) const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;
const RSV2: u8 = 0x20;
const RSV3: u8 = 0x10;
const OPCODE: u8 = 0x0F;
const MASKED: u8 = 0x80;
const LEN7: u8 = 0x7F;
/// 7-bit length value announcing a 16-bit extended length.
const LEN_16: u8 = 126;
/// 7-bit length value announcing a 64-bit extended length.
const LEN_64: u8 = 127;

impl FrameHeader {
    /// Parses a header at the start of `buf`.
    ///
    /// `Ok(None)`: not enough bytes yet, nothing consumed. `Ok(Some((header, used)))`:
    /// `used` header bytes. Rejects RSV2/RSV3, RSV1 unless `rsv1_allowed`, unknown opcodes,
    /// fragmented or over-125-byte control frames, and 64-bit lengths with the top bit set.
    ///
    /// Masking is not checked here: whether a frame must be masked depends on the role,
    /// which the decoder knows. Non-minimal length encodings are accepted (§5.2 binds the
    /// sender; rejecting them would buy nothing).
    ///
    /// # Errors
    ///
    /// [`ProtocolError::ReservedBits`], [`ProtocolError::UnknownOpcode`],
    /// [`ProtocolError::FragmentedControl`], [`ProtocolError::ControlTooLong`],
    /// [`ProtocolError::InvalidLength`]. Each is reported as soon as the bytes that show
    /// it have arrived, even when the rest of the header has not.
    pub fn parse(
        buf: &[u8],
        rsv1_allowed: bool,
    ) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        let &[b0, b1, ref rest @ ..] = buf else {
            return Ok(None);
        };

        // §5.2: "MUST be 0 unless an extension is negotiated that defines meanings for
        // non-zero values."
        if b0 & (RSV2 | RSV3) != 0 || (b0 & RSV1 != 0 && !rsv1_allowed) {
            return Err(ProtocolError::ReservedBits);
        }
        let fin = b0 & FIN != 0;
        let opcode = OpCode::from_u8(b0 & OPCODE)?;
        let len7 = b1 & LEN7;
        if opcode.is_control() {
            // §5.5: "All control frames MUST have a payload length of 125 bytes or less
            // and MUST NOT be fragmented."
            if !fin {
                return Err(ProtocolError::FragmentedControl);
            }
            if usize::from(len7) > MAX_CONTROL_PAYLOAD {
                return Err(ProtocolError::ControlTooLong);
            }
        }

        let (payload_len, rest) = match len7 {
            LEN_16 => {
                let Some((len, rest)) = rest.split_first_chunk::<2>() else {
                    return Ok(None);
                };
                (u64::from(u16::from_be_bytes(*len)), rest)
            }
            LEN_64 => {
                let Some((len, rest)) = rest.split_first_chunk::<8>() else {
                    return Ok(None);
                };
                let len = u64::from_be_bytes(*len);
                // §5.2: "the most significant bit MUST be 0".
                if len >> 63 != 0 {
                    return Err(ProtocolError::InvalidLength);
                }
                (len, rest)
            }
            short => (u64::from(short), rest),
        };

        let mask = if b1 & MASKED != 0 {
            let Some((key, _)) = rest.split_first_chunk::<4>() else {
                return Ok(None);
            };
            Some(*key)
        } else {
            None
        };

        let used = buf.len() - rest.len() + if mask.is_some() { 4 } else { 0 };
        let header = FrameHeader { fin, rsv1: b0 & RSV1 != 0, opcode, mask, payload_len };
        Ok(Some((header, used)))
    }

    /// Writes this header into `out`, returning the bytes used (2 to 14).
    ///
    /// The length takes the fewest bytes §5.2 allows (7-bit, then 16-bit, then 64-bit);
    /// the masking key follows when `mask` is `Some`.
    ///
    /// A `payload_len` with its top bit set cannot be framed; it is written as is and
    /// the peer will reject it. Callers never build such a length from a real buffer.
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        let mut b0 = self.opcode.as_u8();
        if self.fin {
            b0 |= FIN;
        }
        if self.rsv1 {
            b0 |= RSV1;
        }
        let mask_bit = if self.mask.is_some() { MASKED } else { 0 };
        out[0] = b0;

        let mut used = match self.payload_len {
            len @ 0..=125 => {
                // The match arm bounds `len` to 0..=125.
                out[1] = mask_bit | len as u8;
                2
            }
            len @ 126..=0xFFFF => {
                out[1] = mask_bit | LEN_16;
                out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                4
            }
            len => {
                out[1] = mask_bit | LEN_64;
                out[2..10].copy_from_slice(&len.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            out[used..used + 4].copy_from_slice(&key);
            used += 4;
        }
        used
    }

    /// The header's encoded length for a payload of `payload_len` bytes (2 to 14).
    pub fn encoded_len(payload_len: u64, masked: bool) -> usize {
        let len = match payload_len {
            0..=125 => 2,
            126..=0xFFFF => 4,
            _ => 10,
        };
        if masked { len + 4 } else { len }
    }
}

/// XORs `buf` with `mask`, as if `buf` started `offset` bytes into the payload.
///
/// §5.3: octet `i` of the payload is XORed with octet `i % 4` of the key. Masking and
/// unmasking are the same operation. A frame's payload may be processed in any number
/// of pieces by passing each piece's position in the payload as `offset`.
///
/// Works a `u64` at a time (the compiler vectorises the loop further, with AVX2 where the
/// processor has it and the payload is long enough to repay the check), then byte-wise for
/// the last `len % 8` bytes.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    // Rotate so that `key[0]` applies to `buf[0]` (in a register: a slice rotation is a
    // call, as costly as masking a small payload).
    let key = u32::from_le_bytes(mask).rotate_right(8 * (offset % 4) as u32).to_le_bytes();
    #[cfg(target_arch = "x86_64")]
    if buf.len() >= WIDE_FROM {
        return mask_wide(buf, key);
    }
    mask_words(buf, key);
}

/// A long payload: with AVX2 where the processor has it. Out of line, so that the check
/// does not weigh on the short payloads' inlined path.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn mask_wide(buf: &mut [u8], key: [u8; 4]) {
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor has AVX2 (checked just above), the only requirement of a
        // `target_feature(enable = "avx2")` function; its body is safe code.
        #[allow(unsafe_code)]
        return unsafe { mask_avx2(buf, key) };
    }
    mask_words(buf, key);
}

/// Payloads from this long are masked 32 bytes a step when AVX2 is there; shorter ones
/// take one or two 16-byte steps either way, and the feature check would cost more.
#[cfg(target_arch = "x86_64")]
const WIDE_FROM: usize = 128;

/// [`mask_words`] compiled for AVX2: the same loop, vectorised 32 bytes wide.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn mask_avx2(buf: &mut [u8], key: [u8; 4]) {
    mask_words(buf, key);
}

/// Masks `buf` from its first byte with `key` (already in phase with it).
#[inline(always)]
fn mask_words(buf: &mut [u8], key: [u8; 4]) {
    let word = key_word(key);
    let (words, tail) = buf.as_chunks_mut::<8>();
    for chunk in words {
        *chunk = (u64::from_ne_bytes(*chunk) ^ word).to_ne_bytes();
    }
    // Each word covers 8 bytes, a multiple of 4, so the tail starts in phase with `key`.
    for (i, byte) in tail.iter_mut().enumerate() {
        *byte ^= key[i % 4];
    }
}

/// The key twice, in memory order whatever the byte order (both halves are equal), by
/// arithmetic: built from eight bytes, it took more instructions than masking 32.
fn key_word(key: [u8; 4]) -> u64 {
    let half = u64::from(u32::from_ne_bytes(key));
    half | half << 32
}

/// Unmasks a whole payload (as [`apply_mask`] at offset 0) and tells whether every byte
/// of the result is ASCII, from the same pass: the OR of the words it already loads.
/// Most text is ASCII, and ASCII is UTF-8, so such a message needs no other check.
pub fn unmask_is_ascii(buf: &mut [u8], mask: [u8; 4]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if buf.len() >= WIDE_FROM {
        return unmask_wide_is_ascii(buf, mask);
    }
    unmask_words_is_ascii(buf, mask)
}

/// A long payload, as [`mask_wide`].
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn unmask_wide_is_ascii(buf: &mut [u8], mask: [u8; 4]) -> bool {
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: as in `mask_wide`: AVX2 is there, checked just above.
        #[allow(unsafe_code)]
        return unsafe { unmask_is_ascii_avx2(buf, mask) };
    }
    unmask_words_is_ascii(buf, mask)
}

/// [`unmask_words_is_ascii`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn unmask_is_ascii_avx2(buf: &mut [u8], mask: [u8; 4]) -> bool {
    unmask_words_is_ascii(buf, mask)
}

/// Unmasks `buf` a word at a time, ORing the words it writes to see any high bit.
#[inline(always)]
fn unmask_words_is_ascii(buf: &mut [u8], mask: [u8; 4]) -> bool {
    const HIGH_BITS: u64 = u64::from_ne_bytes([0x80; 8]);
    let word = key_word(mask);
    let mut seen = 0u64;
    let (words, tail) = buf.as_chunks_mut::<8>();
    for chunk in words {
        let plain = u64::from_ne_bytes(*chunk) ^ word;
        seen |= plain;
        *chunk = plain.to_ne_bytes();
    }
    let mut seen_tail = 0u8;
    for (i, byte) in tail.iter_mut().enumerate() {
        *byte ^= mask[i % 4];
        seen_tail |= *byte;
    }
    seen & HIGH_BITS == 0 && seen_tail & 0x80 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        FrameHeader::parse(buf, false)
    }

    fn encode(h: &FrameHeader) -> Vec<u8> {
        let mut out = [0u8; MAX_HEADER_LEN];
        let n = h.encode(&mut out);
        out[..n].to_vec()
    }

    fn header(opcode: OpCode, len: u64, mask: Option<[u8; 4]>) -> FrameHeader {
        FrameHeader { fin: true, rsv1: false, opcode, mask, payload_len: len }
    }

    fn naive_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= mask[(offset + i) % 4];
        }
    }

    /// Every prefix shorter than the header must ask for more bytes.
    fn assert_split_points(wire: &[u8], header_len: usize) {
        for cut in 0..header_len {
            assert_eq!(parse(&wire[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn rfc_masked_hello() {
        let mut wire = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let (h, used) = parse(&wire).unwrap().unwrap();
        let expected = header(OpCode::Text, 5, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!((h, used), (expected, 6));
        assert_eq!(encode(&h), wire[..6]);
        apply_mask(&mut wire[6..], [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&wire[6..], b"Hello");
        assert_split_points(&wire, 6);
    }

    #[test]
    fn rfc_unmasked_hello() {
        let wire = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let (h, used) = parse(&wire).unwrap().unwrap();
        assert_eq!((h, used), (header(OpCode::Text, 5, None), 2));
        assert_eq!(encode(&h), wire[..2]);
        assert_split_points(&wire, 2);
    }

    #[test]
    fn rfc_fragmented_unmasked_text() {
        // "Hel" then "lo".
        let first = [0x01, 0x03, 0x48, 0x65, 0x6c];
        let second = [0x80, 0x02, 0x6c, 0x6f];
        let (h, used) = parse(&first).unwrap().unwrap();
        assert_eq!(used, 2);
        assert!(!h.fin);
        assert_eq!((h.opcode, h.payload_len), (OpCode::Text, 3));
        let (h, used) = parse(&second).unwrap().unwrap();
        assert_eq!(used, 2);
        assert!(h.fin);
        assert_eq!((h.opcode, h.payload_len), (OpCode::Continuation, 2));
    }

    #[test]
    fn rfc_ping_and_pong() {
        // Unmasked ping "Hello", masked pong "Hello".
        let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let (h, _) = parse(&ping).unwrap().unwrap();
        assert_eq!(h, header(OpCode::Ping, 5, None));
        let mut pong = [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let (h, used) = parse(&pong).unwrap().unwrap();
        assert_eq!(h.opcode, OpCode::Pong);
        apply_mask(&mut pong[used..], h.mask.unwrap(), 0);
        assert_eq!(&pong[used..], b"Hello");
    }

    #[test]
    fn rfc_256_bytes_binary() {
        let wire = [0x82, 0x7E, 0x01, 0x00];
        let (h, used) = parse(&wire).unwrap().unwrap();
        assert_eq!((h, used), (header(OpCode::Binary, 256, None), 4));
        assert_eq!(encode(&h), wire);
        assert_split_points(&wire, 4);
    }

    #[test]
    fn rfc_64k_binary() {
        let wire = [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0];
        let (h, used) = parse(&wire).unwrap().unwrap();
        assert_eq!((h, used), (header(OpCode::Binary, 65536, None), 10));
        assert_eq!(encode(&h), wire);
        assert_split_points(&wire, 10);
    }

    #[test]
    fn full_header_split_points() {
        let h = FrameHeader {
            fin: false,
            rsv1: false,
            opcode: OpCode::Binary,
            mask: Some([1, 2, 3, 4]),
            payload_len: 1 << 40,
        };
        let wire = encode(&h);
        assert_eq!(wire.len(), MAX_HEADER_LEN);
        assert_split_points(&wire, MAX_HEADER_LEN);
        assert_eq!(parse(&wire), Ok(Some((h, MAX_HEADER_LEN))));
    }

    #[test]
    fn encode_uses_minimal_lengths() {
        for (len, expected) in
            [(0u64, 2usize), (125, 2), (126, 4), (0xFFFF, 4), (0x1_0000, 10), (u64::MAX >> 1, 10)]
        {
            for mask in [None, Some([9, 8, 7, 6])] {
                let h = header(OpCode::Binary, len, mask);
                let wire = encode(&h);
                let extra = if mask.is_some() { 4 } else { 0 };
                assert_eq!(wire.len(), expected + extra, "len {len}");
                assert_eq!(FrameHeader::encoded_len(len, mask.is_some()), wire.len());
                assert_eq!(parse(&wire), Ok(Some((h, wire.len()))));
            }
        }
    }

    #[test]
    fn encode_flags_round_trip() {
        for opcode in [
            OpCode::Continuation,
            OpCode::Text,
            OpCode::Binary,
            OpCode::Close,
            OpCode::Ping,
            OpCode::Pong,
        ] {
            for fin in [false, true] {
                if opcode.is_control() && !fin {
                    continue;
                }
                for rsv1 in [false, true] {
                    let h = FrameHeader { fin, rsv1, opcode, mask: None, payload_len: 3 };
                    let wire = encode(&h);
                    assert_eq!(FrameHeader::parse(&wire, true), Ok(Some((h, 2))));
                }
            }
        }
    }

    #[test]
    fn rejects_reserved_bits() {
        for b0 in [0x81 | RSV2, 0x81 | RSV3, 0x81 | RSV1 | RSV2] {
            assert_eq!(parse(&[b0, 0x00]), Err(ProtocolError::ReservedBits));
            assert_eq!(FrameHeader::parse(&[b0, 0x00], true), Err(ProtocolError::ReservedBits));
        }
        assert_eq!(parse(&[0xC1, 0x00]), Err(ProtocolError::ReservedBits));
        let (h, _) = FrameHeader::parse(&[0xC1, 0x00], true).unwrap().unwrap();
        assert!(h.rsv1);
    }

    #[test]
    fn rejects_unknown_opcodes() {
        for op in (0x3..=0x7).chain(0xB..=0xF) {
            assert_eq!(parse(&[0x80 | op, 0x00]), Err(ProtocolError::UnknownOpcode(op)));
        }
    }

    #[test]
    fn rejects_fragmented_control() {
        for op in [0x8, 0x9, 0xA] {
            assert_eq!(parse(&[op, 0x00]), Err(ProtocolError::FragmentedControl));
        }
    }

    #[test]
    fn rejects_long_control() {
        assert!(parse(&[0x89, 125]).unwrap().is_some());
        // Known from the first two bytes: no need to wait for the extended length.
        for len7 in [126, 127] {
            assert_eq!(parse(&[0x89, len7]), Err(ProtocolError::ControlTooLong));
            assert_eq!(parse(&[0x88, 0x80 | len7]), Err(ProtocolError::ControlTooLong));
        }
    }

    #[test]
    fn rejects_64bit_length_with_top_bit() {
        let wire = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(parse(&wire), Err(ProtocolError::InvalidLength));
        let wire = [0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert_eq!(parse(&wire).unwrap().unwrap().0.payload_len, u64::MAX >> 1);
    }

    #[test]
    fn mask_matches_naive_for_all_lengths_and_offsets() {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        // Past 128 bytes, where an AVX2 processor takes the wide loop.
        for len in (0..=70usize).chain(120..=200).chain([1023, 1024, 1025, 4099]) {
            for offset in 0..4 {
                let original: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
                let mut fast = original.clone();
                let mut slow = original.clone();
                apply_mask(&mut fast, mask, offset);
                naive_mask(&mut slow, mask, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
                // Large offsets behave as offset % 4.
                let mut far = original.clone();
                apply_mask(&mut far, mask, offset + 4 * 1001);
                assert_eq!(far, slow);
            }
        }
    }

    #[test]
    fn unmask_is_ascii_unmasks_and_finds_any_high_bit() {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        for len in (0..=70usize).chain(120..=200) {
            let ascii: Vec<u8> = (0..len).map(|i| b' ' + (i * 7 % 95) as u8).collect();
            let mut wire = ascii.clone();
            naive_mask(&mut wire, mask, 0);
            let mut unmasked = wire.clone();
            assert!(unmask_is_ascii(&mut unmasked, mask), "len {len}");
            assert_eq!(unmasked, ascii, "len {len}");
            // One byte with its high bit set, at every position (words and tail alike).
            for at in 0..len {
                let mut text = ascii.clone();
                text[at] |= 0x80;
                let mut wire = text.clone();
                naive_mask(&mut wire, mask, 0);
                assert!(!unmask_is_ascii(&mut wire, mask), "len {len} at {at}");
                assert_eq!(wire, text, "len {len} at {at}");
            }
        }
    }

    #[test]
    fn mask_large_buffer_and_pieces() {
        let mask = [0xde, 0xad, 0xbe, 0xef];
        let original: Vec<u8> = (0..1_000_003usize).map(|i| (i ^ (i >> 8)) as u8).collect();
        let mut fast = original.clone();
        let mut slow = original.clone();
        apply_mask(&mut fast, mask, 0);
        naive_mask(&mut slow, mask, 0);
        assert_eq!(fast, slow);

        // Unmasking in uneven pieces, each at its own offset, restores the original.
        let mut pos = 0;
        for piece in [1usize, 7, 13, 64, 999, 3].iter().cycle() {
            if pos == fast.len() {
                break;
            }
            let end = (pos + piece).min(fast.len());
            apply_mask(&mut fast[pos..end], mask, pos);
            pos = end;
        }
        assert_eq!(fast, original);
    }
}

//! The streaming decoder, sans-IO: bytes of frames in, messages and control frames out.
//!
//! # How the reactor drives it
//!
//! The reactor reads socket bytes into its scratch buffer and calls [`Decoder::decode`]
//! on the unconsumed part until it returns `(0, None)` (need more bytes) or the buffer is
//! empty. Whatever is left over is kept by the connection and handed back, with the next
//! read appended, on the next call. The decoder only ever leaves a partial frame *header*
//! or a partial *control frame* unconsumed, so that tail is at most [`MAX_UNCONSUMED`]
//! bytes.
//!
//! ```
//! use wsloop::protocol::message::{Decoder, DecoderLimits, Incoming, Role};
//!
//! let mut decoder = Decoder::new(Role::Client, DecoderLimits::default());
//! // Two unmasked server frames: "Hel" (FIN clear) then "lo" (continuation, FIN set),
//! // with a ping between them (§5.4: control frames may be injected between fragments).
//! let mut scratch = vec![0x01, 0x03, b'H', b'e', b'l', 0x89, 0x00, 0x80, 0x02, b'l', b'o'];
//! let mut pos = 0;
//! let mut seen = Vec::new();
//! while pos < scratch.len() {
//!     let (used, item) = decoder.decode(&mut scratch[pos..]).expect("valid frames");
//!     pos += used;
//!     match item {
//!         Some(Incoming::Text(text)) => seen.push(text.into_owned()),
//!         Some(Incoming::Ping(_)) => seen.push("ping".to_owned()),
//!         Some(_) => unreachable!(),
//!         None if used == 0 => break, // need more bytes: keep scratch[pos..]
//!         None => {}
//!     }
//! }
//! assert_eq!(seen, ["ping", "Hello"]);
//! assert!(decoder.is_idle());
//! ```
//!
//! # Fast path and slow path
//!
//! A complete, unfragmented data frame that is wholly in the buffer while no message is
//! in progress is unmasked in place and returned borrowed from the caller's buffer
//! ([`Cow::Borrowed`]): no allocation, one UTF-8 pass for text. Anything else (a
//! fragmented message, or a frame whose payload has not all arrived) is copied into the
//! decoder's assembly buffer as its bytes arrive and returned owned once complete; the
//! buffer then leaves with the message, so an idle decoder holds no heap memory.
//!
//! Text in the assembly buffer is validated incrementally as it arrives (§8.1, "fail
//! fast"), so an invalid sequence fails the connection without waiting for the rest of
//! the message.
//!
//! Control frames (§5.5) are never reassembled: they are at most 125 bytes, so the
//! decoder waits until one is wholly in the buffer and returns it borrowed.
//!
//! # Compressed messages
//!
//! Once permessage-deflate is negotiated ([`Decoder::set_compression`]), a message whose
//! first frame has RSV1 set is compressed (RFC 7692 §6.1). The decoder assembles its
//! frames like any other (borrowed on the fast path, owned otherwise) but does not check
//! UTF-8, and returns it as [`Incoming::Compressed`]: the caller inflates it with a
//! [`deflate::Inflater`](super::deflate::Inflater) and validates text afterwards. The
//! limits apply to the compressed bytes here; the inflater enforces `max_message_size` on
//! the output.

use std::borrow::Cow;

use super::frame::{FrameHeader, MAX_CONTROL_PAYLOAD, OpCode, apply_mask, unmask_is_ascii};
use super::{CloseCode, ProtocolError};

/// The most bytes [`Decoder::decode`] ever leaves unconsumed for the caller to keep:
/// a control frame with the longest header and payload (14 + 125).
pub const MAX_UNCONSUMED: usize = super::frame::MAX_HEADER_LEN + MAX_CONTROL_PAYLOAD;

/// The most a frame's declared length reserves ahead of the bytes that arrived.
const RESERVE_AHEAD: usize = 64 << 10;

/// Which side of the connection this decoder reads for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads client frames: they must be masked.
    Server,
    /// Reads server frames: they must not be masked.
    Client,
}

/// Limits the decoder enforces.
///
/// Both are checked against a frame's declared length as soon as its header arrives,
/// before any of its payload is waited for or buffered. A limit above 4 GiB counts as
/// 4 GiB.
#[derive(Debug, Clone, Copy)]
pub struct DecoderLimits {
    /// Largest message payload (after reassembly), bytes.
    ///
    /// Bounds the decoder's assembly buffer, which never grows past it. Over the limit:
    /// [`ProtocolError::MessageTooLarge`] (close code 1009). Default: 64 MiB.
    pub max_message_size: usize,
    /// Largest single frame payload, bytes.
    ///
    /// Applies to every frame, control frames included. Over the limit:
    /// [`ProtocolError::FrameTooLarge`] (close code 1009). Default: 16 MiB.
    pub max_frame_size: usize,
}

impl Default for DecoderLimits {
    /// 64 MiB messages, 16 MiB frames (the same defaults as tungstenite).
    fn default() -> DecoderLimits {
        DecoderLimits { max_message_size: 64 << 20, max_frame_size: 16 << 20 }
    }
}

/// A validated close frame payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// The status code.
    pub code: CloseCode,
    /// The UTF-8 reason.
    pub reason: &'a str,
}

impl<'a> CloseFrame<'a> {
    /// Validates a close frame's (unmasked) payload, §5.5.1 and §7.4.
    ///
    /// An empty payload is `Ok(None)`: the peer gave no status code (report it as 1005).
    ///
    /// # Errors
    ///
    /// [`ProtocolError::InvalidClosePayload`] for a 1-byte payload,
    /// [`ProtocolError::InvalidCloseCode`] for a code a peer must not send,
    /// [`ProtocolError::InvalidUtf8`] for a reason that is not UTF-8.
    pub fn parse(payload: &'a [u8]) -> Result<Option<CloseFrame<'a>>, ProtocolError> {
        match payload {
            [] => Ok(None),
            // §5.5.1: "If there is a body, the first two bytes of the body MUST be a
            // 2-byte unsigned integer".
            [_] => Err(ProtocolError::InvalidClosePayload),
            &[hi, lo, ref reason @ ..] => {
                let code = CloseCode(u16::from_be_bytes([hi, lo]));
                if !code.is_valid_on_wire() {
                    return Err(ProtocolError::InvalidCloseCode(code.0));
                }
                let reason =
                    simdutf8::basic::from_utf8(reason).map_err(|_| ProtocolError::InvalidUtf8)?;
                Ok(Some(CloseFrame { code, reason }))
            }
        }
    }
}

/// Writes a close frame payload (code, then reason) into `out`, returning the bytes used.
///
/// The reason is cut at a character boundary so the payload fits a control frame
/// (§5.5: 125 bytes, so at most 123 bytes of reason).
pub fn encode_close_payload(
    code: CloseCode,
    reason: &str,
    out: &mut [u8; MAX_CONTROL_PAYLOAD],
) -> usize {
    let (code_bytes, reason_room) = out.split_at_mut(2);
    code_bytes.copy_from_slice(&code.0.to_be_bytes());
    let mut cut = reason.len().min(reason_room.len());
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let reason = reason.as_bytes().get(..cut).unwrap_or_default();
    if let Some(room) = reason_room.get_mut(..cut) {
        room.copy_from_slice(reason);
    }
    2 + cut
}

/// What one call to [`Decoder::decode`] produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A complete, validated text message.
    Text(Cow<'a, str>),
    /// A complete binary message.
    Binary(Cow<'a, [u8]>),
    /// A ping, with its payload.
    Ping(&'a [u8]),
    /// A pong, with its payload.
    Pong(&'a [u8]),
    /// A close frame; `None` when it had no payload.
    Close(Option<CloseFrame<'a>>),
    /// A complete compressed message (RSV1 on its first frame, RFC 7692 §6.1), not yet
    /// inflated and so not yet checked for UTF-8.
    Compressed {
        /// The message is text (its first frame's opcode was 0x1), to be validated as
        /// UTF-8 once inflated.
        text: bool,
        /// The compressed body: every frame's payload, unmasked and concatenated, without
        /// the `00 00 ff ff` tail (§7.2.2).
        body: Cow<'a, [u8]>,
    },
}

/// A whole message in one frame, borrowed from the received bytes
/// ([`Decoder::decode_whole`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whole<'a> {
    /// A validated text message.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

/// The per-connection decoder state. Holds no buffer while no message is in progress.
///
/// States: *idle* (`message` is `None`, no heap memory), *between fragments* of a message
/// (`message` is `Some`, its frame has no bytes left), *inside a data frame*
/// (`message` is `Some`, its frame still expects payload bytes).
#[derive(Debug)]
pub struct Decoder {
    role: Role,
    /// [`DecoderLimits`] kept as 32-bit counts (a limit past 4 GiB is 4 GiB): every
    /// connection holds a decoder, so its size is the idle connection's cost.
    max_message: u32,
    max_frame: u32,
    /// Whether RSV1 may be set on a message's first frame. Stays `false` until
    /// permessage-deflate (RFC 7692) is negotiated; then it marks a compressed message.
    rsv1_allowed: bool,
    /// The message being reassembled, if any.
    /// Boxed: every connection holds a decoder, few hold a message in progress.
    message: Option<Box<Partial>>,
}

/// What [`Decoder::decode`] returns: bytes used, and the item they completed.
type DecodeResult<'a> = Result<(usize, Option<Incoming<'a>>), ProtocolError>;

/// Whether a data message is text or binary, from its first frame's opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataKind {
    Text,
    Binary,
}

/// A message whose frames, or whose single frame's payload, did not arrive all at once.
#[derive(Debug)]
struct Partial {
    kind: DataKind,
    /// RSV1 on the first frame: the payload is deflated (RFC 7692 §6.1), so it is not
    /// validated as UTF-8 here.
    compressed: bool,
    /// The unmasked payload so far.
    payload: Vec<u8>,
    /// Text only: `payload[..validated]` is known to be UTF-8. What follows (at most 3
    /// bytes) is the start of a code point whose remaining bytes have not arrived.
    validated: usize,
    /// The data frame currently being read.
    frame: FrameProgress,
}

/// How far into the current data frame's payload the decoder is.
#[derive(Debug, Clone, Copy)]
struct FrameProgress {
    /// Payload bytes of this frame not yet received; 0 between frames.
    remaining: u64,
    /// The frame's masking key (server role).
    mask: Option<[u8; 4]>,
    /// Payload bytes already received, modulo 4: where the mask resumes.
    mask_offset: u8,
    /// The frame is the message's last.
    fin: bool,
}

impl FrameProgress {
    fn new(header: &FrameHeader) -> FrameProgress {
        FrameProgress {
            remaining: header.payload_len,
            mask: header.mask,
            mask_offset: 0,
            fin: header.fin,
        }
    }
}

impl Partial {
    fn new(kind: DataKind, compressed: bool) -> Partial {
        Partial {
            kind,
            compressed,
            payload: Vec::new(),
            validated: 0,
            frame: FrameProgress { remaining: 0, mask: None, mask_offset: 0, fin: false },
        }
    }

    /// Between frames: the next bytes are a frame header.
    fn at_frame_boundary(&self) -> bool {
        self.frame.remaining == 0
    }

    /// Starts reading a frame of `len` payload bytes, reserving room for all of it.
    ///
    /// The caller has checked that `payload.len() + len <= max_message_size`. Growth for
    /// many small fragments doubles, but never past `max_message_size`.
    fn begin_frame(&mut self, header: &FrameHeader, len: usize, max_message_size: usize) {
        self.frame = FrameProgress::new(header);
        // Reserve for what a frame declares only up to RESERVE_AHEAD: past that the buffer
        // grows as bytes arrive, so a bare header never makes us hold its whole length.
        let needed = self.payload.len().saturating_add(len.min(RESERVE_AHEAD));
        if needed > self.payload.capacity() {
            let doubled = self.payload.capacity().saturating_mul(2);
            let target = needed.max(doubled.min(max_message_size));
            self.payload.reserve_exact(target.saturating_sub(self.payload.len()));
        }
    }

    /// Appends `chunk` (masked, at most the frame's remaining bytes) to the payload.
    fn push(&mut self, chunk: &mut [u8]) {
        if let Some(mask) = self.frame.mask {
            apply_mask(chunk, mask, usize::from(self.frame.mask_offset));
        }
        let n = chunk.len();
        self.make_room(n);
        // `n % 4` is below 4, so the sum is below 7 and fits a u8.
        self.frame.mask_offset = ((usize::from(self.frame.mask_offset) + n % 4) % 4) as u8;
        self.frame.remaining =
            self.frame.remaining.saturating_sub(u64::try_from(n).unwrap_or(u64::MAX));
        self.payload.extend_from_slice(chunk);
    }

    /// Grows the buffer for `n` more bytes of the current frame, doubling but never past
    /// the end that frame declared. Left to `Vec`, doubling from the read-ahead reservation
    /// would overshoot `max_message_size` (131,072 bytes held for a 100,000-byte frame
    /// and limit); the frame's declared end is within that limit, checked at its header.
    fn make_room(&mut self, n: usize) {
        let len = self.payload.len();
        let needed = len.saturating_add(n);
        if needed <= self.payload.capacity() {
            return;
        }
        let remaining = usize::try_from(self.frame.remaining).unwrap_or(usize::MAX);
        let frame_end = len.saturating_add(remaining);
        let target = needed.max(self.payload.capacity().saturating_mul(2).min(frame_end));
        self.payload.reserve_exact(target - len);
    }

    /// The message's last byte has arrived.
    fn is_complete(&self) -> bool {
        self.frame.fin && self.frame.remaining == 0
    }

    /// Validates the text received since the last call, carrying an incomplete trailing
    /// code point over to the next (§8.1: fail the connection as soon as invalid UTF-8
    /// is seen, not at the end of the message).
    fn validate_utf8_so_far(&mut self) -> Result<(), ProtocolError> {
        if self.kind != DataKind::Text || self.compressed {
            return Ok(());
        }
        let pending = self.payload.get(self.validated..).unwrap_or_default();
        match simdutf8::compat::from_utf8(pending) {
            Ok(_) => self.validated = self.payload.len(),
            // The input ends inside a code point that is valid so far: wait for the rest.
            Err(e) if e.error_len().is_none() => self.validated += e.valid_up_to(),
            Err(_) => return Err(ProtocolError::InvalidUtf8),
        }
        Ok(())
    }

    /// Hands over the completed message, and its buffer with it.
    fn finish(self) -> Result<Incoming<'static>, ProtocolError> {
        if self.compressed {
            return Ok(Incoming::Compressed {
                text: self.kind == DataKind::Text,
                body: Cow::Owned(self.payload),
            });
        }
        match self.kind {
            DataKind::Text => {
                // SAFETY: `payload[..validated]` is UTF-8 ending on a character boundary:
                // `validated` starts at 0 and only advances over bytes simdutf8 accepted
                // (a whole valid slice, or the valid prefix before an incomplete code
                // point), and `payload` only grows at its end.
                #[allow(unsafe_code)]
                let text = unsafe { string_after(self.payload, self.validated) }?;
                Ok(Incoming::Text(Cow::Owned(text)))
            }
            DataKind::Binary => Ok(Incoming::Binary(Cow::Owned(self.payload))),
        }
    }
}

/// A whole uncompressed payload of `kind`, unmasked in place (`None`: a client's plain
/// frame) and, for text, checked as UTF-8.
// Forced: left to the inliner, it was called out of line whenever masking grew a branch,
// ~20-30 instructions a message on the session's hottest path (callgrind).
#[inline(always)]
fn unmasked_whole(
    kind: DataKind,
    mask: Option<[u8; 4]>,
    payload: &mut [u8],
) -> Result<Whole<'_>, ProtocolError> {
    Ok(match (kind, mask) {
        // A client's text is "unmasked" with zeros, which changes nothing: the pass is
        // there to tell whether it is ASCII.
        (DataKind::Text, mask) => Whole::Text(unmask_text(payload, mask.unwrap_or_default())?),
        (DataKind::Binary, Some(mask)) => {
            apply_mask(payload, mask, 0);
            Whole::Binary(payload)
        }
        (DataKind::Binary, None) => Whole::Binary(payload),
    })
}

/// A whole text payload, unmasked in place and checked as UTF-8: by the unmasking pass
/// alone when it is all ASCII (most text is), else by simdutf8.
#[inline]
fn unmask_text(payload: &mut [u8], mask: [u8; 4]) -> Result<&str, ProtocolError> {
    if !unmask_is_ascii(payload, mask) {
        return simdutf8::basic::from_utf8(payload).map_err(|_| ProtocolError::InvalidUtf8);
    }
    // Debug builds (the tests) check the unmasking pass's answer too.
    debug_assert!(payload.is_ascii(), "unmask_is_ascii said ASCII");
    // SAFETY: every byte is below 0x80 (`unmask_is_ascii` ORs every unmasked byte and
    // tests the high bit; `frame.rs` tests it at every position and length up to 70, and
    // from 120 to 200, where AVX2 processors take its wide loop),
    // and a sequence of ASCII bytes is valid UTF-8.
    #[allow(unsafe_code)]
    Ok(unsafe { std::str::from_utf8_unchecked(payload) })
}

/// `bytes` as a `String`, validating only `bytes[known_valid..]`; a code point left
/// incomplete at the end fails.
///
/// # Safety
/// `bytes[..known_valid]` must be valid UTF-8 (so it ends on a character boundary).
#[allow(unsafe_code)]
unsafe fn string_after(bytes: Vec<u8>, known_valid: usize) -> Result<String, ProtocolError> {
    let rest = bytes.get(known_valid..).ok_or(ProtocolError::InvalidUtf8)?;
    simdutf8::basic::from_utf8(rest).map_err(|_| ProtocolError::InvalidUtf8)?;
    // Debug builds (the tests) check the caller's promise too.
    debug_assert!(std::str::from_utf8(&bytes).is_ok(), "prefix promised to be UTF-8");
    // SAFETY: the prefix is UTF-8 by the caller's contract and the rest was just checked;
    // two valid UTF-8 strings, the first ending on a character boundary, concatenate to
    // valid UTF-8.
    Ok(unsafe { String::from_utf8_unchecked(bytes) })
}

/// Where [`Decoder::small_frame`] found the common frame.
struct SmallFrame {
    kind: DataKind,
    /// The masking key; `None` at a client (its frames are not masked).
    mask: Option<[u8; 4]>,
    header_len: usize,
    end: usize,
}

impl Decoder {
    /// A decoder for `role` under `limits`.
    pub fn new(role: Role, limits: DecoderLimits) -> Decoder {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Decoder {
            role,
            max_message: clamp(limits.max_message_size),
            max_frame: clamp(limits.max_frame_size),
            rsv1_allowed: false,
            message: None,
        }
    }

    fn max_message_size(&self) -> usize {
        self.max_message as usize
    }

    fn max_frame_size(&self) -> usize {
        self.max_frame as usize
    }

    /// Turns permessage-deflate's RSV1 bit on or off (RFC 7692 §6.1); off by default.
    ///
    /// Call it once the extension is negotiated, before the first frame is decoded. While
    /// on, RSV1 is allowed on a data message's first frame and marks it compressed
    /// ([`Incoming::Compressed`]); on a continuation or control frame it is still
    /// [`ProtocolError::ReservedBits`]. While off, RSV1 anywhere is that error.
    pub fn set_compression(&mut self, enabled: bool) {
        self.rsv1_allowed = enabled;
    }

    /// Consumes bytes from the front of `buf`, returning `(used, item)`.
    ///
    /// `(0, None)`: need more bytes; keep `buf` and call again with more appended.
    /// `(n, None)`: consumed part of a message (a fragment, or part of a frame's payload).
    /// `(n, Some(item))`: consumed through the end of a message or control frame.
    /// Unmasks in place, so `buf` is `&mut`.
    ///
    /// Only a partial frame header or a partial control frame is ever left unconsumed
    /// (at most [`MAX_UNCONSUMED`] bytes); data frame payloads are taken as far as they
    /// have arrived.
    ///
    /// # Errors
    ///
    /// Any [`ProtocolError`]: the connection must be failed with its
    /// [`close_code`](ProtocolError::close_code). The decoder's state afterwards is
    /// unspecified; do not call it again.
    pub fn decode<'a>(
        &mut self,
        buf: &'a mut [u8],
    ) -> Result<(usize, Option<Incoming<'a>>), ProtocolError> {
        if let Some(frame) = self.small_frame(buf) {
            return Self::whole_message(
                frame.kind,
                false,
                frame.mask,
                frame.header_len,
                frame.end,
                buf,
            );
        }
        if let Some(partial) = &mut self.message
            && !partial.at_frame_boundary()
        {
            return self.continue_frame(buf, 0);
        }

        let Some((header, header_len)) = FrameHeader::parse(buf, self.rsv1_allowed)? else {
            return Ok((0, None));
        };
        self.check_mask(&header)?;
        let len = usize::try_from(header.payload_len).map_err(|_| ProtocolError::FrameTooLarge)?;
        if len > self.max_frame_size() {
            return Err(ProtocolError::FrameTooLarge);
        }

        match header.opcode {
            OpCode::Close | OpCode::Ping | OpCode::Pong => {
                // RFC 7692 §6.1: "An endpoint MUST NOT set the "Per-Message Compressed"
                // bit of control frames".
                if header.rsv1 {
                    return Err(ProtocolError::ReservedBits);
                }
                Self::control_frame(header.opcode, header.mask, header_len, len, buf)
            }
            OpCode::Continuation => {
                // §5.4: continuation frames only follow a first frame with FIN clear.
                let max_message_size = self.max_message_size();
                let Some(partial) = &mut self.message else {
                    return Err(ProtocolError::UnexpectedContinuation);
                };
                // RFC 7692 §6.1: RSV1 is set on a message's first frame only.
                if header.rsv1 {
                    return Err(ProtocolError::ReservedBits);
                }
                if partial.payload.len().saturating_add(len) > max_message_size {
                    return Err(ProtocolError::MessageTooLarge);
                }
                partial.begin_frame(&header, len, max_message_size);
                self.continue_frame(buf, header_len)
            }
            OpCode::Text | OpCode::Binary => {
                // §5.4: a fragmented message's frames are not interleaved with another
                // message's.
                if self.message.is_some() {
                    return Err(ProtocolError::ExpectedContinuation);
                }
                if len > self.max_message_size() {
                    return Err(ProtocolError::MessageTooLarge);
                }
                let kind =
                    if header.opcode == OpCode::Text { DataKind::Text } else { DataKind::Binary };
                let frame_end = header_len.saturating_add(len);
                if header.fin && buf.len() >= frame_end {
                    return Self::whole_message(
                        kind,
                        header.rsv1,
                        header.mask,
                        header_len,
                        frame_end,
                        buf,
                    );
                }
                let mut partial = Box::new(Partial::new(kind, header.rsv1));
                partial.begin_frame(&header, len, self.max_message_size());
                self.message = Some(partial);
                self.continue_frame(buf, header_len)
            }
        }
    }

    /// The common case alone: a whole, final, uncompressed text or binary frame at the
    /// front of `buf`, masked as this role receives it (from a client at a server, plain
    /// at a client), with no message in progress: unmasked in place and validated.
    /// `Ok(None)`: anything else, left untouched for [`Decoder::decode`] (which also
    /// judges it).
    ///
    /// # Errors
    ///
    /// [`ProtocolError::InvalidUtf8`] for a text frame that is not UTF-8: as from
    /// `decode`, the connection must be failed.
    pub fn decode_whole<'a>(
        &self,
        buf: &'a mut [u8],
    ) -> Result<Option<(usize, Whole<'a>)>, ProtocolError> {
        let Some(frame) = self.small_frame(buf) else {
            return Ok(None);
        };
        let Some(payload) = buf.get_mut(frame.header_len..frame.end) else { return Ok(None) };
        Ok(Some((frame.end, unmasked_whole(frame.kind, frame.mask, payload)?)))
    }

    /// The common frame, without the general header parser: with no message in progress,
    /// a whole, final, uncompressed text or binary frame with a 7- or 16-bit length,
    /// masked if and only if this decoder is a server's. `None`: anything else, the
    /// general path decides (errors included).
    fn small_frame(&self, buf: &[u8]) -> Option<SmallFrame> {
        /// FIN and an opcode, no reserved bit.
        const FIN_TEXT: u8 = 0x81;
        const FIN_BINARY: u8 = 0x82;
        /// The mask bit beside a 7-bit length; 126 there means a 16-bit length follows.
        const MASKED: u8 = 0x80;
        const LEN_16: usize = 126;
        if self.message.is_some() {
            return None;
        }
        let [first, second, ..] = *buf else { return None };
        let kind = match first {
            FIN_TEXT => DataKind::Text,
            FIN_BINARY => DataKind::Binary,
            _ => return None,
        };
        // §5.1: a server reads masked frames only, a client plain ones only.
        let masked = matches!(self.role, Role::Server);
        if (second & MASKED != 0) != masked {
            return None;
        }
        let (len, len_end) = match usize::from(second & !MASKED) {
            len @ 0..=125 => (len, 2),
            LEN_16 => match buf.get(2..4)? {
                &[high, low] => (usize::from(u16::from_be_bytes([high, low])), 4),
                _ => return None,
            },
            _ => return None,
        };
        let (mask, header_len) = match buf.get(len_end..len_end + 4) {
            Some(&[k0, k1, k2, k3]) if masked => (Some([k0, k1, k2, k3]), len_end + 4),
            _ if masked => return None,
            _ => (None, len_end),
        };
        let end = header_len + len;
        let fits = len <= self.max_frame_size().min(self.max_message_size());
        (fits && buf.len() >= end).then_some(SmallFrame { kind, mask, header_len, end })
    }

    /// True when no message is in progress (so the connection holds no decoder memory).
    pub fn is_idle(&self) -> bool {
        self.message.is_none()
    }

    /// §5.1: "The server MUST close the connection upon receiving a frame that is not
    /// masked." and "A client MUST close a connection if it detects a masked frame."
    fn check_mask(&self, header: &FrameHeader) -> Result<(), ProtocolError> {
        match (self.role, header.mask) {
            (Role::Server, None) => Err(ProtocolError::UnmaskedFrame),
            (Role::Client, Some(_)) => Err(ProtocolError::MaskedFrame),
            _ => Ok(()),
        }
    }

    /// The fast path: a whole unfragmented data frame, unmasked and validated in place
    /// (compressed ones are not validated: their text is not there yet).
    fn whole_message<'a>(
        kind: DataKind,
        compressed: bool,
        mask: Option<[u8; 4]>,
        header_len: usize,
        frame_end: usize,
        buf: &'a mut [u8],
    ) -> DecodeResult<'a> {
        let Some(payload) = buf.get_mut(header_len..frame_end) else {
            return Ok((0, None));
        };
        if compressed {
            if let Some(mask) = mask {
                apply_mask(payload, mask, 0);
            }
            let body = Cow::Borrowed(&*payload);
            let text = kind == DataKind::Text;
            return Ok((frame_end, Some(Incoming::Compressed { text, body })));
        }
        let item = match unmasked_whole(kind, mask, payload)? {
            Whole::Text(text) => Incoming::Text(Cow::Borrowed(text)),
            Whole::Binary(data) => Incoming::Binary(Cow::Borrowed(data)),
        };
        Ok((frame_end, Some(item)))
    }

    /// A control frame: waits until all of it is in `buf`, then returns it borrowed.
    fn control_frame<'a>(
        opcode: OpCode,
        mask: Option<[u8; 4]>,
        header_len: usize,
        len: usize,
        buf: &'a mut [u8],
    ) -> Result<(usize, Option<Incoming<'a>>), ProtocolError> {
        let frame_end = header_len.saturating_add(len);
        let Some(payload) = buf.get_mut(header_len..frame_end) else {
            return Ok((0, None));
        };
        if let Some(mask) = mask {
            apply_mask(payload, mask, 0);
        }
        let payload: &'a [u8] = payload;
        let item = match opcode {
            OpCode::Ping => Incoming::Ping(payload),
            OpCode::Pong => Incoming::Pong(payload),
            _ => Incoming::Close(CloseFrame::parse(payload)?),
        };
        Ok((frame_end, Some(item)))
    }

    /// The slow path: takes the current data frame's payload bytes present in
    /// `buf[start..]` into the assembly buffer. `start` is the header length when the
    /// header was parsed in this call, else 0.
    fn continue_frame<'a>(
        &mut self,
        buf: &'a mut [u8],
        start: usize,
    ) -> Result<(usize, Option<Incoming<'a>>), ProtocolError> {
        let Some(partial) = &mut self.message else {
            return Ok((0, None));
        };
        let available = buf.len().saturating_sub(start);
        let take = usize::try_from(partial.frame.remaining).map_or(available, |r| r.min(available));
        let end = start + take;
        let Some(chunk) = buf.get_mut(start..end) else {
            return Ok((0, None));
        };
        partial.push(chunk);
        if !partial.is_complete() {
            partial.validate_utf8_so_far()?;
            return Ok((end, None));
        }
        match self.message.take() {
            Some(partial) => Ok((end, Some(partial.finish()?))),
            None => Ok((end, None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::MAX_HEADER_LEN;
    use super::*;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// An owned copy of an `Incoming`, to compare results across feeding strategies.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Item {
        Text(String, bool),
        Binary(Vec<u8>, bool),
        Ping(Vec<u8>),
        Pong(Vec<u8>),
        Close(Option<(u16, String)>),
        /// `text`, the compressed body, borrowed.
        Compressed(bool, Vec<u8>, bool),
    }

    impl Item {
        /// The item, with its `borrowed` flag cleared for strategy-independent comparison.
        fn content(&self) -> Item {
            match self {
                Item::Text(t, _) => Item::Text(t.clone(), false),
                Item::Binary(b, _) => Item::Binary(b.clone(), false),
                Item::Compressed(t, b, _) => Item::Compressed(*t, b.clone(), false),
                other => other.clone(),
            }
        }
    }

    fn own(item: Incoming<'_>) -> Item {
        match item {
            Incoming::Text(t) => {
                let borrowed = matches!(t, Cow::Borrowed(_));
                Item::Text(t.into_owned(), borrowed)
            }
            Incoming::Binary(b) => {
                let borrowed = matches!(b, Cow::Borrowed(_));
                Item::Binary(b.into_owned(), borrowed)
            }
            Incoming::Ping(p) => Item::Ping(p.to_vec()),
            Incoming::Pong(p) => Item::Pong(p.to_vec()),
            Incoming::Close(c) => Item::Close(c.map(|c| (c.code.0, c.reason.to_owned()))),
            Incoming::Compressed { text, body } => {
                let borrowed = matches!(body, Cow::Borrowed(_));
                Item::Compressed(text, body.into_owned(), borrowed)
            }
        }
    }

    fn frame_with(
        opcode: OpCode,
        fin: bool,
        rsv1: bool,
        payload: &[u8],
        mask: Option<[u8; 4]>,
    ) -> Vec<u8> {
        let header = FrameHeader { fin, rsv1, opcode, mask, payload_len: payload.len() as u64 };
        let mut out = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut out);
        let mut wire = out[..n].to_vec();
        let start = wire.len();
        wire.extend_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(&mut wire[start..], key, 0);
        }
        wire
    }

    /// A masked frame, as a client sends it.
    fn cframe(opcode: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
        frame_with(opcode, fin, false, payload, Some(KEY))
    }

    fn limits(max_message_size: usize, max_frame_size: usize) -> DecoderLimits {
        DecoderLimits { max_message_size, max_frame_size }
    }

    fn server() -> Decoder {
        Decoder::new(Role::Server, DecoderLimits::default())
    }

    #[test]
    fn a_bare_header_reserves_little_of_its_declared_length() {
        let mut dec = Decoder::new(Role::Server, limits(16 << 20, 16 << 20));
        let whole = cframe(OpCode::Binary, true, &vec![7u8; 16 << 20]);
        // The 14-byte header and 10 payload bytes of a 16 MiB frame.
        let items = feed(&mut dec, &mut Vec::new(), &whole[..24]).unwrap();
        assert!(items.is_empty());
        let capacity = dec.message.as_ref().map_or(0, |m| m.payload.capacity());
        assert!(capacity <= RESERVE_AHEAD + 10, "reserved {capacity} bytes");
        // The rest still decodes to the whole message.
        let mut pending = Vec::new();
        let items = feed(&mut dec, &mut pending, &whole[24..]).unwrap();
        assert_eq!(items.len(), 1);
    }

    /// Drives the decoder as the reactor does: `pending` is the connection's kept tail;
    /// `chunk` is appended, then decoded until more bytes are needed.
    fn feed(
        dec: &mut Decoder,
        pending: &mut Vec<u8>,
        chunk: &[u8],
    ) -> Result<Vec<Item>, ProtocolError> {
        pending.extend_from_slice(chunk);
        let mut pos = 0;
        let mut items = Vec::new();
        while pos < pending.len() {
            let (used, item) = dec.decode(&mut pending[pos..])?;
            pos += used;
            match item {
                Some(item) => items.push(own(item)),
                None if used == 0 => break,
                None => {}
            }
        }
        pending.drain(..pos);
        assert!(
            pending.len() < MAX_UNCONSUMED,
            "decoder left {} bytes to the caller",
            pending.len()
        );
        Ok(items)
    }

    /// Feeds `wire` in one piece.
    fn decode_all(dec: &mut Decoder, wire: &[u8]) -> Result<Vec<Item>, ProtocolError> {
        let mut pending = Vec::new();
        let items = feed(dec, &mut pending, wire)?;
        assert!(pending.is_empty(), "bytes left over: {pending:?}");
        Ok(items)
    }

    /// Feeds `wire` in pieces of the given sizes (cycled).
    fn decode_in_pieces(
        dec: &mut Decoder,
        wire: &[u8],
        sizes: &[usize],
    ) -> Result<Vec<Item>, ProtocolError> {
        let mut pending = Vec::new();
        let mut items = Vec::new();
        let mut pos = 0;
        for &size in sizes.iter().cycle() {
            if pos >= wire.len() {
                break;
            }
            let end = (pos + size.max(1)).min(wire.len());
            items.extend(feed(dec, &mut pending, &wire[pos..end])?);
            pos = end;
        }
        assert!(pending.is_empty(), "bytes left over: {pending:?}");
        Ok(items)
    }

    fn text(s: &str, borrowed: bool) -> Item {
        Item::Text(s.to_owned(), borrowed)
    }

    // ---- fast path -------------------------------------------------------------------

    #[test]
    fn rfc_masked_hello_is_borrowed() {
        let mut wire = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let mut dec = server();
        let (used, item) = dec.decode(&mut wire).unwrap();
        assert_eq!(used, 11);
        assert_eq!(item, Some(Incoming::Text(Cow::Borrowed("Hello"))));
        assert!(dec.is_idle());
    }

    #[test]
    fn client_reads_rfc_unmasked_hello() {
        let mut wire = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let mut dec = Decoder::new(Role::Client, DecoderLimits::default());
        let (used, item) = dec.decode(&mut wire).unwrap();
        assert_eq!(used, 7);
        assert_eq!(item, Some(Incoming::Text(Cow::Borrowed("Hello"))));
    }

    #[test]
    fn binary_fast_path_is_borrowed() {
        for len in [0usize, 1, 125, 126, 256, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut wire = cframe(OpCode::Binary, true, &payload);
            let total = wire.len();
            let (used, item) = server().decode(&mut wire).unwrap();
            assert_eq!(used, total);
            assert_eq!(item, Some(Incoming::Binary(Cow::Borrowed(&payload[..]))));
        }
    }

    #[test]
    fn rfc_256_and_64k_binary_length_encodings() {
        let payload = vec![0xAB; 256];
        let wire = frame_with(OpCode::Binary, true, false, &payload, None);
        assert_eq!(wire[..4], [0x82, 0x7E, 0x01, 0x00]);
        let mut dec = Decoder::new(Role::Client, DecoderLimits::default());
        assert_eq!(decode_all(&mut dec, &wire), Ok(vec![Item::Binary(payload, true)]));

        let payload = vec![0xCD; 65536];
        let wire = frame_with(OpCode::Binary, true, false, &payload, None);
        assert_eq!(wire[..10], [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(decode_all(&mut dec, &wire), Ok(vec![Item::Binary(payload, true)]));
    }

    #[test]
    fn decode_whole_lends_the_common_frame_unmasked() {
        let mut wire = cframe(OpCode::Text, true, b"Hello");
        wire.extend(cframe(OpCode::Binary, true, &[7; 300]));
        let dec = server();
        let (used, whole) = dec.decode_whole(&mut wire).unwrap().unwrap();
        assert_eq!((used, whole), (11, Whole::Text("Hello")));
        let (used, whole) = dec.decode_whole(&mut wire[11..]).unwrap().unwrap();
        assert_eq!((used, whole), (308, Whole::Binary(&[7; 300][..])));
        // Text that is not all ASCII is checked by simdutf8 instead, and still lent.
        let mut wire = cframe(OpCode::Text, true, "héllo wörld, ünïcode".as_bytes());
        let (_, whole) = dec.decode_whole(&mut wire).unwrap().unwrap();
        assert_eq!(whole, Whole::Text("héllo wörld, ünïcode"));
    }

    #[test]
    fn decode_whole_leaves_anything_else_untouched_for_decode() {
        let partial = cframe(OpCode::Binary, true, b"abcdef")[..9].to_vec();
        let compressed = frame_with(OpCode::Text, true, true, b"x", Some(KEY));
        let unmasked = frame_with(OpCode::Text, true, false, b"x", None);
        let large = cframe(OpCode::Binary, true, &[1; 70_000]);
        for wire in [
            cframe(OpCode::Text, false, b"first"),
            cframe(OpCode::Ping, true, b"p"),
            cframe(OpCode::Close, true, &[3, 232]),
            partial,
            compressed,
            unmasked,
            large,
            Vec::new(),
        ] {
            let mut copy = wire.clone();
            assert_eq!(
                server().decode_whole(&mut copy),
                Ok(None),
                "{:x?}",
                &wire[..2.min(wire.len())]
            );
            assert_eq!(copy, wire, "bytes changed");
        }
        // Over the limits, the general path judges it.
        let mut wire = cframe(OpCode::Binary, true, &[0; 9]);
        assert_eq!(Decoder::new(Role::Server, limits(10, 8)).decode_whole(&mut wire), Ok(None));
        // A client never takes it (its frames are not masked).
        let mut wire = cframe(OpCode::Text, true, b"hi");
        let client = Decoder::new(Role::Client, DecoderLimits::default());
        assert_eq!(client.decode_whole(&mut wire), Ok(None));
        // Nor does a message in progress: the next frame must be its continuation.
        let mut dec = server();
        dec.decode(&mut cframe(OpCode::Text, false, b"first")).unwrap();
        assert_eq!(dec.decode_whole(&mut cframe(OpCode::Text, true, b"x")), Ok(None));
    }

    #[test]
    fn decode_whole_lends_a_clients_plain_frames() {
        let client = Decoder::new(Role::Client, DecoderLimits::default());
        let mut wire = frame_with(OpCode::Text, true, false, b"Hello", None);
        wire.extend(frame_with(OpCode::Binary, true, false, &[7; 300], None));
        wire.extend(frame_with(OpCode::Text, true, false, "ünïcode".as_bytes(), None));
        let (used, whole) = client.decode_whole(&mut wire).unwrap().unwrap();
        assert_eq!((used, whole), (7, Whole::Text("Hello")));
        let (used, whole) = client.decode_whole(&mut wire[7..]).unwrap().unwrap();
        assert_eq!((used, whole), (304, Whole::Binary(&[7; 300][..])));
        let (_, whole) = client.decode_whole(&mut wire[311..]).unwrap().unwrap();
        assert_eq!(whole, Whole::Text("ünïcode"));
        // A 16-bit length cut short, and bad UTF-8, as at a server.
        let mut cut = frame_with(OpCode::Binary, true, false, &[1; 200], None)[..3].to_vec();
        assert_eq!(client.decode_whole(&mut cut), Ok(None));
        let mut bad = frame_with(OpCode::Text, true, false, b"ok \xff", None);
        assert_eq!(client.decode_whole(&mut bad), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn decode_whole_rejects_invalid_utf8() {
        let mut wire = cframe(OpCode::Text, true, b"ok \xff");
        assert_eq!(server().decode_whole(&mut wire), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn fast_path_rejects_invalid_utf8() {
        let mut wire = cframe(OpCode::Text, true, b"ok \xff");
        assert_eq!(server().decode(&mut wire), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn empty_text_message() {
        let mut wire = cframe(OpCode::Text, true, b"");
        let (used, item) = server().decode(&mut wire).unwrap();
        assert_eq!((used, item), (6, Some(Incoming::Text(Cow::Borrowed("")))));
    }

    #[test]
    fn several_frames_in_one_buffer() {
        let mut wire = cframe(OpCode::Text, true, b"one");
        wire.extend(cframe(OpCode::Binary, true, b"two"));
        wire.extend(cframe(OpCode::Ping, true, b"three"));
        assert_eq!(
            decode_all(&mut server(), &wire),
            Ok(vec![
                text("one", true),
                Item::Binary(b"two".to_vec(), true),
                Item::Ping(b"three".to_vec()),
            ])
        );
    }

    // ---- slow path -------------------------------------------------------------------

    #[test]
    fn rfc_fragmented_hello() {
        let mut dec = Decoder::new(Role::Client, DecoderLimits::default());
        let mut first = [0x01, 0x03, 0x48, 0x65, 0x6c];
        assert_eq!(dec.decode(&mut first), Ok((5, None)));
        assert!(!dec.is_idle());
        let mut second = [0x80, 0x02, 0x6c, 0x6f];
        let (used, item) = dec.decode(&mut second).unwrap();
        assert_eq!(used, 4);
        assert_eq!(item, Some(Incoming::Text(Cow::Owned("Hello".to_owned()))));
        assert!(dec.is_idle());
        assert!(dec.message.is_none());
    }

    #[test]
    fn partial_frame_payload_is_taken_and_returned_owned() {
        let payload: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let mut wire = cframe(OpCode::Binary, true, &payload);
        let mut dec = server();
        // Header plus 10 payload bytes: all 18 are taken.
        assert_eq!(dec.decode(&mut wire[..18]), Ok((18, None)));
        assert!(!dec.is_idle());
        // An empty buffer mid-frame: need more.
        assert_eq!(dec.decode(&mut []), Ok((0, None)));
        assert_eq!(dec.decode(&mut wire[18..500]), Ok((482, None)));
        let rest = wire.len() - 500;
        let (used, item) = dec.decode(&mut wire[500..]).unwrap();
        assert_eq!(used, rest);
        assert_eq!(item, Some(Incoming::Binary(Cow::Owned(payload))));
        assert!(dec.is_idle());
    }

    #[test]
    fn payload_bytes_beyond_the_frame_are_left() {
        let mut wire = cframe(OpCode::Binary, true, &[1, 2, 3, 4, 5, 6]);
        wire.extend(cframe(OpCode::Ping, true, b"p"));
        let mut dec = server();
        assert_eq!(dec.decode(&mut wire[..9]), Ok((9, None)));
        let (used, item) = dec.decode(&mut wire[9..]).unwrap();
        assert_eq!(used, 3);
        assert_eq!(item, Some(Incoming::Binary(Cow::Owned(vec![1, 2, 3, 4, 5, 6]))));
        let (used, item) = dec.decode(&mut wire[12..]).unwrap();
        assert_eq!((used, item), (7, Some(Incoming::Ping(b"p"))));
    }

    #[test]
    fn one_byte_at_a_time_equals_whole() {
        let mut wire = cframe(OpCode::Text, true, "héllo wörld €𝄞".as_bytes());
        wire.extend(cframe(OpCode::Text, false, "frag €".as_bytes()));
        wire.extend(cframe(OpCode::Ping, true, b"between"));
        wire.extend(cframe(OpCode::Continuation, false, &[0xE2]));
        wire.extend(cframe(OpCode::Continuation, true, &[0x82, 0xAC, b'!']));
        wire.extend(cframe(OpCode::Binary, true, &[0u8; 300]));
        wire.extend(cframe(OpCode::Close, true, b"\x03\xe8bye"));

        let whole = decode_all(&mut server(), &wire).unwrap();
        assert_eq!(
            whole,
            vec![
                text("héllo wörld €𝄞", true),
                Item::Ping(b"between".to_vec()),
                text("frag €€!", false),
                Item::Binary(vec![0; 300], true),
                Item::Close(Some((1000, "bye".to_owned()))),
            ]
        );
        let mut dec = server();
        let bytewise = decode_in_pieces(&mut dec, &wire, &[1]).unwrap();
        let contents = |items: &[Item]| items.iter().map(Item::content).collect::<Vec<_>>();
        assert_eq!(contents(&bytewise), contents(&whole));
        // Fed a byte at a time, no data frame is ever whole in the buffer.
        assert!(bytewise.iter().all(|i| !matches!(i, Item::Text(_, true) | Item::Binary(_, true))));
        assert!(dec.is_idle());
    }

    #[test]
    fn multibyte_code_point_split_across_fragments() {
        // "€" is E2 82 AC; 𝄞 is F0 9D 84 9E.
        let mut wire = cframe(OpCode::Text, false, &[b'a', 0xE2]);
        wire.extend(cframe(OpCode::Continuation, false, &[0x82]));
        wire.extend(cframe(OpCode::Continuation, false, &[0xAC, 0xF0, 0x9D]));
        wire.extend(cframe(OpCode::Continuation, true, &[0x84, 0x9E]));
        assert_eq!(decode_all(&mut server(), &wire), Ok(vec![text("a€𝄞", false)]));
    }

    #[test]
    fn empty_fragments() {
        let mut wire = cframe(OpCode::Text, false, b"");
        wire.extend(cframe(OpCode::Continuation, false, b""));
        wire.extend(cframe(OpCode::Continuation, true, b""));
        wire.extend(cframe(OpCode::Binary, false, b"x"));
        wire.extend(cframe(OpCode::Continuation, true, b""));
        assert_eq!(
            decode_all(&mut server(), &wire),
            Ok(vec![text("", false), Item::Binary(b"x".to_vec(), false)])
        );
    }

    // ---- UTF-8, fail fast ------------------------------------------------------------

    #[test]
    fn invalid_utf8_in_second_fragment_fails_when_it_arrives() {
        let mut dec = server();
        let mut pending = Vec::new();
        let first = cframe(OpCode::Text, false, "κόσμε".as_bytes());
        assert_eq!(feed(&mut dec, &mut pending, &first), Ok(vec![]));
        let second = cframe(OpCode::Continuation, false, b"abc\xC0\xAFdefghijklmnop");
        // Header (6 bytes) + "abc" + the invalid 0xC0: nothing of the rest yet.
        assert_eq!(feed(&mut dec, &mut pending, &second[..9]), Ok(vec![]));
        assert_eq!(feed(&mut dec, &mut pending, &second[9..10]), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn invalid_utf8_in_first_chunk_of_one_frame_fails_early() {
        let mut payload = b"hello \xED\xA0\x80".to_vec(); // a UTF-16 surrogate: invalid
        payload.extend_from_slice(&[b'x'; 1000]);
        let wire = cframe(OpCode::Text, true, &payload);
        let mut dec = server();
        let mut pending = Vec::new();
        // Header (8 bytes, 16-bit length) + "hello " + ED A0: ED A0 is already invalid.
        assert_eq!(feed(&mut dec, &mut pending, &wire[..16]), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn invalid_prefixes_fail_at_once() {
        // Each of these is invalid as soon as these bytes are seen (Autobahn 6.4.x).
        for bad in [&[0xF4, 0x90][..], &[0xC0], &[0xF5], &[0xE0, 0x80], &[0xFF]] {
            let mut payload = b"ok".to_vec();
            payload.extend_from_slice(bad);
            let mut wire = cframe(OpCode::Text, false, &payload);
            assert_eq!(
                decode_all(&mut server(), &wire[..]),
                Err(ProtocolError::InvalidUtf8),
                "{bad:?}"
            );
            // Also inside a single frame whose end has not arrived.
            wire = cframe(OpCode::Text, true, &[&payload[..], &[b'z'; 50]].concat());
            let cut = 6 + payload.len();
            assert_eq!(
                decode_all(&mut server(), &wire[..cut]),
                Err(ProtocolError::InvalidUtf8),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn incomplete_code_point_waits() {
        // A valid prefix of a code point at the end of a fragment is not an error yet.
        let wire = cframe(OpCode::Text, false, &[b'a', 0xF0, 0x9D, 0x84]);
        let mut dec = server();
        assert_eq!(decode_all(&mut dec, &wire), Ok(vec![]));
        assert!(!dec.is_idle());
    }

    #[test]
    fn incomplete_code_point_at_end_of_message_fails() {
        let mut wire = cframe(OpCode::Text, false, b"abc");
        wire.extend(cframe(OpCode::Continuation, true, &[b'd', 0xE2, 0x82]));
        assert_eq!(decode_all(&mut server(), &wire), Err(ProtocolError::InvalidUtf8));
        // Same in a single frame delivered in pieces.
        let wire = cframe(OpCode::Text, true, &[b'd', 0xE2, 0x82]);
        assert_eq!(decode_in_pieces(&mut server(), &wire, &[7]), Err(ProtocolError::InvalidUtf8));
    }

    /// Reassembly builds its `String` without a second full check (see `string_after`):
    /// every split of a message into fragments and reads must give the same text, and
    /// any corrupted byte must still fail.
    #[test]
    fn reassembled_text_is_exact_at_every_split() {
        let message = "aé€𝄞 κόσμε 𝄞€éz".as_bytes();
        for cut in 0..=message.len() {
            let mut wire = cframe(OpCode::Text, false, &message[..cut]);
            wire.extend(cframe(OpCode::Continuation, true, &message[cut..]));
            for piece in 1..=9 {
                let got = decode_in_pieces(&mut server(), &wire, &[piece]).unwrap();
                let want = std::str::from_utf8(message).unwrap();
                assert_eq!(
                    got.iter().map(Item::content).collect::<Vec<_>>(),
                    vec![text(want, false).content()]
                );
            }
            for bad in 0..message.len() {
                let mut broken = message.to_vec();
                broken[bad] = 0xFF;
                let mut wire = cframe(OpCode::Text, false, &broken[..cut]);
                wire.extend(cframe(OpCode::Continuation, true, &broken[cut..]));
                assert_eq!(
                    decode_in_pieces(&mut server(), &wire, &[3]),
                    Err(ProtocolError::InvalidUtf8),
                    "byte {bad} broken, cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn binary_is_not_validated() {
        let mut wire = cframe(OpCode::Binary, false, &[0xFF, 0xC0]);
        wire.extend(cframe(OpCode::Continuation, true, &[0xED, 0xA0]));
        assert_eq!(
            decode_all(&mut server(), &wire),
            Ok(vec![Item::Binary(vec![0xFF, 0xC0, 0xED, 0xA0], false)])
        );
    }

    // ---- control frames --------------------------------------------------------------

    #[test]
    fn control_frames_interleaved_between_fragments() {
        let mut wire = cframe(OpCode::Text, false, b"Hel");
        wire.extend(cframe(OpCode::Ping, true, b"p1"));
        wire.extend(cframe(OpCode::Continuation, false, b"l"));
        wire.extend(cframe(OpCode::Pong, true, b""));
        wire.extend(cframe(OpCode::Ping, true, b"p2"));
        wire.extend(cframe(OpCode::Continuation, true, b"o"));
        assert_eq!(
            decode_all(&mut server(), &wire),
            Ok(vec![
                Item::Ping(b"p1".to_vec()),
                Item::Pong(vec![]),
                Item::Ping(b"p2".to_vec()),
                text("Hello", false),
            ])
        );
        // A close between fragments is returned too; the message stays in progress.
        let mut wire = cframe(OpCode::Binary, false, b"ab");
        wire.extend(cframe(OpCode::Close, true, b"\x03\xe8"));
        let mut dec = server();
        assert_eq!(decode_all(&mut dec, &wire), Ok(vec![Item::Close(Some((1000, String::new())))]));
        assert!(!dec.is_idle());
    }

    #[test]
    fn partial_control_frame_consumes_nothing() {
        let mut wire = cframe(OpCode::Ping, true, &[7; 125]);
        let mut dec = server();
        for cut in 0..wire.len() {
            assert_eq!(dec.decode(&mut wire[..cut].to_vec()), Ok((0, None)), "cut {cut}");
        }
        let (used, item) = dec.decode(&mut wire).unwrap();
        assert_eq!((used, item), (131, Some(Incoming::Ping(&[7; 125][..]))));
    }

    #[test]
    fn partial_header_consumes_nothing() {
        let payload = vec![1u8; 70000];
        let wire = cframe(OpCode::Binary, true, &payload);
        let mut dec = server();
        for cut in 0..14 {
            assert_eq!(dec.decode(&mut wire[..cut].to_vec()), Ok((0, None)), "cut {cut}");
        }
        assert!(dec.is_idle());
    }

    #[test]
    fn close_payloads() {
        let close = |payload: &[u8]| {
            let wire = cframe(OpCode::Close, true, payload);
            decode_all(&mut server(), &wire)
        };
        assert_eq!(close(b""), Ok(vec![Item::Close(None)]));
        assert_eq!(close(b"\x03"), Err(ProtocolError::InvalidClosePayload));
        assert_eq!(
            close(b"\x03\xe8going"),
            Ok(vec![Item::Close(Some((1000, "going".to_owned())))])
        );
        for code in [1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999] {
            let wire = code.to_be_bytes();
            assert!(matches!(close(&wire).as_deref(), Ok([Item::Close(Some(_))])), "{code}");
        }
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert_eq!(
                close(&code.to_be_bytes()),
                Err(ProtocolError::InvalidCloseCode(code)),
                "{code}"
            );
        }
        assert_eq!(close(b"\x03\xe8\xff"), Err(ProtocolError::InvalidUtf8));
        assert_eq!(
            close("\x03\u{e8}".as_bytes()).unwrap_err(),
            ProtocolError::InvalidCloseCode(0x03c3)
        );
    }

    #[test]
    fn close_payload_encoding() {
        let mut out = [0u8; MAX_CONTROL_PAYLOAD];
        let n = encode_close_payload(CloseCode::NORMAL, "bye", &mut out);
        assert_eq!(&out[..n], b"\x03\xe8bye");
        assert_eq!(
            CloseFrame::parse(&out[..n]),
            Ok(Some(CloseFrame { code: CloseCode::NORMAL, reason: "bye" }))
        );
        // A long reason is cut to fit, at a character boundary.
        let long = "€".repeat(60); // 180 bytes
        let n = encode_close_payload(CloseCode::POLICY, &long, &mut out);
        assert_eq!(n, 2 + 123);
        let parsed = CloseFrame::parse(&out[..n]).unwrap().unwrap();
        assert_eq!(parsed.reason, "€".repeat(41));
        let n = encode_close_payload(CloseCode::TOO_BIG, "", &mut out);
        assert_eq!(&out[..n], b"\x03\xf1");
    }

    // ---- protocol errors -------------------------------------------------------------

    #[test]
    fn masking_by_role() {
        let unmasked = frame_with(OpCode::Text, true, false, b"hi", None);
        assert_eq!(decode_all(&mut server(), &unmasked), Err(ProtocolError::UnmaskedFrame));
        let unmasked_ping = frame_with(OpCode::Ping, true, false, b"", None);
        assert_eq!(decode_all(&mut server(), &unmasked_ping), Err(ProtocolError::UnmaskedFrame));
        let mut client = Decoder::new(Role::Client, DecoderLimits::default());
        assert_eq!(
            decode_all(&mut client, &cframe(OpCode::Binary, true, b"hi")),
            Err(ProtocolError::MaskedFrame)
        );
        // The role is checked from the header alone, before any payload arrives.
        let big = cframe(OpCode::Binary, true, &[0; 1000]);
        let mut client = Decoder::new(Role::Client, DecoderLimits::default());
        assert_eq!(client.decode(&mut big[..8].to_vec()), Err(ProtocolError::MaskedFrame));
    }

    #[test]
    fn fragmentation_order() {
        assert_eq!(
            decode_all(&mut server(), &cframe(OpCode::Continuation, true, b"x")),
            Err(ProtocolError::UnexpectedContinuation)
        );
        // After a complete fragmented message, a continuation is unexpected again.
        let mut wire = cframe(OpCode::Text, false, b"a");
        wire.extend(cframe(OpCode::Continuation, true, b"b"));
        wire.extend(cframe(OpCode::Continuation, true, b"c"));
        assert_eq!(decode_all(&mut server(), &wire), Err(ProtocolError::UnexpectedContinuation));
        for second in [OpCode::Text, OpCode::Binary] {
            for fin in [false, true] {
                let mut wire = cframe(OpCode::Binary, false, b"a");
                wire.extend(cframe(second, fin, b"b"));
                assert_eq!(
                    decode_all(&mut server(), &wire),
                    Err(ProtocolError::ExpectedContinuation)
                );
            }
        }
    }

    #[test]
    fn header_errors_pass_through() {
        let mut wire = frame_with(OpCode::Text, true, true, b"x", Some(KEY));
        assert_eq!(server().decode(&mut wire), Err(ProtocolError::ReservedBits));
        let mut wire = cframe(OpCode::Text, true, b"x");
        wire[0] = 0x83;
        assert_eq!(server().decode(&mut wire), Err(ProtocolError::UnknownOpcode(3)));
        let mut wire = cframe(OpCode::Ping, true, b"x");
        wire[0] = 0x09;
        assert_eq!(server().decode(&mut wire), Err(ProtocolError::FragmentedControl));
        let mut wire = [0x89, 0xFE, 0, 126];
        assert_eq!(server().decode(&mut wire), Err(ProtocolError::ControlTooLong));
        let mut wire = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        assert_eq!(server().decode(&mut wire), Err(ProtocolError::InvalidLength));
    }

    #[test]
    fn rsv1_on_continuation_is_refused() {
        // Structure for permessage-deflate: RSV1 only ever belongs on a first frame.
        let mut dec = server();
        dec.set_compression(true);
        let mut wire = cframe(OpCode::Binary, false, b"a");
        wire.extend(frame_with(OpCode::Continuation, true, true, b"b", Some(KEY)));
        assert_eq!(decode_all(&mut dec, &wire), Err(ProtocolError::ReservedBits));
    }

    // ---- permessage-deflate (RFC 7692 §6.1) -----------------------------------------

    /// RFC 7692 §7.2.3.1: "Hello", compressed.
    const HELLO_DEFLATED: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

    fn compressing_server() -> Decoder {
        let mut dec = server();
        dec.set_compression(true);
        dec
    }

    /// A masked client frame with RSV1 set.
    fn zframe(opcode: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
        frame_with(opcode, fin, true, payload, Some(KEY))
    }

    #[test]
    fn rfc_compressed_hello_frame() {
        // §7.2.3.1's unmasked frame, read by a client.
        let mut wire = [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        let mut dec = Decoder::new(Role::Client, DecoderLimits::default());
        assert_eq!(dec.decode(&mut wire), Err(ProtocolError::ReservedBits));
        dec.set_compression(true);
        let (used, item) = dec.decode(&mut wire).unwrap();
        assert_eq!(used, 9);
        assert_eq!(
            item,
            Some(Incoming::Compressed { text: true, body: Cow::Borrowed(&HELLO_DEFLATED[..]) })
        );
        // The body inflates to the text.
        let mut inflater = super::super::deflate::Inflater::new(15, false);
        let mut out = Vec::new();
        inflater.decompress(&HELLO_DEFLATED, 100, &mut out).unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn compressed_fast_path_is_borrowed_and_not_utf8_checked() {
        // Compressed bytes are rarely UTF-8; they are the inflater's to judge.
        let body = [0xff, 0xfe, 0x00, 0xc0];
        for (opcode, text) in [(OpCode::Text, true), (OpCode::Binary, false)] {
            let wire = zframe(opcode, true, &body);
            assert_eq!(
                decode_all(&mut compressing_server(), &wire),
                Ok(vec![Item::Compressed(text, body.to_vec(), true)])
            );
        }
    }

    #[test]
    fn compressed_message_fragmented_and_in_pieces() {
        // "Hello" deflated, split over three frames (RSV1 on the first only, §6.1),
        // with a ping between fragments.
        let mut wire = zframe(OpCode::Text, false, &HELLO_DEFLATED[..2]);
        wire.extend(cframe(OpCode::Ping, true, b"p"));
        wire.extend(cframe(OpCode::Continuation, false, &HELLO_DEFLATED[2..5]));
        wire.extend(cframe(OpCode::Continuation, true, &HELLO_DEFLATED[5..]));
        // Then an uncompressed message: RSV1 clear means not compressed (§6).
        wire.extend(cframe(OpCode::Text, true, b"plain"));
        let expected = vec![
            Item::Ping(b"p".to_vec()),
            Item::Compressed(true, HELLO_DEFLATED.to_vec(), false),
            text("plain", true),
        ];
        let mut dec = compressing_server();
        assert_eq!(decode_all(&mut dec, &wire), Ok(expected.clone()));
        assert!(dec.is_idle());
        let contents = |items: &[Item]| items.iter().map(Item::content).collect::<Vec<_>>();
        for size in [1, 2, 5, 7] {
            let mut dec = compressing_server();
            let items = decode_in_pieces(&mut dec, &wire, &[size]).unwrap();
            assert_eq!(contents(&items), contents(&expected), "pieces of {size}");
        }
        // A single compressed frame that arrives in pieces is returned owned.
        let wire = zframe(OpCode::Binary, true, &HELLO_DEFLATED);
        assert_eq!(
            decode_in_pieces(&mut compressing_server(), &wire, &[4]),
            Ok(vec![Item::Compressed(false, HELLO_DEFLATED.to_vec(), false)])
        );
    }

    #[test]
    fn rsv1_only_on_a_first_data_frame() {
        // On a continuation.
        let mut wire = zframe(OpCode::Text, false, b"a");
        wire.extend(zframe(OpCode::Continuation, true, b"b"));
        assert_eq!(decode_all(&mut compressing_server(), &wire), Err(ProtocolError::ReservedBits));
        // On control frames, alone or between fragments.
        for opcode in [OpCode::Ping, OpCode::Pong, OpCode::Close] {
            let wire = zframe(opcode, true, b"");
            assert_eq!(
                decode_all(&mut compressing_server(), &wire),
                Err(ProtocolError::ReservedBits),
                "{opcode:?}"
            );
            let mut wire = zframe(OpCode::Binary, false, b"a");
            wire.extend(zframe(opcode, true, b""));
            assert_eq!(
                decode_all(&mut compressing_server(), &wire),
                Err(ProtocolError::ReservedBits),
                "{opcode:?}"
            );
        }
        // Without compression, RSV1 is refused on a first frame too, and turning it off
        // again restores that.
        let wire = zframe(OpCode::Text, true, &HELLO_DEFLATED);
        assert_eq!(decode_all(&mut server(), &wire), Err(ProtocolError::ReservedBits));
        let mut dec = compressing_server();
        dec.set_compression(false);
        assert_eq!(decode_all(&mut dec, &wire), Err(ProtocolError::ReservedBits));
    }

    #[test]
    fn limits_apply_to_compressed_bytes() {
        let mut dec = Decoder::new(Role::Server, limits(10, 8));
        dec.set_compression(true);
        let wire = zframe(OpCode::Binary, true, &[0; 9]);
        assert_eq!(dec.decode(&mut wire[..6].to_vec()), Err(ProtocolError::FrameTooLarge));
        let mut dec = Decoder::new(Role::Server, limits(10, 8));
        dec.set_compression(true);
        let mut wire = zframe(OpCode::Binary, false, &[0; 6]);
        wire.extend(cframe(OpCode::Continuation, true, &[0; 5]));
        assert_eq!(decode_all(&mut dec, &wire), Err(ProtocolError::MessageTooLarge));
        // At the limit, fine: the inflater bounds what it inflates to.
        let mut dec = Decoder::new(Role::Server, limits(10, 8));
        dec.set_compression(true);
        let mut wire = zframe(OpCode::Binary, false, &[1; 5]);
        wire.extend(cframe(OpCode::Continuation, true, &[2; 5]));
        let body = [[1u8; 5], [2; 5]].concat();
        assert_eq!(decode_all(&mut dec, &wire), Ok(vec![Item::Compressed(false, body, false)]));
    }

    // ---- limits ----------------------------------------------------------------------

    #[test]
    fn frame_too_large_at_header_time() {
        let mut dec = Decoder::new(Role::Server, limits(1 << 20, 100));
        let ok = cframe(OpCode::Binary, true, &[0; 100]);
        assert_eq!(decode_all(&mut dec, &ok), Ok(vec![Item::Binary(vec![0; 100], true)]));
        let big = cframe(OpCode::Binary, true, &[0; 101]);
        // The header alone is enough to refuse it.
        assert_eq!(dec.decode(&mut big[..8].to_vec()), Err(ProtocolError::FrameTooLarge));
        let mut dec = Decoder::new(Role::Server, limits(1 << 20, 10));
        let ping = cframe(OpCode::Ping, true, &[0; 11]);
        assert_eq!(dec.decode(&mut ping[..6].to_vec()), Err(ProtocolError::FrameTooLarge));
        // A declared 2^62-byte frame is refused, not reserved.
        let mut huge = [0x82, 0xFF, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        assert_eq!(server().decode(&mut huge), Err(ProtocolError::FrameTooLarge));
    }

    #[test]
    fn message_too_large_at_header_time() {
        let mut dec = Decoder::new(Role::Server, limits(10, 100));
        let big = cframe(OpCode::Text, true, &[b'a'; 11]);
        assert_eq!(dec.decode(&mut big[..6].to_vec()), Err(ProtocolError::MessageTooLarge));

        let mut dec = Decoder::new(Role::Server, limits(10, 100));
        let mut pending = Vec::new();
        let first = cframe(OpCode::Text, false, b"12345");
        let second = cframe(OpCode::Continuation, false, b"6789");
        assert_eq!(feed(&mut dec, &mut pending, &first), Ok(vec![]));
        assert_eq!(feed(&mut dec, &mut pending, &second), Ok(vec![]));
        let third = cframe(OpCode::Continuation, true, b"01");
        assert_eq!(feed(&mut dec, &mut pending, &third[..6]), Err(ProtocolError::MessageTooLarge));

        // Exactly at the limit is fine.
        let mut dec = Decoder::new(Role::Server, limits(10, 100));
        let mut wire = cframe(OpCode::Text, false, b"12345");
        wire.extend(cframe(OpCode::Continuation, true, b"67890"));
        assert_eq!(decode_all(&mut dec, &wire), Ok(vec![text("1234567890", false)]));
    }

    #[test]
    fn the_small_frame_path_decodes_every_length_and_keeps_the_checks() {
        // Every 7-bit length and some 16-bit ones, whole and byte by byte (the general
        // path for the pieces).
        for len in (0..=300).chain([1024, 4096]) {
            let payload: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let wire = cframe(OpCode::Text, true, &payload);
            let text = String::from_utf8(payload.clone()).unwrap();
            // Whole, it is borrowed from the input.
            let whole = feed(&mut server(), &mut Vec::new(), &wire).unwrap();
            assert_eq!(whole, vec![Item::Text(text.clone(), true)]);
            let (mut dec, mut pending) = (server(), Vec::new());
            let mut items = Vec::new();
            for byte in &wire {
                items.extend(feed(&mut dec, &mut pending, std::slice::from_ref(byte)).unwrap());
            }
            let Some(Item::Text(pieced, _)) = items.pop() else { panic!("no message") };
            assert_eq!((pieced, items.len()), (text, 0));
        }
        // Limits, UTF-8 and the role still apply to frames that would take the fast path.
        let mut dec = Decoder::new(Role::Server, limits(10, 8));
        let err = feed(&mut dec, &mut Vec::new(), &cframe(OpCode::Binary, true, &[0; 9]));
        assert_eq!(err, Err(ProtocolError::FrameTooLarge));
        let err = feed(&mut server(), &mut Vec::new(), &cframe(OpCode::Text, true, &[0xff]));
        assert_eq!(err, Err(ProtocolError::InvalidUtf8));
        let mut client = Decoder::new(Role::Client, DecoderLimits::default());
        let err = feed(&mut client, &mut Vec::new(), &cframe(OpCode::Text, true, b"hi"));
        assert_eq!(err, Err(ProtocolError::MaskedFrame));
    }

    #[test]
    fn assembly_buffer_never_exceeds_the_limit() {
        let max = 1000;
        let mut dec = Decoder::new(Role::Server, limits(max, max));
        let mut pending = Vec::new();
        let mut sent = 0;
        feed(&mut dec, &mut pending, &cframe(OpCode::Binary, false, &[1; 7])).unwrap();
        sent += 7;
        while sent + 7 < max {
            feed(&mut dec, &mut pending, &cframe(OpCode::Continuation, false, &[1; 7])).unwrap();
            sent += 7;
            let capacity = dec.message.as_ref().map_or(0, |m| m.payload.capacity());
            assert!(capacity <= max, "capacity {capacity}");
        }
        let last = cframe(OpCode::Continuation, true, &[1; 1]);
        let items = feed(&mut dec, &mut pending, &last).unwrap();
        assert_eq!(items, vec![Item::Binary(vec![1; sent + 1], false)]);
        assert!(dec.is_idle());
    }

    #[test]
    fn a_frame_longer_than_the_read_ahead_stays_within_the_limit() {
        // Caught by the `frame_decoder` fuzz target's memory bound: a frame over
        // RESERVE_AHEAD bytes grew the buffer by doubling past a limit that is not a
        // power of two.
        let max = 100_000;
        let mut dec = Decoder::new(Role::Server, limits(max, max));
        let wire = cframe(OpCode::Binary, true, &vec![3; max]);
        let mut pending = Vec::new();
        let mut items = Vec::new();
        for piece in wire.chunks(1000) {
            items.extend(feed(&mut dec, &mut pending, piece).unwrap());
            let capacity = dec.message.as_ref().map_or(0, |m| m.payload.capacity());
            assert!(capacity <= max, "capacity {capacity} over the {max}-byte limit");
        }
        assert_eq!(items, vec![Item::Binary(vec![3; max], false)]);
    }

    #[test]
    fn single_frame_in_pieces_reserves_once() {
        let wire = cframe(OpCode::Binary, true, &[5; 4096]);
        let mut dec = server();
        let mut pending = Vec::new();
        feed(&mut dec, &mut pending, &wire[..100]).unwrap();
        let capacity = dec.message.as_ref().map(|m| m.payload.capacity());
        assert_eq!(capacity, Some(4096));
    }

    #[test]
    fn idle_after_each_message() {
        let mut dec = server();
        assert!(dec.is_idle());
        let wire = cframe(OpCode::Text, true, b"hello there");
        let items = decode_in_pieces(&mut dec, &wire, &[3]).unwrap();
        assert_eq!(items, vec![text("hello there", false)]);
        assert!(dec.is_idle());
        assert!(dec.message.is_none());
    }

    #[test]
    fn decoder_is_small() {
        // Every connection holds one, idle or not.
        assert!(std::mem::size_of::<Decoder>() <= 32, "{}", std::mem::size_of::<Decoder>());
    }

    // ---- random splits ---------------------------------------------------------------

    /// A small deterministic generator (Knuth's MMIX LCG), so no test crate is needed.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            self.0 >> 33
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// A stream of mixed frames and the messages it should decode to.
    fn mixed_stream(rng: &mut Lcg) -> (Vec<u8>, Vec<Item>) {
        const WORDS: [&str; 6] = ["hello", "κόσμε", "€", "𝄞 music", "", "plain ascii text "];
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        let mut key = || {
            let k = rng.next().to_le_bytes();
            Some([k[0], k[1], k[2], k[3]])
        };
        for i in 0..40 {
            match i % 6 {
                0 => {
                    let s = WORDS[i % WORDS.len()].repeat(1 + i);
                    wire.extend(frame_with(OpCode::Text, true, false, s.as_bytes(), key()));
                    expected.push(text(&s, false));
                }
                1 => {
                    let b: Vec<u8> = (0..i * 37).map(|j| (j * 13 + i) as u8).collect();
                    wire.extend(frame_with(OpCode::Binary, true, false, &b, key()));
                    expected.push(Item::Binary(b, false));
                }
                2 => {
                    // Fragmented text, cut at arbitrary byte positions (inside code
                    // points too), with control frames between fragments.
                    let s = format!("{}-{i}-{}", WORDS[1].repeat(i), WORDS[3]);
                    let bytes = s.as_bytes();
                    let cuts = [bytes.len() / 3, bytes.len() / 3 + 1, bytes.len() * 2 / 3];
                    let mut start = 0;
                    for (n, &cut) in cuts.iter().chain([bytes.len()].iter()).enumerate() {
                        let opcode = if n == 0 { OpCode::Text } else { OpCode::Continuation };
                        let fin = cut == bytes.len();
                        wire.extend(frame_with(opcode, fin, false, &bytes[start..cut], key()));
                        start = cut;
                        if !fin {
                            wire.extend(frame_with(OpCode::Ping, true, false, &[n as u8], key()));
                            expected.push(Item::Ping(vec![n as u8]));
                        }
                    }
                    expected.push(text(&s, false));
                }
                3 => {
                    let p = vec![i as u8; i * 3 % 126];
                    wire.extend(frame_with(OpCode::Pong, true, false, &p, key()));
                    expected.push(Item::Pong(p));
                }
                4 => {
                    let b: Vec<u8> = (0..300 + i).map(|j| j as u8).collect();
                    wire.extend(frame_with(OpCode::Binary, false, false, &b[..100], key()));
                    wire.extend(frame_with(OpCode::Continuation, false, false, &[], key()));
                    wire.extend(frame_with(OpCode::Continuation, true, false, &b[100..], key()));
                    expected.push(Item::Binary(b, false));
                }
                _ => {
                    let reason = format!("reason {i} ✓");
                    let mut out = [0u8; MAX_CONTROL_PAYLOAD];
                    let n = encode_close_payload(CloseCode(3000 + i as u16), &reason, &mut out);
                    wire.extend(frame_with(OpCode::Close, true, false, &out[..n], key()));
                    expected.push(Item::Close(Some((3000 + i as u16, reason))));
                }
            }
        }
        (wire, expected)
    }

    #[test]
    fn random_splits_match_whole_buffer() {
        let mut rng = Lcg(0x5eed);
        let (wire, expected) = mixed_stream(&mut rng);
        let whole = decode_all(&mut server(), &wire).unwrap();
        let contents = |items: &[Item]| items.iter().map(Item::content).collect::<Vec<_>>();
        assert_eq!(contents(&whole), expected);

        for round in 0..200 {
            let mut dec = server();
            let mut pending = Vec::new();
            let mut items = Vec::new();
            let mut pos = 0;
            while pos < wire.len() {
                // Mostly small pieces, sometimes large ones.
                let size = match rng.below(4) {
                    0 => 1 + rng.below(3),
                    1 | 2 => 1 + rng.below(40),
                    _ => 1 + rng.below(2000),
                };
                let end = (pos + size).min(wire.len());
                items.extend(feed(&mut dec, &mut pending, &wire[pos..end]).unwrap());
                pos = end;
            }
            assert!(pending.is_empty(), "round {round}");
            assert!(dec.is_idle(), "round {round}");
            assert_eq!(contents(&items), expected, "round {round}");
        }
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut rng = Lcg(42);
        for _ in 0..2000 {
            let len = rng.below(64);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            for (role, compression) in [
                (Role::Server, false),
                (Role::Client, false),
                (Role::Server, true),
                (Role::Client, true),
            ] {
                let mut dec = Decoder::new(role, limits(64, 32));
                dec.set_compression(compression);
                let mut pos = 0;
                while pos < bytes.len() {
                    match dec.decode(&mut bytes[pos..]) {
                        Ok((0, _)) | Err(_) => break,
                        Ok((used, _)) => pos += used,
                    }
                }
            }
        }
    }
}

//! `frame_decoder`: `protocol::message::Decoder`, both roles, with and without
//! permessage-deflate's RSV1, fed the same bytes whole and split at random points.
//!
//! Input: 4 settings bytes, then the byte stream from the peer.
//! - byte 0: bit 0 = client role (else server), bit 1 = compression negotiated;
//! - byte 1: low nibble picks `max_frame_size`, high nibble `max_message_size` from
//!   [`LIMITS`];
//! - bytes 2–3: the split: bits 0–2 of byte 2 pick the largest chunk from [`CHUNKS`],
//!   the rest seeds the chunk sizes.
//!
//! Checked on every call:
//! - no panic (debug assertions on: the decoder's own UTF-8 promise is checked too);
//! - errors map to 1002, 1007 or 1009, are codes a peer may receive, and fit the role;
//! - every message obeys the limits; text is UTF-8; pings, pongs and close frames fit a
//!   control frame; close codes are valid on the wire; RSV1 only when negotiated;
//! - what is left unconsumed is never more than `MAX_UNCONSUMED` bytes;
//! - the decoder never holds, nor reaches during a call, more heap than
//!   `max_message_size` (nor more than twice the bytes fed plus the read-ahead
//!   reservation) plus [`SLACK`];
//! - the split run produces the same messages and the same end (error or leftover) as
//!   the whole run.

use wsloop::protocol::ProtocolError;
use wsloop::protocol::frame::MAX_CONTROL_PAYLOAD;
use wsloop::protocol::message::{Decoder, DecoderLimits, Incoming, MAX_UNCONSUMED, Role};

use crate::alloc;
use crate::input::{Digest, Rng, pick, settings};

/// The frame and message size limits a nibble can pick: the edges of the 7- and 16-bit
/// length encodings, the decoder's 64 KiB read-ahead, and the defaults.
pub const LIMITS: [usize; 16] = [
    0,
    1,
    2,
    3,
    125,
    126,
    127,
    1000,
    4096,
    65535,
    65536,
    65537,
    100_000,
    200_000,
    16 << 20,
    64 << 20,
];

/// The largest chunk a split may feed at once.
pub const CHUNKS: [usize; 8] = [1, 2, 3, 7, 16, 64, 1000, 1 << 20];

/// Heap the decoder may hold beyond its payload: its boxed message state.
pub const SLACK: isize = 256;

/// The most a frame's declared length makes the decoder reserve ahead of its bytes.
const RESERVE_AHEAD: usize = 64 << 10;

/// One decoding session's settings.
#[derive(Debug, Clone, Copy)]
struct Setup {
    role: Role,
    compression: bool,
    limits: DecoderLimits,
}

/// How a run ended, and what it produced on the way.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// Digest of every item, in order.
    digest: u64,
    items: usize,
    end: End,
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    Failed(ProtocolError),
    /// All input consumed but `leftover` bytes; `idle`: no message in progress.
    NeedMore {
        leftover: usize,
        idle: bool,
    },
}

/// Runs one fuzzer input.
pub fn run(data: &[u8]) {
    let Some((&[flags, limits, split_max, split_seed], stream)) = settings::<4>(data) else {
        return;
    };
    let setup = Setup {
        role: if flags & 1 != 0 { Role::Client } else { Role::Server },
        compression: flags & 2 != 0,
        limits: DecoderLimits {
            max_frame_size: pick(&LIMITS, limits & 0x0f),
            max_message_size: pick(&LIMITS, limits >> 4),
        },
    };
    let whole = decode(setup, stream, |rest| rest);
    let largest = pick(&CHUNKS, split_max & 7);
    let mut rng = Rng::new(u64::from(split_max >> 3) << 8 | u64::from(split_seed));
    let split = decode(setup, stream, |rest| rng.size(largest).min(rest));
    assert_eq!(whole, split, "split run differs from whole run ({setup:?})");
}

/// Feeds `stream` to a fresh decoder in chunks of `next_chunk(bytes left)` bytes, the way
/// the reactor does: unconsumed bytes are kept and the next chunk appended to them.
fn decode(setup: Setup, stream: &[u8], mut next_chunk: impl FnMut(usize) -> usize) -> Outcome {
    let mut decoder = Decoder::new(setup.role, setup.limits);
    decoder.set_compression(setup.compression);
    // Sized once, so the harness's own buffer never moves the allocation count.
    let mut pending: Vec<u8> = Vec::with_capacity(stream.len());
    let mut digest = Digest::new();
    let mut items = 0;
    let mut fed = 0;
    let mut rest = stream;
    let base = alloc::live();
    while !rest.is_empty() {
        let (chunk, after) = rest.split_at(next_chunk(rest.len()).clamp(1, rest.len()));
        rest = after;
        fed += chunk.len();
        pending.extend_from_slice(chunk);
        let mut pos = 0;
        while pos < pending.len() {
            alloc::reset_peak();
            let result = decoder.decode(&mut pending[pos..]);
            check_memory(&setup, fed, alloc::peak() - base, "during decode");
            let (used, item) = match result {
                Ok(ok) => ok,
                Err(error) => {
                    check_error(&setup, error);
                    return Outcome { digest: digest.value(), items, end: End::Failed(error) };
                }
            };
            if let Some(item) = item {
                assert!(used > 0, "an item from no bytes");
                check_item(&setup, &item);
                record(&mut digest, &item);
                items += 1;
            }
            check_memory(&setup, fed, alloc::live() - base, "between calls");
            if used == 0 {
                break;
            }
            pos += used;
        }
        assert!(pos <= pending.len(), "consumed past the buffer");
        pending.drain(..pos);
        assert!(
            pending.len() <= MAX_UNCONSUMED,
            "{} bytes left unconsumed, over MAX_UNCONSUMED",
            pending.len()
        );
    }
    let end = End::NeedMore { leftover: pending.len(), idle: decoder.is_idle() };
    Outcome { digest: digest.value(), items, end }
}

/// The decoder's heap stays within its limits, and within what the peer actually sent.
fn check_memory(setup: &Setup, fed: usize, held: isize, when: &str) {
    let limit = isize::try_from(setup.limits.max_message_size).unwrap_or(isize::MAX);
    assert!(
        held <= limit.saturating_add(SLACK),
        "decoder holds {held} bytes {when}, over max_message_size {limit} + {SLACK}"
    );
    let sent = isize::try_from(2 * (fed + RESERVE_AHEAD)).unwrap_or(isize::MAX);
    assert!(
        held <= sent.saturating_add(SLACK),
        "decoder holds {held} bytes {when} after {fed} bytes were fed"
    );
}

/// Errors close with a code RFC 6455 lists for them, and fit the role.
fn check_error(setup: &Setup, error: ProtocolError) {
    let code = error.close_code();
    assert!(
        matches!(code.0, 1002 | 1007 | 1009) && code.is_valid_on_wire(),
        "{error:?} closes with {code}"
    );
    match error {
        ProtocolError::UnmaskedFrame => assert_eq!(setup.role, Role::Server),
        ProtocolError::MaskedFrame => assert_eq!(setup.role, Role::Client),
        ProtocolError::InvalidCompressedData => panic!("the decoder does not inflate"),
        _ => {}
    }
}

fn check_item(setup: &Setup, item: &Incoming<'_>) {
    let limits = &setup.limits;
    match item {
        Incoming::Text(text) => {
            assert!(std::str::from_utf8(text.as_bytes()).is_ok(), "text is not UTF-8");
            assert!(text.len() <= limits.max_message_size, "text over max_message_size");
        }
        Incoming::Binary(bytes) => {
            assert!(bytes.len() <= limits.max_message_size, "binary over max_message_size");
        }
        Incoming::Ping(payload) | Incoming::Pong(payload) => {
            assert!(payload.len() <= MAX_CONTROL_PAYLOAD.min(limits.max_frame_size));
        }
        Incoming::Close(close) => {
            if let Some(close) = close {
                assert!(close.code.is_valid_on_wire(), "close code {}", close.code);
                assert!(close.reason.len() <= MAX_CONTROL_PAYLOAD - 2);
                assert!(close.reason.len() + 2 <= limits.max_frame_size);
            }
        }
        Incoming::Compressed { body, .. } => {
            assert!(setup.compression, "compressed message without permessage-deflate");
            assert!(body.len() <= limits.max_message_size, "compressed over max_message_size");
        }
    }
}

/// Adds an item to the digest, whether borrowed or owned.
fn record(digest: &mut Digest, item: &Incoming<'_>) {
    match item {
        Incoming::Text(text) => digest.field(0, text.as_bytes()),
        Incoming::Binary(bytes) => digest.field(1, bytes),
        Incoming::Ping(payload) => digest.field(2, payload),
        Incoming::Pong(payload) => digest.field(3, payload),
        Incoming::Close(None) => digest.field(4, &[]),
        Incoming::Close(Some(close)) => {
            digest.field(5, &close.code.0.to_be_bytes());
            digest.field(5, close.reason.as_bytes());
        }
        Incoming::Compressed { text, body } => {
            digest.field(6 + u8::from(*text), body);
        }
    }
}

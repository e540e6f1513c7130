//! `deflate`: permessage-deflate negotiation on arbitrary header values under both
//! policies, and the inflater with a size cap, against a naive inflater.
//!
//! Input: a mode byte, then
//! - bit 0 clear, **negotiation**: a byte of dedicated window bits (any value, to check
//!   the clamping), then header values separated by `\n`;
//! - bit 0 set, **inflation**: a settings byte (low nibble: the size cap from
//!   [`MAX_SIZES`]; bits 4–5: bytes already in the output buffer; bit 6: spare capacity
//!   in it; bit 7: no context takeover), then messages, each a 2-byte big-endian length
//!   and that many body bytes (or what is left).
//!
//! Checked:
//! - no panic;
//! - an agreement has window bits 8 to 15, honours the policy, and its response header
//!   is itself an offer that negotiates to the same agreement;
//! - inflation never writes more than the cap, never grows the buffer past the cap plus
//!   one byte, leaves the buffer as it was on error, maps errors to 1007 or 1009, holds
//!   at most the cap plus [`INFLATE_SLACK`] of new heap during a call;
//! - against a naive inflater (body and tail in one piece, room past the cap, the context
//!   carried over the same way): a message it inflates within the cap comes out the same,
//!   byte for byte; data invalid before the cap fails 1007; data past the cap fails 1009,
//!   or 1007 when it is invalid too.

use flate2::{Decompress, FlushDecompress, Status};
use wsloop::protocol::ProtocolError;
use wsloop::protocol::deflate::{
    Agreed, DeflatePolicy, Inflater, MAX_WINDOW_BITS, MIN_WINDOW_BITS, negotiate,
};

use crate::alloc;
use crate::input::{pick, settings};

/// The size caps a nibble can pick.
pub const MAX_SIZES: [usize; 8] = [0, 1, 4, 5, 100, 4096, 65536, 1 << 20];

/// Heap an inflate call may take beyond its output: zlib's window and state, should the
/// backend allocate them lazily.
pub const INFLATE_SLACK: isize = 64 << 10;

/// What a sync flush ends with and the receiver appends (RFC 7692 §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Runs one fuzzer input.
pub fn run(data: &[u8]) {
    let Some((&[mode, setting], rest)) = settings::<2>(data) else {
        return;
    };
    if mode & 1 == 0 {
        run_negotiation(setting, rest);
    } else {
        run_inflation(setting, rest);
    }
}

fn run_negotiation(window_bits: u8, text: &[u8]) {
    let text = String::from_utf8_lossy(text);
    let headers: Vec<&str> = text.split('\n').collect();
    for policy in [DeflatePolicy::Shared, DeflatePolicy::Dedicated { window_bits }] {
        if let Ok(Some(agreed)) = negotiate(headers.iter().copied(), &policy) {
            check_agreed(&agreed, &policy);
        }
    }
}

fn check_agreed(agreed: &Agreed, policy: &DeflatePolicy) {
    let bits = MIN_WINDOW_BITS..=MAX_WINDOW_BITS;
    assert!(bits.contains(&agreed.server_max_window_bits), "{agreed:?}");
    assert!(bits.contains(&agreed.client_max_window_bits), "{agreed:?}");
    match *policy {
        DeflatePolicy::Shared => {
            assert!(agreed.server_no_context_takeover && agreed.client_no_context_takeover);
        }
        DeflatePolicy::Dedicated { window_bits } => {
            let ours = window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
            assert!(agreed.server_max_window_bits <= ours, "{agreed:?} under {policy:?}");
        }
    }
    let answer = agreed.response_header();
    // The answer read back as an offer agrees on the same terms and answers itself
    // (whether the client named `server_max_window_bits` is the one thing it cannot say).
    let again = negotiate(std::iter::once(answer.as_str()), policy);
    let Ok(Some(again)) = again else {
        panic!("the answer {answer:?} as an offer: {again:?}");
    };
    let terms = |a: &Agreed| {
        (
            a.server_no_context_takeover,
            a.client_no_context_takeover,
            a.server_max_window_bits,
            a.client_max_window_bits,
        )
    };
    assert_eq!(terms(&again), terms(agreed), "the answer {answer:?} as an offer");
    assert_eq!(again.response_header(), answer);
    let _ = agreed.fits_shared_deflater(1 << agreed.server_max_window_bits);
}

fn run_inflation(setting: u8, mut messages: &[u8]) {
    let max_size = pick(&MAX_SIZES, setting & 0x0f);
    let prefix = usize::from((setting >> 4) & 3);
    let spare = if setting & 0x40 != 0 { 100 } else { 0 };
    let no_context_takeover = setting & 0x80 != 0;
    let mut inflater = Inflater::new(MAX_WINDOW_BITS, no_context_takeover);
    let mut reference = Decompress::new(false);
    while let Some((len, rest)) = messages.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len)).min(rest.len());
        let (body, rest) = rest.split_at(len);
        messages = rest;

        let mut out = Vec::with_capacity(prefix + spare);
        out.extend((0..prefix).map(|i| i as u8));
        let capacity = out.capacity();
        let base = alloc::live();
        alloc::reset_peak();
        let result = inflater.decompress(body, max_size, &mut out);
        let grown = alloc::peak() - base;
        let cap = isize::try_from(max_size).unwrap_or(isize::MAX);
        assert!(grown <= cap + 1 + INFLATE_SLACK, "{grown} bytes of heap for a {max_size} cap");
        assert!(out.capacity() <= capacity.max(prefix + max_size + 1), "buffer grew past the cap");
        assert!(out.iter().take(prefix).copied().eq((0..prefix).map(|i| i as u8)));

        let expected = naive_inflate(&mut reference, body, max_size + 1 + NAIVE_EXTRA_ROOM);
        match &result {
            Ok(()) => assert!(out.len() - prefix <= max_size, "wrote past the cap"),
            Err(error) => {
                assert_eq!(out.len(), prefix, "output left behind on {error:?}");
                let code = error.close_code().0;
                assert!(matches!(
                    (error, code),
                    (ProtocolError::MessageTooLarge, 1009)
                        | (ProtocolError::InvalidCompressedData, 1007)
                ));
            }
        }
        let over = expected.bytes.len() > max_size;
        match (&result, over, expected.end) {
            (Ok(()), false, NaiveEnd::Ended | NaiveEnd::Complete) => {
                assert_eq!(&out[prefix..], &expected.bytes[..], "inflated differently");
            }
            (Err(ProtocolError::InvalidCompressedData), false, NaiveEnd::Invalid)
            | (Err(ProtocolError::MessageTooLarge), true, _) => {}
            // Data both over the cap and invalid may fail either way: which one zlib
            // meets first depends on how much output room it had at each call.
            (Err(ProtocolError::InvalidCompressedData), true, NaiveEnd::Invalid) => {}
            _ => panic!("inflater: {result:?}, naive: {expected:?} (cap {max_size})"),
        }
        // The naive stream restarts when the inflater's does. Where the inflater succeeded
        // both read the same bytes, so their states stay alike.
        if result.is_err() || expected.end == NaiveEnd::Ended || no_context_takeover {
            reference.reset(false);
        }
    }
}

/// Output room the naive inflater has past the cap, to tell data that is only too large
/// from data that is also invalid soon after.
const NAIVE_EXTRA_ROOM: usize = 4096;

/// What the naive inflater made of a message: the bytes it wrote, and why it stopped.
#[derive(Debug)]
struct Naive {
    bytes: Vec<u8>,
    end: NaiveEnd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NaiveEnd {
    /// The body closed the DEFLATE stream (BFINAL).
    Ended,
    /// All input read, the stream still open.
    Complete,
    /// zlib refused the data.
    Invalid,
    /// The room ran out first.
    Full,
}

/// Inflates `body ++ 00 00 ff ff` in one piece into at most `room` bytes, stopping at the
/// end of the DEFLATE stream.
fn naive_inflate(stream: &mut Decompress, body: &[u8], room: usize) -> Naive {
    let mut input = body.to_vec();
    input.extend_from_slice(&TAIL);
    let mut bytes = Vec::new();
    let mut consumed = 0;
    let end = loop {
        if bytes.len() == bytes.capacity() {
            if bytes.len() >= room {
                break NaiveEnd::Full;
            }
            let target = (bytes.len() * 2).clamp(4096, room);
            bytes.reserve_exact(target - bytes.len());
        }
        let before = (stream.total_in(), bytes.len());
        let Ok(status) =
            stream.decompress_vec(&input[consumed..], &mut bytes, FlushDecompress::Sync)
        else {
            break NaiveEnd::Invalid;
        };
        if status == Status::StreamEnd {
            break NaiveEnd::Ended;
        }
        consumed += usize::try_from(stream.total_in() - before.0).unwrap_or(0);
        if consumed == input.len() && bytes.len() < bytes.capacity() {
            break NaiveEnd::Complete;
        }
        if stream.total_in() == before.0
            && bytes.len() == before.1
            && bytes.len() < bytes.capacity()
        {
            // Room to write and input to read, and zlib did neither.
            break NaiveEnd::Invalid;
        }
    };
    Naive { bytes, end }
}

//! Message payloads: a send timestamp and a sequence number, padded to `--size` bytes.
//!
//! Every message carries the time it was (meant to be) sent and its sequence number, so
//! the receiver measures latency from the payload alone, whether the server echoes it or
//! fans it out. The layout depends on `--payload`:
//!
//! - `binary`: timestamp (u64 LE) at 0..8, sequence (u64 LE) at 8..16, random filler.
//! - `text`: 16 hex digits of timestamp, 16 of sequence, then letters: valid UTF-8.
//! - `json`: `{"t":"<16 hex>","s":"<16 hex>","p":"<letters>"}`: a JSON object.

use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use wsloop::protocol::frame::OpCode;

use crate::pattern::Pattern;
use crate::rng::XorShift;

/// What a message looks like on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadKind {
    /// Text frames: hex stamp then letters.
    Text,
    /// Binary frames: little-endian stamp then random bytes.
    Binary,
    /// Text frames holding a JSON object.
    Json,
}

/// What a payload carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Send time (intended send time for rate-driven scenarios), [`crate::clock::now_ns`].
    pub ts: u64,
    /// Sequence number, per connection (echo, rate) or per sender (broadcast).
    pub seq: u64,
}

const JSON_TS: usize = 6; // {"t":"
const JSON_SEQ: usize = JSON_TS + 16 + 7; // ","s":"
const JSON_FILL: usize = JSON_SEQ + 16 + 7; // ","p":"
const HEX: &[u8; 16] = b"0123456789abcdef";

impl PayloadKind {
    /// The smallest payload that holds a stamp.
    pub fn min_size(self) -> usize {
        match self {
            PayloadKind::Binary => 16,
            PayloadKind::Text => 32,
            PayloadKind::Json => JSON_FILL + 2,
        }
    }

    /// The frame opcode for this payload.
    pub fn opcode(self) -> OpCode {
        match self {
            PayloadKind::Binary => OpCode::Binary,
            PayloadKind::Text | PayloadKind::Json => OpCode::Text,
        }
    }

    /// Writes `stamp` into a payload made from this kind's [`Template`].
    ///
    /// `payload` must be at least [`PayloadKind::min_size`] long (templates are).
    pub fn write_stamp(self, payload: &mut [u8], stamp: Stamp) {
        match self {
            PayloadKind::Binary => {
                payload[0..8].copy_from_slice(&stamp.ts.to_le_bytes());
                payload[8..16].copy_from_slice(&stamp.seq.to_le_bytes());
            }
            PayloadKind::Text => {
                write_hex(&mut payload[0..16], stamp.ts);
                write_hex(&mut payload[16..32], stamp.seq);
            }
            PayloadKind::Json => {
                write_hex(&mut payload[JSON_TS..JSON_TS + 16], stamp.ts);
                write_hex(&mut payload[JSON_SEQ..JSON_SEQ + 16], stamp.seq);
            }
        }
    }

    /// Reads the stamp of a received message, text or binary; `None` when it does not
    /// carry one: a message of the other type (the text answer to an `--on-open` login is
    /// not a binary stamp, however long it is), or what [`PayloadKind::read_stamp`] rejects.
    pub fn read_stamp_of(self, text: bool, payload: &[u8]) -> Option<Stamp> {
        let stamped_text = self.opcode() == OpCode::Text;
        if text == stamped_text { self.read_stamp(payload) } else { None }
    }

    /// Reads the stamp of a received payload; `None` when it does not carry one
    /// (too short, or not the layout this kind writes).
    pub fn read_stamp(self, payload: &[u8]) -> Option<Stamp> {
        if payload.len() < self.min_size() {
            return None;
        }
        match self {
            PayloadKind::Binary => {
                let ts = u64::from_le_bytes(payload[0..8].try_into().ok()?);
                let seq = u64::from_le_bytes(payload[8..16].try_into().ok()?);
                Some(Stamp { ts, seq })
            }
            PayloadKind::Text => {
                Some(Stamp { ts: read_hex(&payload[0..16])?, seq: read_hex(&payload[16..32])? })
            }
            PayloadKind::Json => {
                if !payload.starts_with(b"{\"t\":\"") {
                    return None;
                }
                Some(Stamp {
                    ts: read_hex(&payload[JSON_TS..JSON_TS + 16])?,
                    seq: read_hex(&payload[JSON_SEQ..JSON_SEQ + 16])?,
                })
            }
        }
    }
}

fn write_hex(out: &mut [u8], v: u64) {
    for (i, b) in out.iter_mut().enumerate() {
        *b = HEX[((v >> ((15 - i) * 4)) & 0xf) as usize];
    }
}

fn read_hex(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &c| {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        Some((acc << 4) | u64::from(d))
    })
}

/// A payload of the configured size and kind with a zero stamp, copied for every message;
/// or a [`Pattern`] rendered for every message (`--payload-template`, `--payload-file`).
#[derive(Debug, Clone)]
pub struct Template {
    kind: PayloadKind,
    bytes: Vec<u8>,
    pattern: Option<Pattern>,
}

impl Template {
    /// A template of `size` bytes (raised to the kind's minimum).
    pub fn new(kind: PayloadKind, size: usize, rng: &mut XorShift) -> Template {
        let size = size.max(kind.min_size());
        let mut bytes = vec![0u8; size];
        match kind {
            PayloadKind::Binary => rng.fill(&mut bytes[16..]),
            PayloadKind::Text => fill_letters(&mut bytes[32..]),
            PayloadKind::Json => {
                bytes[..JSON_TS].copy_from_slice(b"{\"t\":\"");
                bytes[JSON_TS + 16..JSON_SEQ].copy_from_slice(b"\",\"s\":\"");
                bytes[JSON_SEQ + 16..JSON_FILL].copy_from_slice(b"\",\"p\":\"");
                fill_letters(&mut bytes[JSON_FILL..size - 2]);
                bytes[size - 2..].copy_from_slice(b"\"}");
            }
        }
        let mut t = Template { kind, bytes, pattern: None };
        t.kind.write_stamp(&mut t.bytes, Stamp { ts: 0, seq: 0 });
        t
    }

    /// A template rendering `pattern` for each message, sent as text frames (binary
    /// frames for [`PayloadKind::Binary`]).
    pub fn from_pattern(kind: PayloadKind, pattern: Pattern) -> Template {
        Template { kind, bytes: Vec::new(), pattern: Some(pattern) }
    }

    /// The pattern, when messages are rendered from one.
    pub fn pattern(&self) -> Option<&Pattern> {
        self.pattern.as_ref()
    }

    /// The payload kind.
    pub fn kind(&self) -> PayloadKind {
        self.kind
    }

    /// The template bytes (stamp zeroed).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Payload length in bytes (a pattern's nominal length: see [`Pattern::nominal_len`]).
    pub fn len(&self) -> usize {
        match &self.pattern {
            Some(p) => p.nominal_len(),
            None => self.bytes.len(),
        }
    }

    /// Never true: a template holds at least a stamp, a pattern at least a byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn fill_letters(buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = b'a' + (i % 26) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_kind() {
        let mut rng = XorShift::new(7);
        for kind in [PayloadKind::Binary, PayloadKind::Text, PayloadKind::Json] {
            for size in [0, kind.min_size(), 100, 1024] {
                let t = Template::new(kind, size, &mut rng);
                assert_eq!(t.len(), size.max(kind.min_size()));
                let mut p = t.bytes().to_vec();
                let stamp = Stamp { ts: 0x0123_4567_89ab_cdef, seq: u64::MAX - 3 };
                kind.write_stamp(&mut p, stamp);
                assert_eq!(kind.read_stamp(&p), Some(stamp), "{kind:?} {size}");
                if kind != PayloadKind::Binary {
                    assert!(std::str::from_utf8(&p).is_ok());
                }
                if kind == PayloadKind::Json {
                    let v: serde_json::Value = serde_json::from_slice(&p).expect("valid JSON");
                    assert_eq!(v["s"], "fffffffffffffffc");
                }
            }
        }
    }

    #[test]
    fn foreign_payloads_have_no_stamp() {
        assert_eq!(PayloadKind::Binary.read_stamp(b"short"), None);
        assert_eq!(PayloadKind::Text.read_stamp(b"hello world, this is not hex at all!"), None);
        assert_eq!(PayloadKind::Json.read_stamp(&[b'x'; 80]), None);
        // Any 16 bytes read as a binary stamp, so the message's type decides.
        let hex = [b'0'; 32];
        assert!(PayloadKind::Binary.read_stamp_of(false, &[b'x'; 1200]).is_some());
        assert_eq!(PayloadKind::Binary.read_stamp_of(true, &[b'x'; 1200]), None);
        assert_eq!(PayloadKind::Text.read_stamp_of(false, &hex), None);
        assert!(PayloadKind::Text.read_stamp_of(true, &hex).is_some());
    }
}

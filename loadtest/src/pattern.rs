//! Message text with placeholders: `--payload-template`, `--payload-file` and
//! `--on-open`.
//!
//! Three placeholders are replaced in each message; any other text, braces included, is
//! sent as written (so JSON needs no escaping):
//!
//! - `{stamp}`: the send time and sequence number, as `wsl:` and 32 hex digits. The
//!   generator finds it again anywhere in what comes back, so a server may wrap the
//!   message (a chat server's `{"from":..,"content":"wsl:.."}`) and latency is still
//!   measured.
//! - `{conn}`: the connection's number in the run (0, 1, 2...).
//! - `{n}`: the message's number on its connection (0, 1, 2...).

use std::fmt;

use crate::payload::Stamp;

/// The text a `{stamp}` starts with.
pub const STAMP_MARK: &[u8; 4] = b"wsl:";
/// Bytes a rendered `{stamp}` takes.
pub const STAMP_LEN: usize = STAMP_MARK.len() + 32;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(Vec<u8>),
    Stamp,
    Conn,
    N,
}

/// A parsed message pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pieces: Vec<Piece>,
}

/// A pattern that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    /// The pattern is empty.
    Empty,
    /// Longer than the largest message the generator sends.
    TooLong(usize),
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternError::Empty => f.write_str("a message pattern is empty"),
            PatternError::TooLong(n) => write!(f, "a message pattern of {n} bytes is over 64 MiB"),
        }
    }
}

impl std::error::Error for PatternError {}

const PLACEHOLDERS: [(&[u8], Piece); 3] =
    [(b"{stamp}", Piece::Stamp), (b"{conn}", Piece::Conn), (b"{n}", Piece::N)];

impl Pattern {
    /// Parses `text`.
    ///
    /// # Errors
    /// [`PatternError`] when it is empty or over 64 MiB.
    pub fn parse(text: &[u8]) -> Result<Pattern, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if text.len() > 64 << 20 {
            return Err(PatternError::TooLong(text.len()));
        }
        let mut pieces = Vec::new();
        let mut literal = Vec::new();
        let mut i = 0;
        while i < text.len() {
            let hit = PLACEHOLDERS.iter().find(|(p, _)| text[i..].starts_with(p));
            match hit {
                Some((p, piece)) => {
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(piece.clone());
                    i += p.len();
                }
                None => {
                    literal.push(text[i]);
                    i += 1;
                }
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Pattern { pieces })
    }

    /// Whether messages carry a `{stamp}` (needed to time answers).
    pub fn has_stamp(&self) -> bool {
        self.pieces.contains(&Piece::Stamp)
    }

    /// Appends the message for connection `conn`, its message number `n`, to `out`.
    pub fn render(&self, out: &mut Vec<u8>, stamp: Stamp, conn: usize, n: u64) {
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.extend_from_slice(t),
                Piece::Stamp => {
                    out.extend_from_slice(STAMP_MARK);
                    push_hex(out, stamp.ts);
                    push_hex(out, stamp.seq);
                }
                Piece::Conn => out.extend_from_slice(conn.to_string().as_bytes()),
                Piece::N => out.extend_from_slice(n.to_string().as_bytes()),
            }
        }
    }

    /// The length of a message with one-digit `{conn}` and `{n}`: the nominal size.
    pub fn nominal_len(&self) -> usize {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.len(),
                Piece::Stamp => STAMP_LEN,
                Piece::Conn | Piece::N => 1,
            })
            .sum()
    }
}

fn push_hex(out: &mut Vec<u8>, v: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in 0..16 {
        out.push(HEX[((v >> ((15 - i) * 4)) & 0xf) as usize]);
    }
}

fn hex(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &c| {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        Some((acc << 4) | u64::from(d))
    })
}

/// Finds a rendered `{stamp}` anywhere in `payload`.
pub fn find_stamp(payload: &[u8]) -> Option<Stamp> {
    let mut from = 0;
    while payload.len() >= from + STAMP_LEN {
        let at = payload[from..].windows(STAMP_MARK.len()).position(|w| w == STAMP_MARK)? + from;
        let digits = payload.get(at + STAMP_MARK.len()..at + STAMP_LEN)?;
        if let (Some(ts), Some(seq)) = (hex(&digits[..16]), hex(&digits[16..])) {
            return Some(Stamp { ts, seq });
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_placeholders_and_leaves_json_braces() {
        let p =
            Pattern::parse(br#"{"room":"r{conn}","n":{n},"content":"{stamp}"}"#).expect("valid");
        assert!(p.has_stamp());
        let mut out = Vec::new();
        p.render(&mut out, Stamp { ts: 0xabc, seq: 7 }, 12, 345);
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            r#"{"room":"r12","n":345,"content":"wsl:0000000000000abc0000000000000007"}"#
        );
        assert_eq!(p.nominal_len(), text.len() - 3);
        assert!(!Pattern::parse(b"{\"type\":\"join\"}").expect("valid").has_stamp());
        assert_eq!(Pattern::parse(b""), Err(PatternError::Empty));
    }

    #[test]
    fn finds_a_stamp_wherever_the_server_put_it() {
        let stamp = Stamp { ts: u64::MAX - 1, seq: 42 };
        let p = Pattern::parse(b"{stamp}").expect("valid");
        let mut mine = Vec::new();
        p.render(&mut mine, stamp, 0, 0);
        let mut wrapped = br#"{"type":"message","from":"wsl:nothex","content":""#.to_vec();
        wrapped.extend_from_slice(&mine);
        wrapped.extend_from_slice(b"\"}");
        assert_eq!(find_stamp(&wrapped), Some(stamp));
        assert_eq!(find_stamp(&mine), Some(stamp));
        assert_eq!(find_stamp(b"wsl:0123"), None);
        assert_eq!(find_stamp(b"no stamp in this message at all, none"), None);
        assert_eq!(find_stamp(&mine[..STAMP_LEN - 1]), None);
    }
}

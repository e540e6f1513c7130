//! The envelope every node puts around what it sends through Redis (sans-IO).
//!
//! ```text
//! version u8 (1) | kind u8 | origin node u32 | origin epoch u32 | seq u64 | payload kind u8
//! | kind fields | payload
//! kind fields:  publish:        topic len u16 | topic
//!               publish_except: topic len u16 | topic | except id u128
//!               broadcast:      (none)
//!               send:           target id u128
//!               close:          target id u128 | code u16 | reason len u8 | reason
//! ```
//! All integers are big-endian. `seq` counts per origin and stream (a topic, the broadcast
//! stream, or the direct stream to one node) from 1 within an `epoch` (a random number
//! the origin draws at start, and again whenever it forgets its counters).

use crate::event::{ConnId, Message};
use crate::protocol::CloseCode;

/// The only version this node writes and reads.
pub(crate) const VERSION: u8 = 1;
/// Bytes before the kind fields.
const HEADER: usize = 19;

/// What the envelope asks the receiving node to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    /// Fan `message` out to the local members of `topic` (but `except`).
    Publish { topic: String, except: Option<ConnId> },
    /// Fan it out to every local connection.
    Broadcast,
    /// Send it to one connection of the receiving node.
    Send { to: ConnId },
    /// Close one connection of the receiving node (the message is empty).
    Close { to: ConnId, code: CloseCode, reason: String },
}

/// A decoded envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub(crate) origin: u32,
    pub(crate) epoch: u32,
    pub(crate) seq: u64,
    pub(crate) body: Body,
    pub(crate) message: Message,
}

/// Why an envelope was refused (each is counted as malformed and dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EnvelopeError {
    Version(u8),
    Truncated,
    Kind(u8),
    NotUtf8,
}

/// Who sent it and where it stands in its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) node: u32,
    pub(crate) epoch: u32,
    pub(crate) seq: u64,
}

/// Encodes an envelope for `body` around `message`.
pub(crate) fn encode(origin: Origin, body: &Body, message: &Message) -> Vec<u8> {
    let payload = message.as_bytes();
    let mut out = Vec::with_capacity(HEADER + 48 + payload.len());
    let kind = match body {
        Body::Publish { except: None, .. } => 1,
        Body::Publish { except: Some(_), .. } => 2,
        Body::Broadcast => 3,
        Body::Send { .. } => 4,
        Body::Close { .. } => 5,
    };
    out.extend_from_slice(&[VERSION, kind]);
    out.extend_from_slice(&origin.node.to_be_bytes());
    out.extend_from_slice(&origin.epoch.to_be_bytes());
    out.extend_from_slice(&origin.seq.to_be_bytes());
    out.push(if matches!(message, Message::Text(_)) { 1 } else { 2 });
    match body {
        Body::Publish { topic, except } => {
            // Callers refuse topics over u16::MAX bytes before encoding.
            out.extend_from_slice(&(topic.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
            out.extend_from_slice(&topic.as_bytes()[..topic.len().min(usize::from(u16::MAX))]);
            if let Some(id) = except {
                out.extend_from_slice(&id.as_u128().to_be_bytes());
            }
        }
        Body::Broadcast => {}
        Body::Send { to } => out.extend_from_slice(&to.as_u128().to_be_bytes()),
        Body::Close { to, code, reason } => {
            out.extend_from_slice(&to.as_u128().to_be_bytes());
            out.extend_from_slice(&code.0.to_be_bytes());
            let reason = &reason.as_bytes()[..reason.len().min(123)];
            out.push(reason.len() as u8);
            out.extend_from_slice(reason);
        }
    }
    out.extend_from_slice(payload);
    out
}

/// Reads big-endian fields off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EnvelopeError> {
        if self.0.len() < n {
            return Err(EnvelopeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], EnvelopeError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn id(&mut self) -> Result<ConnId, EnvelopeError> {
        Ok(ConnId::from_raw(u128::from_be_bytes(self.array()?)))
    }

    fn text(&mut self, n: usize) -> Result<String, EnvelopeError> {
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| EnvelopeError::NotUtf8)
    }
}

/// Decodes one envelope; never panics on any input.
pub(crate) fn decode(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
    let mut r = Reader(bytes);
    let [version, kind] = r.array()?;
    if version != VERSION {
        return Err(EnvelopeError::Version(version));
    }
    let origin = u32::from_be_bytes(r.array()?);
    let epoch = u32::from_be_bytes(r.array()?);
    let seq = u64::from_be_bytes(r.array()?);
    let [text] = r.array()?;
    let body = match kind {
        1 | 2 => {
            let len = u16::from_be_bytes(r.array()?);
            let topic = r.text(usize::from(len))?;
            let except = if kind == 2 { Some(r.id()?) } else { None };
            Body::Publish { topic, except }
        }
        3 => Body::Broadcast,
        4 => Body::Send { to: r.id()? },
        5 => {
            let to = r.id()?;
            let code = CloseCode(u16::from_be_bytes(r.array()?));
            let [len] = r.array()?;
            Body::Close { to, code, reason: r.text(usize::from(len))? }
        }
        other => return Err(EnvelopeError::Kind(other)),
    };
    let message = match text {
        1 => Message::Text(r.text(r.0.len())?),
        _ => Message::Binary(r.0.to_vec()),
    };
    Ok(Envelope { origin, epoch, seq, body, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin { node: 0xab_cdef, epoch: 7, seq: 1 << 40 }
    }

    fn round_trip(body: Body, message: Message) {
        let bytes = encode(origin(), &body, &message);
        let o = origin();
        let expected = Envelope { origin: o.node, epoch: o.epoch, seq: o.seq, body, message };
        assert_eq!(decode(&bytes), Ok(expected));
        for cut in 0..bytes.len() {
            // Every truncation is an error or a shorter message, never a panic.
            let _ = decode(&bytes[..cut]);
        }
    }

    #[test]
    fn every_kind_round_trips() {
        let id = ConnId::from_raw(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);
        round_trip(Body::Publish { topic: "room".into(), except: None }, "hé".into());
        round_trip(Body::Publish { topic: String::new(), except: Some(id) }, vec![0u8, 255].into());
        round_trip(Body::Broadcast, Message::Binary(Vec::new()));
        round_trip(Body::Send { to: id }, "direct".into());
        let close = Body::Close { to: id, code: CloseCode(4000), reason: "bye".into() };
        round_trip(close, Message::Binary(Vec::new()));
    }

    #[test]
    fn the_header_is_fixed() {
        let bytes = encode(origin(), &Body::Broadcast, &"x".into());
        assert_eq!(
            bytes[..HEADER],
            [1, 3, 0, 0xab, 0xcd, 0xef, 0, 0, 0, 7, 0, 0, 1, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(&bytes[HEADER..], b"x");
    }

    #[test]
    fn foreign_bytes_are_refused() {
        assert_eq!(decode(b""), Err(EnvelopeError::Truncated));
        assert_eq!(decode(&[2; 40]), Err(EnvelopeError::Version(2)));
        let mut bytes = encode(origin(), &Body::Broadcast, &"x".into());
        bytes[1] = 9;
        assert_eq!(decode(&bytes), Err(EnvelopeError::Kind(9)));
        let mut bytes = encode(origin(), &Body::Broadcast, &"x".into());
        bytes[HEADER] = 0xff;
        assert_eq!(decode(&bytes), Err(EnvelopeError::NotUtf8));
    }
}

//! Frames as shared bytes: server frames encoded once and written to any number of
//! sockets, and masked client frames.

use bytes::{BufMut, Bytes, BytesMut};

use crate::event::{Message, MessageRef};
use crate::protocol::CloseCode;
use crate::protocol::frame::{FIN, FrameHeader, MAX_HEADER_LEN, OpCode, apply_mask};

/// One whole unmasked frame: header and payload in one allocation.
pub(crate) fn frame(opcode: OpCode, payload: &[u8]) -> Bytes {
    let (head, n) = header(opcode, payload.len());
    copied(&head[..n], payload)
}

/// One whole frame masked with `mask` (RFC 6455 §5.3: a client masks every frame).
pub(crate) fn masked_frame(opcode: OpCode, payload: &[u8], mask: [u8; 4]) -> Bytes {
    let header = FrameHeader {
        fin: true,
        rsv1: false,
        opcode,
        mask: Some(mask),
        payload_len: payload.len() as u64,
    };
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut head);
    let mut out = BytesMut::with_capacity(n + payload.len());
    out.put_slice(&head[..n]);
    out.put_slice(payload);
    apply_mask(&mut out[n..], mask, 0);
    out.freeze()
}

/// A whole unmasked frame (from [`frame`] or a compressor) masked with `mask`, for a
/// client connection: the same first byte (FIN, RSV1, opcode), the same length, a key.
pub(crate) fn mask_frame(frame: &[u8], mask: [u8; 4]) -> Bytes {
    let head_len = match frame.get(1).map(|b| b & 0x7f) {
        Some(126) => 4,
        Some(127) => 10,
        _ => 2,
    };
    let (head, payload) = frame.split_at(head_len.min(frame.len()));
    let mut out = BytesMut::with_capacity(frame.len() + 4);
    out.put_slice(head);
    if let Some(len_byte) = out.get_mut(1) {
        *len_byte |= 0x80;
    }
    out.put_slice(&mask);
    let start = out.len();
    out.put_slice(payload);
    apply_mask(&mut out[start..], mask, 0);
    out.freeze()
}

/// The encoded header of a whole unmasked frame, and its length.
fn header(opcode: OpCode, payload_len: usize) -> ([u8; MAX_HEADER_LEN], usize) {
    let header =
        FrameHeader { fin: true, rsv1: false, opcode, mask: None, payload_len: payload_len as u64 };
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut head);
    (head, n)
}

fn copied(head: &[u8], payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(head.len() + payload.len());
    out.put_slice(head);
    out.put_slice(payload);
    out.freeze()
}

/// The length of the frame that carries a payload of `len` bytes.
pub(crate) fn frame_len(len: usize) -> usize {
    FrameHeader::encoded_len(len as u64, false) + len
}

/// A message's opcode and payload, without copying it.
pub(crate) fn into_payload(message: Message) -> (OpCode, Bytes) {
    match message {
        Message::Text(s) => (OpCode::Text, Bytes::from(s)),
        Message::Binary(b) => (OpCode::Binary, Bytes::from(b)),
    }
}

/// The frame carrying a data message.
pub(crate) fn message_frame(message: &Message) -> Bytes {
    match message {
        Message::Text(s) => frame(OpCode::Text, s.as_bytes()),
        Message::Binary(b) => frame(OpCode::Binary, b),
    }
}

/// The frame carrying a data message, built inside the message's own buffer when that
/// has exactly the room for the header (every message the reactor receives does, see
/// [`owned_with_room`]): an echo then allocates nothing, and its buffer is freed by the
/// reactor that allocated it rather than by a worker. Otherwise it is copied.
pub(crate) fn into_frame(message: Message) -> Bytes {
    let (opcode, mut buf) = match message {
        Message::Text(s) => (OpCode::Text, s.into_bytes()),
        Message::Binary(b) => (OpCode::Binary, b),
    };
    let len = buf.len();
    let (head, head_len) = header(opcode, len);
    if buf.capacity() != len + head_len {
        return copied(&head[..head_len], &buf);
    }
    // Within capacity: no reallocation.
    buf.resize(len + head_len, 0);
    buf.copy_within(..len, head_len);
    buf[..head_len].copy_from_slice(&head[..head_len]);
    // Length equals capacity, so `Bytes` takes the buffer without allocating.
    Bytes::from(buf)
}

/// Text copied into a buffer with room for its reply's frame header, so that echoing it
/// ([`into_frame`]) needs no second allocation.
pub(crate) fn text_with_frame_room(text: &str) -> String {
    let mut owned = String::with_capacity(frame_len(text.len()));
    owned.push_str(text);
    owned
}

/// A lent message owned, with room for its reply's frame header, so that echoing it
/// ([`into_frame`]) needs no second allocation.
pub(crate) fn owned_with_room(message: MessageRef<'_>) -> Message {
    owned_in(message, |_| None)
}

/// [`owned_with_room`], copied into the buffer `kept` has for a capacity (a recycled one,
/// src/dispatch/recycled.rs), or into a new one.
pub(crate) fn owned_in(
    message: MessageRef<'_>,
    kept: impl FnOnce(usize) -> Option<Vec<u8>>,
) -> Message {
    match message {
        MessageRef::Text(text) => {
            // From a `str`, the check cannot fail. It scans the bytes again, which only a
            // kept buffer (at most 4 KiB) pays.
            let reused = kept(frame_len(text.len())).and_then(|mut buf| {
                buf.extend_from_slice(text.as_bytes());
                String::from_utf8(buf).ok()
            });
            Message::Text(reused.unwrap_or_else(|| text_with_frame_room(text)))
        }
        MessageRef::Binary(data) => {
            let capacity = frame_len(data.len());
            let mut buf = kept(capacity).unwrap_or_else(|| Vec::with_capacity(capacity));
            buf.extend_from_slice(data);
            Message::Binary(buf)
        }
    }
}

/// Appends the unmasked frame carrying `payload` to `out`.
#[inline]
pub(crate) fn frame_into(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    // The common reply, a payload with a 7-bit length: two header bytes, FIN and the
    // opcode then the length, without the general encoder's cases.
    if let Ok(len @ 0..=125) = u8::try_from(payload.len()) {
        out.reserve(2 + payload.len());
        out.extend_from_slice(&[FIN | opcode.as_u8(), len]);
        out.extend_from_slice(payload);
        return;
    }
    let (head, n) = header(opcode, payload.len());
    let start = out.len();
    out.reserve(MAX_HEADER_LEN + payload.len());
    // The whole array, then cut to the header: a copy of fixed size is a few moves, one
    // of `n` bytes a call to `memcpy`.
    out.extend_from_slice(&head);
    out.truncate(start + n);
    out.extend_from_slice(payload);
}

/// What a frame made here carries, as a message again: a send that could not be
/// queued hands its message back.
pub(crate) fn unframe(frame: &[u8]) -> Message {
    match FrameHeader::parse(frame, true) {
        Ok(Some((header, used))) => {
            let payload = frame.get(used..).unwrap_or_default();
            from_payload(header.opcode, payload)
        }
        _ => Message::Binary(Vec::new()),
    }
}

/// A data message from its opcode and payload.
pub(crate) fn from_payload(opcode: OpCode, payload: &[u8]) -> Message {
    match opcode {
        OpCode::Text => match String::from_utf8(payload.to_vec()) {
            Ok(text) => Message::Text(text),
            Err(e) => Message::Binary(e.into_bytes()),
        },
        _ => Message::Binary(payload.to_vec()),
    }
}

/// A close frame's payload and its length.
pub(crate) fn close_payload(code: Option<CloseCode>, reason: &str) -> ([u8; 125], usize) {
    let mut payload = [0u8; 125];
    let len = match code {
        Some(code) => {
            let reason = &reason.as_bytes()[..reason.len().min(123)];
            payload[..2].copy_from_slice(&code.0.to_be_bytes());
            payload[2..2 + reason.len()].copy_from_slice(reason);
            2 + reason.len()
        }
        None => 0,
    };
    (payload, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_copy_equals_a_frame_masked_from_the_start() {
        for len in [0, 5, 125, 126, 65535, 65536] {
            let payload = vec![7u8; len];
            let key = [1, 2, 3, 4];
            let plain = frame(OpCode::Binary, &payload);
            assert_eq!(mask_frame(&plain, key), masked_frame(OpCode::Binary, &payload, key));
        }
    }

    fn message(text: bool, len: usize) -> Message {
        if text {
            Message::Text("é".repeat(len / 2) + &"x".repeat(len % 2))
        } else {
            Message::Binary((0..len).map(|i| i as u8).collect())
        }
    }

    #[test]
    fn frames_built_in_place_equal_copied_ones() {
        for len in [0, 1, 32, 125, 126, 127, 1000, 0xffff, 0x10000, 200_000] {
            for text in [false, true] {
                let m = message(text, len);
                let copied = message_frame(&m);
                // With exactly the room, as the reactor makes them: built in place.
                let roomy = owned_with_room(m.view());
                let ptr = roomy.as_bytes().as_ptr();
                let in_place = into_frame(roomy);
                assert_eq!(in_place, copied, "len {len}, text {text}");
                assert_eq!(in_place.as_ptr(), ptr, "the message's own buffer, len {len}");
                // Without the room (a user's message): copied, same bytes.
                assert_eq!(into_frame(m.clone()), copied, "len {len}, text {text}");
                assert_eq!(unframe(&copied), m, "round trip, len {len}");
            }
        }
    }

    #[test]
    fn frames_appended_equal_whole_ones() {
        for len in [0, 1, 32, 125, 126, 127, 0xffff, 0x10000] {
            for opcode in [OpCode::Text, OpCode::Binary] {
                let payload = vec![b'x'; len];
                let mut out = b"ahead".to_vec();
                frame_into(&mut out, opcode, &payload);
                assert_eq!(&out[..5], b"ahead");
                assert_eq!(out[5..], frame(opcode, &payload), "len {len}, {opcode:?}");
            }
        }
    }

    #[test]
    fn a_kept_buffer_holds_the_copy() {
        for m in [Message::Text("héllo".into()), Message::Binary(vec![1, 2, 3])] {
            let kept = Vec::with_capacity(frame_len(m.as_bytes().len()));
            let at = kept.as_ptr();
            let owned = owned_in(m.view(), |_| Some(kept));
            assert_eq!((owned.as_bytes().as_ptr(), &owned), (at, &m));
        }
    }

    #[test]
    fn room_is_exactly_one_header() {
        for len in [0, 125, 126, 0xffff, 0x10000] {
            for text in [false, true] {
                let owned = owned_with_room(message(text, len).view());
                let (held, room) = match &owned {
                    Message::Text(s) => (s.len(), s.capacity() - s.len()),
                    Message::Binary(b) => (b.len(), b.capacity() - b.len()),
                };
                assert_eq!(room, frame_len(held) - held, "len {len}, text {text}");
            }
        }
    }
}

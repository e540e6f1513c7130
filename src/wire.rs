//! Server frames as shared bytes, encoded once and written to any number of sockets.

use bytes::{BufMut, Bytes, BytesMut};

use crate::event::Message;
use crate::protocol::CloseCode;
use crate::protocol::frame::{FrameHeader, MAX_HEADER_LEN, OpCode};

/// One whole unmasked frame: header and payload in one allocation.
pub(crate) fn frame(opcode: OpCode, payload: &[u8]) -> Bytes {
    let header = FrameHeader {
        fin: true,
        rsv1: false,
        opcode,
        mask: None,
        payload_len: payload.len() as u64,
    };
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut head);
    let mut out = BytesMut::with_capacity(n + payload.len());
    out.put_slice(&head[..n]);
    out.put_slice(payload);
    out.freeze()
}

/// The length of the frame that carries a payload of `len` bytes.
pub(crate) fn frame_len(len: usize) -> usize {
    let header = match len {
        0..=125 => 2,
        126..=0xffff => 4,
        _ => 10,
    };
    header + len
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

/// A close frame; the reason must already fit (≤ 123 bytes).
pub(crate) fn close_frame(code: Option<CloseCode>, reason: &str) -> Bytes {
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
    frame(OpCode::Close, &payload[..len])
}

//! The streaming decoder: bytes of frames in, messages and control frames out. Sans-IO.
//!
//! CONTRACT (to be implemented; signatures are fixed, the reactor calls them):

use std::borrow::Cow;

use super::{CloseCode, ProtocolError};

/// Which side of the connection this decoder reads for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads client frames: they must be masked.
    Server,
    /// Reads server frames: they must not be masked.
    Client,
}

/// Limits the decoder enforces.
#[derive(Debug, Clone, Copy)]
pub struct DecoderLimits {
    /// Largest message payload (after reassembly), bytes.
    pub max_message_size: usize,
    /// Largest single frame payload, bytes.
    pub max_frame_size: usize,
}

/// A validated close frame payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// The status code.
    pub code: CloseCode,
    /// The UTF-8 reason.
    pub reason: &'a str,
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
}

/// The per-connection decoder state. Holds no buffer while no message is in progress.
#[derive(Debug)]
pub struct Decoder {
    _todo: (),
}

impl Decoder {
    /// A decoder for `role` under `limits`.
    pub fn new(role: Role, limits: DecoderLimits) -> Decoder {
        let _ = (role, limits);
        todo!()
    }

    /// Consumes bytes from the front of `buf`, returning `(used, item)`.
    ///
    /// `(0, None)`: need more bytes; keep `buf` and call again with more appended.
    /// `(n, None)`: consumed part of a message (a fragment, or part of a frame's payload).
    /// `(n, Some(item))`: consumed through the end of a message or control frame.
    /// Unmasks in place, so `buf` is `&mut`.
    pub fn decode<'a>(
        &mut self,
        buf: &'a mut [u8],
    ) -> Result<(usize, Option<Incoming<'a>>), ProtocolError> {
        let _ = buf;
        todo!()
    }

    /// True when no message is in progress (so the connection holds no decoder memory).
    pub fn is_idle(&self) -> bool {
        todo!()
    }
}

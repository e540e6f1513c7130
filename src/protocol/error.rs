//! Protocol errors: what the peer did wrong, and the close code that says so.

use std::fmt;

/// A WebSocket close status code (RFC 6455 §7.4).
///
/// Only the named constants and the ranges 3000–4999 are valid on the wire;
/// [`CloseCode::is_valid_on_wire`] says which a peer may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the server is going down or the browser left the page.
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED: CloseCode = CloseCode(1003);
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection closed without a close frame (never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: message data was not consistent with its type (invalid UTF-8).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: the message violates a policy of the endpoint.
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: a message was too big to process.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting.
    pub const RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later (the server is overloaded).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);

    /// Whether a peer may put this code in a close frame (RFC 6455 §7.4.1, IANA registry).
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The peer broke RFC 6455 (or a configured limit); the connection must be failed
/// with [`ProtocolError::close_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// A client frame arrived without a mask (§5.1: "the server MUST close the connection").
    UnmaskedFrame,
    /// A masked frame arrived at a client (§5.1).
    MaskedFrame,
    /// RSV1/2/3 set without an extension that defines them (§5.2).
    ReservedBits,
    /// An opcode RFC 6455 reserves (§5.2).
    UnknownOpcode(u8),
    /// A control frame with FIN clear (§5.5: "control frames MUST NOT be fragmented").
    FragmentedControl,
    /// A control frame payload over 125 bytes (§5.5).
    ControlTooLong,
    /// A 64-bit length with its most significant bit set (§5.2).
    InvalidLength,
    /// A continuation frame with no message in progress (§5.4).
    UnexpectedContinuation,
    /// A new text/binary frame while a fragmented message is in progress (§5.4).
    ExpectedContinuation,
    /// Text that is not UTF-8, or a close reason that is not (§8.1).
    InvalidUtf8,
    /// A close frame with a 1-byte payload (§5.5.1).
    InvalidClosePayload,
    /// A close code a peer must not send (§7.4).
    InvalidCloseCode(u16),
    /// A frame over the configured `max_frame_size`.
    FrameTooLarge,
    /// A message over the configured `max_message_size`.
    MessageTooLarge,
    /// Compressed data that does not inflate (RFC 7692 §7.2.3.1 → 1007 by our choice).
    InvalidCompressedData,
}

impl ProtocolError {
    /// The close code to fail the connection with.
    pub fn close_code(self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCompressedData => {
                CloseCode::INVALID_PAYLOAD
            }
            ProtocolError::FrameTooLarge | ProtocolError::MessageTooLarge => CloseCode::TOO_BIG,
            _ => CloseCode::PROTOCOL,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ProtocolError::UnmaskedFrame => "client frame not masked",
            ProtocolError::MaskedFrame => "server frame masked",
            ProtocolError::ReservedBits => "reserved bits set",
            ProtocolError::UnknownOpcode(_) => "unknown opcode",
            ProtocolError::FragmentedControl => "fragmented control frame",
            ProtocolError::ControlTooLong => "control frame over 125 bytes",
            ProtocolError::InvalidLength => "invalid 64-bit length",
            ProtocolError::UnexpectedContinuation => "continuation without a message",
            ProtocolError::ExpectedContinuation => "new message inside a fragmented one",
            ProtocolError::InvalidUtf8 => "invalid UTF-8",
            ProtocolError::InvalidClosePayload => "close payload of one byte",
            ProtocolError::InvalidCloseCode(_) => "invalid close code",
            ProtocolError::FrameTooLarge => "frame over max_frame_size",
            ProtocolError::MessageTooLarge => "message over max_message_size",
            ProtocolError::InvalidCompressedData => "invalid compressed data",
        };
        f.write_str(text)
    }
}

impl std::error::Error for ProtocolError {}

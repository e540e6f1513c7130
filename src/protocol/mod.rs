//! The WebSocket protocol as pure state machines: no sockets, no clocks, no threads.
//!
//! Everything here sees bytes in and returns what to do (bytes out, messages, errors),
//! so it is tested byte-in/byte-out next to the code. The reactor owns the IO.
//!
//! - [`handshake`]: the HTTP/1.1 upgrade request (RFC 6455 §4.2) and its responses.
//! - [`client`]: the same handshake from the client's side (§4.1): the request, and the
//!   checks of the server's answer.
//! - [`frame`]: frame headers (RFC 6455 §5.2) and masking.
//! - [`message`]: the streaming decoder: frames → messages, control frames, close payloads.
//! - [`deflate`]: permessage-deflate (RFC 7692): offer negotiation, and the per-message
//!   deflater and inflater with a bound on inflated size.

pub mod client;
pub mod deflate;
pub mod frame;
pub mod handshake;
pub mod message;

mod error;

pub use error::{CloseCode, ProtocolError};

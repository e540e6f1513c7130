//! What a session needs from the world around it, besides bytes and time: a place for its
//! events, the shared count of its buffered bytes, and the server's topic registry.
//!
//! The reactor implements [`Host`] over its dispatcher and liveness table; tests implement
//! it with plain vectors and counters, so a session runs byte-in/byte-out in virtual time.

use crate::event::{DisconnectReason, Message, MessageRef, UserData};
use crate::liveness::Liveness;
use crate::protocol::handshake::Request;
use crate::upgrade::Reject;

/// What a session asks of its surroundings.
pub(crate) trait Host {
    /// Bytes held for this connection: its write queue plus what `Handle`s reserved and
    /// have not handed over yet, each frame counted at its memory cost.
    fn buffered(&self) -> usize;
    /// Adds the cost of a frame the session queued itself.
    fn charge(&mut self, cost: usize);
    /// Frees cost: bytes written, or frames dropped. True when that emptied a count a
    /// producer was watching (see `liveness`): a `Drain` is then owed.
    fn release(&mut self, cost: usize) -> bool;
    /// The socket took `bytes` (counted for the server's statistics).
    fn sent(&mut self, bytes: usize);
    /// Tells other threads what state the connection is in.
    fn set_liveness(&mut self, state: Liveness);
    /// Tells other threads that the connection negotiated compression.
    fn set_compresses(&mut self);
    /// Frames were queued: write them at the end of the turn.
    fn wants_write(&mut self);
    /// The answer to a plain HTTP request (no `Upgrade`) on the WebSocket port, if one of
    /// the server's routes takes it.
    fn http(&mut self, request: &Request) -> Option<Vec<u8>>;
    /// An upgrade was refused (counted by status and cause).
    fn refused(&mut self, rejection: &Reject);
    /// Joins the topics the upgrade hook named; false when a limit refused one (and any
    /// joined are left again).
    fn join_topics(&mut self, topics: &[String]) -> bool;
    /// The handshake is complete: deliver `Connect`.
    fn connect(&mut self, opened: Opened);
    /// A data message arrived.
    fn message(&mut self, message: Message);
    /// A data message arrived whole in the bytes being received: lent, for the handler
    /// to take without a copy when it runs here.
    fn lend_message(&mut self, message: MessageRef<'_>) {
        self.message(crate::wire::owned_with_room(message));
    }
    /// A frame the socket has taken whole: its buffer may hold the next message.
    fn recycle(&mut self, frame: bytes::Bytes) {
        drop(frame);
    }
    /// A write queue that had filled has emptied.
    fn drain(&mut self);
    /// Sends a barrier through the connection's handler; the session is told
    /// ([`Session::barrier_passed`](super::Session::barrier_passed)) once every earlier
    /// event has been handled.
    fn barrier(&mut self);
    /// The connection ended after `Connect`: deliver `Disconnect` (called at most once).
    fn disconnect(&mut self, reason: DisconnectReason);
    /// Counts something for the server's statistics.
    fn count(&mut self, what: Count);
}

/// What a session counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Count {
    /// A data message arrived.
    MessageIn,
    /// A slow consumer was closed with 1008.
    SlowConsumerClosed,
    /// A frame was dropped under `Backpressure::Drop`.
    Dropped,
}

/// What `Connect` carries, as far as the session knows it (the host adds the id and the
/// addresses).
pub(crate) struct Opened {
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) protocol: Option<String>,
    pub(crate) user_data: Option<UserData>,
}

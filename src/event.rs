//! What the server tells the application: connection ids, messages and events.

use std::any::Any;
use std::fmt;
use std::io;
use std::net::SocketAddr;

use crate::protocol::{CloseCode, ProtocolError};

/// Identifies one connection for its whole life, from any thread.
///
/// Encodes the node (24 bits; 0 outside a cluster), the owning reactor (8 bits) and its
/// slot (32 bits), so a command reaches its connection in O(1) on any node, and a 64-bit
/// generation, so an id whose connection has closed
/// never reaches a connection that later reuses the slot. Each reactor counts its
/// accepts; at a million accepts a second a 64-bit count wraps after 584,000 years.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    /// `node << 40 | reactor << 32 | slot`.
    place: u64,
    generation: u64,
}

/// The largest node id a [`ConnId`] can carry (24 bits).
pub const MAX_NODE_ID: u32 = 0xff_ffff;

thread_local! {
    /// The node of the server whose reactor runs on this thread (set once when the
    /// reactor thread starts; 0 elsewhere and outside a cluster).
    static THREAD_NODE: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Makes the ids this thread creates carry `node` (called first thing on a reactor
/// thread, so the reactor need not know about clusters).
pub(crate) fn set_thread_node(node: u32) {
    THREAD_NODE.with(|n| n.set(node & MAX_NODE_ID));
}

impl ConnId {
    pub(crate) fn new(reactor: usize, generation: u64, slot: usize) -> ConnId {
        let node = u64::from(THREAD_NODE.with(|n| n.get()));
        let place = (node << 40) | ((reactor as u64 & 0xff) << 32) | (slot as u64 & 0xffff_ffff);
        ConnId { place, generation }
    }

    /// The node (server process) that owns this connection; 0 outside a cluster.
    pub fn node(self) -> u32 {
        (self.place >> 40) as u32
    }

    /// The index of the reactor thread that owns this connection.
    pub fn reactor(self) -> usize {
        ((self.place >> 32) & 0xff) as usize
    }

    pub(crate) fn generation(self) -> u64 {
        self.generation
    }

    pub(crate) fn slot(self) -> usize {
        (self.place & 0xffff_ffff) as usize
    }

    /// The id whose [`as_u128`](ConnId::as_u128) is `raw` (e.g. typed into the admin
    /// page).
    pub(crate) fn from_raw(raw: u128) -> ConnId {
        ConnId { place: (raw >> 64) as u64, generation: raw as u64 }
    }

    /// The raw value, e.g. to put in a log line or a map key on another node.
    pub fn as_u128(self) -> u128 {
        (u128::from(self.place) << 64) | u128::from(self.generation)
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.node() != 0 {
            write!(f, "ConnId({}/", self.node())?;
        } else {
            f.write_str("ConnId(")?;
        }
        write!(f, "{}:{}:{})", self.reactor(), self.slot(), self.generation())
    }
}

/// A [`ConnId`] written with `Display` (hex) read back, e.g. from a client.
impl std::str::FromStr for ConnId {
    type Err = std::num::ParseIntError;

    fn from_str(hex: &str) -> Result<ConnId, Self::Err> {
        u128::from_str_radix(hex, 16).map(ConnId::from_raw)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.as_u128())
    }
}

/// A complete WebSocket data message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A UTF-8 text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

impl Message {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.view().as_bytes()
    }

    /// The payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Message {
    /// The message lent as a [`MessageRef`].
    pub fn view(&self) -> MessageRef<'_> {
        match self {
            Message::Text(s) => MessageRef::Text(s),
            Message::Binary(b) => MessageRef::Binary(b),
        }
    }
}

/// A data message lent for the length of a call: what an inline handler sees in
/// [`Handler::on_message_ref`](crate::Handler::on_message_ref), pointing into the
/// reactor's receive buffer (unmasked in place), and what [`Handle::send_ref`](crate::Handle::send_ref)
/// takes. Nothing is allocated to receive or echo it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageRef<'a> {
    /// A UTF-8 text message.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl<'a> MessageRef<'a> {
    /// The payload bytes (borrowed for as long as the message is).
    pub fn as_bytes(&self) -> &'a [u8] {
        match *self {
            MessageRef::Text(s) => s.as_bytes(),
            MessageRef::Binary(b) => b,
        }
    }

    /// The payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An owned copy, to keep past the call.
    pub fn to_message(&self) -> Message {
        match *self {
            MessageRef::Text(s) => Message::Text(s.to_owned()),
            MessageRef::Binary(b) => Message::Binary(b.to_vec()),
        }
    }
}

impl From<MessageRef<'_>> for Message {
    fn from(message: MessageRef<'_>) -> Message {
        message.to_message()
    }
}

impl From<String> for Message {
    fn from(s: String) -> Message {
        Message::Text(s)
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Message {
        Message::Text(s.to_owned())
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Message {
        Message::Binary(b)
    }
}

impl From<&[u8]> for Message {
    fn from(b: &[u8]) -> Message {
        Message::Binary(b.to_vec())
    }
}

/// Per-connection data the upgrade hook attached; taken out of [`ConnectInfo`] by the handler.
pub type UserData = Box<dyn Any + Send>;

/// What is known of a connection when it opens.
#[non_exhaustive]
pub struct ConnectInfo {
    /// The connection's id.
    pub id: ConnId,
    /// The client's address.
    pub remote_addr: SocketAddr,
    /// The server address the client reached.
    pub local_addr: SocketAddr,
    /// The request path, e.g. `/chat`.
    pub path: String,
    /// The query string without `?`, empty when absent.
    pub query: String,
    /// The negotiated subprotocol, if any.
    pub protocol: Option<String>,
    /// What the upgrade hook attached, if anything.
    pub user_data: Option<UserData>,
}

impl fmt::Debug for ConnectInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectInfo")
            .field("id", &self.id)
            .field("remote_addr", &self.remote_addr)
            .field("local_addr", &self.local_addr)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("protocol", &self.protocol)
            .field("user_data", &self.user_data.is_some())
            .finish()
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The peer sent a close frame (its code; 1005 when it sent none).
    ClosedByPeer {
        /// The peer's close code.
        code: CloseCode,
        /// The peer's reason.
        reason: String,
    },
    /// The server closed it (through `Handle::close`), and the close handshake ended.
    ClosedByServer {
        /// The code the server sent.
        code: CloseCode,
    },
    /// The peer broke the protocol; the server failed the connection with
    /// `error.close_code()`.
    ProtocolError(ProtocolError),
    /// The TCP connection ended without a close handshake (code 1006).
    Abnormal,
    /// A socket error.
    Io(io::ErrorKind),
    /// The peer did not answer a close frame in time.
    CloseTimeout,
    /// The server shut down.
    Shutdown,
    /// The connection did not read fast enough: its buffered bytes passed
    /// `max_backpressure` and it was closed with 1008.
    SlowConsumer,
    /// No message for `idle_timeout`; closed with 1001.
    IdleTimeout,
    /// Nothing came back within `pong_timeout` of a ping; the peer is taken for dead.
    PongTimeout,
    /// A client connection's server did not answer the upgrade with a valid 101.
    HandshakeFailed(crate::protocol::client::ResponseError),
    /// A client connection's TCP connect and opening handshake took longer than
    /// `ClientOptions::connect_timeout`.
    ConnectTimeout,
}

/// Something that happened to a connection. A connection's events arrive in order:
/// one `Connect`, its `Message`s, exactly one `Disconnect`. A client connection
/// ([`Handle::connect`](crate::Handle::connect)) may in between drop and come back:
/// `Reconnecting`, then `Connect` again when it reopens, under the same id; its
/// `Disconnect` comes even if it never opened.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A connection completed its handshake.
    Connect(ConnectInfo),
    /// A data message arrived.
    Message {
        /// From this connection.
        id: ConnId,
        /// The message.
        message: Message,
    },
    /// A write queue that had filled has emptied (only with `Config::drain_events`).
    Drain {
        /// This connection.
        id: ConnId,
    },
    /// A client connection dropped (or an attempt to open it failed) and will try again
    /// in `retry_in`; its id stays valid, and sends are held until it opens again.
    Reconnecting {
        /// This connection.
        id: ConnId,
        /// Attempts since the schedule last reset (1 for the first retry).
        attempt: u32,
        /// How long until the attempt starts.
        retry_in: std::time::Duration,
        /// Why it dropped, or why the last attempt failed.
        reason: DisconnectReason,
    },
    /// The connection has ended; its id is invalid from now on.
    Disconnect {
        /// This connection.
        id: ConnId,
        /// Why.
        reason: DisconnectReason,
    },
}

impl Event {
    /// The connection the event is about.
    pub fn id(&self) -> ConnId {
        match self {
            Event::Connect(info) => info.id,
            Event::Message { id, .. }
            | Event::Drain { id }
            | Event::Reconnecting { id, .. }
            | Event::Disconnect { id, .. } => *id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_id_round_trips_its_parts() {
        let id = ConnId::new(255, u64::MAX, 0xffff_ffff);
        assert_eq!((id.reactor(), id.generation(), id.slot()), (255, u64::MAX, 0xffff_ffff));
        let id = ConnId::new(3, 7, 42);
        assert_eq!((id.reactor(), id.generation(), id.slot()), (3, 7, 42));
        assert_ne!(ConnId::new(3, 7 + (1 << 32), 42), id, "no generation bits are lost");
        assert_eq!(format!("{id}"), "30000002a0000000000000007");
        assert_eq!(id.node(), 0);
    }

    #[test]
    fn conn_id_carries_the_thread_node() {
        std::thread::spawn(|| {
            set_thread_node(MAX_NODE_ID);
            let id = ConnId::new(255, 9, 0xffff_ffff);
            assert_eq!((id.node(), id.reactor(), id.slot()), (MAX_NODE_ID, 255, 0xffff_ffff));
            assert_eq!(ConnId::from_raw(id.as_u128()), id);
            assert_eq!(id.to_string().parse::<ConnId>(), Ok(id));
            assert!("zz".parse::<ConnId>().is_err());
            assert_eq!(format!("{id:?}"), "ConnId(16777215/255:4294967295:9)");
        })
        .join()
        .unwrap();
    }
}

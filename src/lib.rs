//! wsloop: a WebSocket server core on plain threads and mio, for very many sockets at
//! the lowest memory and latency, with no async runtime.
//!
//! # Architecture
//! A fixed set of reactor threads (see [Threads](#threads)) each own a listener
//! (`SO_REUSEPORT`) and a slab of connections. They read, parse ([`protocol`], sans-IO),
//! and hand `Connect` / `Message` / `Disconnect` [`Event`]s to a [`Handler`] run by a pool
//! of worker threads (every event of one connection on one worker, in order), or inline on
//! the reactor thread ([`Dispatch::Inline`]), or to a plain receiver
//! ([`Server::start_with_events`]). Anything on any thread talks back through a
//! [`Handle`]: commands travel to the owning reactor over a channel and wake it only when
//! it sleeps.
//!
//! # Threads
//! `wsloop-reactor-N` threads own all socket state; `wsloop-worker-N` threads run the
//! handler. A [`ConnId`] names its reactor and slot, so a command reaches its connection in
//! O(1), and carries a generation, so a stale id never reaches a reused slot.
//!
//! # Memory
//! An idle open connection holds no read or write buffer: reads go to a per-reactor
//! scratch buffer, and only what the kernel refuses to take is queued.
//!
//! # Example
//! ```no_run
//! use wsloop::{Config, ConnId, Handle, Handler, Message, Server};
//!
//! struct Echo;
//! impl Handler for Echo {
//!     fn on_message(&self, handle: &Handle, id: ConnId, message: Message) {
//!         let _ = handle.send(id, message);
//!     }
//! }
//!
//! let server = Server::start(Config::default(), Echo)?;
//! println!("ws://{}", server.local_addr());
//! server.join();
//! # Ok::<(), wsloop::Error>(())
//! ```
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod protocol;

mod accept_backoff;
mod client;
mod cluster;
mod compress;
mod config;
mod conn;
mod dispatch;
mod error;
mod event;
mod handle;
mod http;
mod liveness;
mod metrics;
mod outbox;
mod pubsub;
mod reactor;
mod server;
mod session;
mod state;
mod timer;
mod tls;
mod upgrade;
mod wire;

pub use client::{ClientOptions, ConnectError, Reconnect};
pub use cluster::{
    ClusterConfig, ClusterConfigError, ClusterEvent, ClusterEvents, PublishError, PublishErrorKind,
};
pub use config::{Backpressure, Compression, Config, Dispatch, MAX_DURATION};
pub use dispatch::{Events, Handler};
pub use error::{CloseError, ConfigError, Error, SendError, SendErrorKind};
pub use event::{
    ConnId, ConnectInfo, DisconnectReason, Event, MAX_NODE_ID, Message, MessageRef, UserData,
};
pub use handle::Handle;
pub use http::{Builtin, Response, RouteHandler};
pub use metrics::Stats;
pub use protocol::CloseCode;
pub use protocol::handshake::Request;
pub use pubsub::SubscribeError;
pub use server::Server;
pub use state::{StatefulHandler, WithState};
pub use tls::{TlsConfig, TlsError};
pub use upgrade::{Accept, OriginCheck, Origins, Reject, UpgradeHook};

/// Runs one connection's state machine on fuzzer input, checking its invariants (for
/// `fuzz/`; not part of the API).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use session::fuzz::run as fuzz_session;

/// The README's code blocks, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

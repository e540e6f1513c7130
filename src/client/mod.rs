//! Outgoing connections: [`Handle::connect`](crate::Handle::connect) opens a `ws://`
//! connection from one of the server's reactors; it lives there like an accepted one.
//!
//! # Life of a client connection
//! ```text
//!  connect() ─► Resolving ─► Connecting ─101─► Open ──drop──► Waiting ──timer──► Resolving …
//!                  │             │ refused, bad 101, timeout     ▲
//!                  └─────────────┴───────────────────────────────┘   (each a failed attempt)
//! ```
//! - The id [`Handle::connect`](crate::Handle::connect) returns **stays the same across
//!   reconnects**: the slot is held while the connection is down, so an application keeps
//!   one id per upstream, and sends, closes and subscribes keep working on it.
//! - Events: `Connect` each time a 101 is checked, `Message`s, `Reconnecting { attempt,
//!   retry_in, reason }` each time it drops or an attempt fails and another will be made,
//!   and one final `Disconnect` when it ends for good (the application closed it, a
//!   terminal close code, `max_attempts`, no reconnect configured, shutdown). A client
//!   connection that never opened still gets its `Disconnect`.
//! - While down, [`Handle::send`](crate::Handle::send) holds messages in a queue bounded in
//!   bytes ([`ClientOptions::offline_queue_bytes`]); they are written first when it opens
//!   again. Over the bound the send fails with `OfflineQueueFull`. Publishes to its topics
//!   while it is down are not held (fan-out is at-most-once).
//! - Topics: those named in the options and those joined while open are left when it
//!   drops and re-joined before the next `Connect`.
//! - DNS: host names are resolved on a resolver thread (one per server, started on first
//!   use), never on a reactor; IP literals need none.
//! - `wss://`: every attempt gets a fresh rustls client session on the connection's
//!   transport, trusting the bundled webpki roots or the `ca_pem` CA alone.

mod backoff;
mod connect;
mod offline;
mod options;
mod resolve;
mod url;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) use backoff::{Backoff, Next};
pub(crate) use offline::{Offered, Offline, OfflineTable};
pub use options::{ClientOptions, ConnectError, Reconnect};
pub(crate) use resolve::Resolver;
pub(crate) use url::Target;

use crate::event::{ConnId, DisconnectReason};
use crate::handle::Shared;
use crate::liveness::{LiveTable, Liveness};
use crate::tls::ClientTls;

/// What a `Handle` asks a reactor to open.
pub(crate) struct Dial {
    pub(crate) target: Target,
    pub(crate) options: Arc<ClientOptions>,
    /// For `wss://`: what the connection trusts and the name it checks.
    pub(crate) tls: Option<Arc<ClientTls>>,
}

/// Where a client connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Resolving,
    Connecting,
    Open,
    Waiting,
}

/// A reactor's record of one client connection (its slot holds the socket and session).
pub(crate) struct Client {
    pub(crate) id: ConnId,
    pub(crate) target: Target,
    pub(crate) options: Arc<ClientOptions>,
    pub(crate) tls: Option<Arc<ClientTls>>,
    pub(crate) backoff: Option<Backoff>,
    pub(crate) offline: Arc<Offline>,
    /// Topics to join at the next open.
    pub(crate) topics: Vec<String>,
    pub(crate) stage: Stage,
    /// Why the current connection ended, when the session said so before its socket
    /// closed (it lingers for the server's EOF).
    pub(crate) ended: Option<DisconnectReason>,
    /// No more attempts: the application closed it, or the server shuts down.
    pub(crate) stopped: bool,
    /// Counts timer entries, so a stale one is ignored.
    pub(crate) epoch: u64,
}

impl Client {
    /// Whether the connection comes back after ending for `reason`.
    pub(crate) fn retries_after(&self, reason: &DisconnectReason) -> bool {
        let Some(policy) = &self.options.reconnect else { return false };
        if self.stopped {
            return false;
        }
        match reason {
            DisconnectReason::ClosedByPeer { code, .. } => !policy.terminal_codes.contains(code),
            DisconnectReason::ClosedByServer { .. } | DisconnectReason::Shutdown => false,
            _ => true,
        }
    }
}

/// A reactor's client connections by slot, and their retry timers.
pub(crate) struct Clients {
    /// The backoff's clock starts here.
    origin: Instant,
    by_slot: HashMap<usize, Client>,
    /// (when, slot, epoch): lazily deleted.
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    /// Slots whose connection opened during the last session call (their offline queue
    /// is written by the reactor once the session is free).
    pub(crate) opened: Vec<usize>,
}

impl Default for Clients {
    fn default() -> Clients {
        Clients {
            origin: Instant::now(),
            by_slot: HashMap::new(),
            timers: BinaryHeap::new(),
            opened: Vec::new(),
        }
    }
}

impl Clients {
    /// The backoff's clock reading now.
    pub(crate) fn clock(&self) -> Duration {
        self.origin.elapsed()
    }

    pub(crate) fn get(&self, slot: usize) -> Option<&Client> {
        self.by_slot.get(&slot)
    }

    pub(crate) fn get_mut(&mut self, slot: usize) -> Option<&mut Client> {
        self.by_slot.get_mut(&slot)
    }

    /// The client in `slot` if it is `id`'s.
    pub(crate) fn of(&mut self, id: ConnId) -> Option<&mut Client> {
        self.by_slot.get_mut(&id.slot()).filter(|c| c.id == id)
    }

    pub(crate) fn contains(&self, slot: usize) -> bool {
        !self.by_slot.is_empty() && self.by_slot.contains_key(&slot)
    }

    pub(crate) fn insert(&mut self, slot: usize, client: Client) {
        self.by_slot.insert(slot, client);
    }

    pub(crate) fn remove(&mut self, slot: usize) -> Option<Client> {
        self.by_slot.remove(&slot)
    }

    pub(crate) fn slots(&self) -> Vec<usize> {
        self.by_slot.keys().copied().collect()
    }

    /// Starts `slot`'s wait; the attempt comes at `at`.
    pub(crate) fn retry_at(&mut self, slot: usize, at: Instant) {
        if let Some(client) = self.by_slot.get_mut(&slot) {
            client.epoch += 1;
            client.stage = Stage::Waiting;
            self.timers.push(Reverse((at, slot, client.epoch)));
        }
    }

    /// When the reactor must wake for the next retry.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The slots whose wait is over at `now`.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<usize> {
        let mut due = Vec::new();
        while let Some(Reverse((at, slot, epoch))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self
                .by_slot
                .get(&slot)
                .is_some_and(|c| c.epoch == epoch && c.stage == Stage::Waiting)
            {
                due.push(slot);
            }
        }
        due
    }
}

/// Host side of a client's open (the 101 checked): re-joins its topics before
/// `Connect` is delivered and starts its backoff's "connected" clock.
pub(crate) fn opened(client: &mut Client, shared: &Shared, id: ConnId, now: Duration) {
    client.stage = Stage::Open;
    if let Some(backoff) = &mut client.backoff {
        backoff.opened(now);
    }
    for topic in &client.topics {
        if let Err(e) = shared.topics.subscribe(id, topic, || true) {
            log::warn!("client {id:?}: could not re-join topic {topic:?}: {e}");
        }
    }
}

/// Host side of an open client connection's end: remembers its topics for the next
/// open and leaves them; sends are held from now on if it will come back.
pub(crate) fn dropped(
    client: &mut Client,
    shared: &Shared,
    id: ConnId,
    live: &LiveTable,
    reason: DisconnectReason,
) {
    // What it is a member of now: the options' topics and those joined while open,
    // less those the application left.
    client.topics = shared.topics.topics_of(id);
    shared.topics.remove_connection(id);
    if client.retries_after(&reason) {
        client.offline.down();
        live.set(id, Liveness::Handshake);
    } else {
        live.set(id, Liveness::Gone);
    }
    client.ended = Some(reason);
}

/// A wait as the application sees it (whole milliseconds are enough).
pub(crate) fn rounded(wait: Duration) -> Duration {
    Duration::from_millis(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX))
}

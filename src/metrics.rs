//! Server-wide counters, readable from any thread.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters the reactors and handles bump; relaxed atomics, one cache line each is not
/// worth it at these rates.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) rejected_full: AtomicU64,
    pub(crate) slow_consumers_closed: AtomicU64,
    pub(crate) messages_dropped: AtomicU64,
    pub(crate) messages_in: AtomicU64,
    pub(crate) reads_paused: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A snapshot of the server's counters ([`Handle::stats`](crate::Handle::stats)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Open connections (handshake done, not yet disconnected).
    pub connections: usize,
    /// Accepted sockets, handshaking or open (what `max_connections` bounds).
    pub sockets: usize,
    /// Topics with at least one member.
    pub topics: usize,
    /// Sockets accepted since start.
    pub accepted: u64,
    /// Connections answered 503 because `max_connections` was reached.
    pub rejected_full: u64,
    /// Connections closed by the `Backpressure::Close` policy.
    pub slow_consumers_closed: u64,
    /// Messages dropped by the `Backpressure::Drop` policy.
    pub messages_dropped: u64,
    /// Data messages received.
    pub messages_in: u64,
    /// Times a connection's reading was paused because its worker's queue was full.
    pub reads_paused: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self, connections: usize, sockets: usize, topics: usize) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            connections,
            sockets,
            topics,
            accepted: get(&self.accepted),
            rejected_full: get(&self.rejected_full),
            slow_consumers_closed: get(&self.slow_consumers_closed),
            messages_dropped: get(&self.messages_dropped),
            messages_in: get(&self.messages_in),
            reads_paused: get(&self.reads_paused),
        }
    }
}

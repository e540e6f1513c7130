//! Server-wide counters, gauges and a histogram, readable from any thread; rendered by
//! [`http`](crate::http) as Prometheus text and admin JSON.
//!
//! Everything is a relaxed atomic in a table fixed at start: counting never allocates,
//! locks or logs, and a label set (close codes, statuses) cannot grow.

mod histogram;
mod labelled;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::event::DisconnectReason;
use crate::protocol::CloseCode;

pub(crate) use histogram::{BOUNDS_US, Histogram, HistogramSnapshot};
pub(crate) use labelled::Labelled;

/// Close codes counted by name; others count as "other".
const CLOSE_CODES: [u16; 11] = [1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011];
/// HTTP statuses counted by name (handshake failures and plain HTTP answers).
const STATUSES: [u16; 12] = [200, 400, 401, 403, 404, 405, 413, 426, 429, 431, 500, 503];

/// What one reactor counts; only that reactor writes. Aligned to its own cache lines, so
/// reactors counting bytes on every read and write do not contend.
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct ReactorMetrics {
    /// WebSocket bytes read (over TLS, the plaintext).
    pub(crate) bytes_in: AtomicU64,
    /// WebSocket bytes written (over TLS, the plaintext).
    pub(crate) bytes_out: AtomicU64,
    /// WebSocket connections open on this reactor (handshake done, not disconnected).
    pub(crate) open: AtomicU64,
    /// Sockets the reactor holds (handshaking, open, closing).
    pub(crate) sockets: AtomicU64,
    /// Connections whose reading is paused because their worker is behind.
    pub(crate) paused: AtomicU64,
    /// Wall time of each loop turn (poll return to the next poll).
    pub(crate) turns: Histogram,
}

/// Counters the reactors and handles bump.
pub(crate) struct Counters {
    pub(crate) started: Instant,
    pub(crate) accepted: AtomicU64,
    pub(crate) rejected_full: AtomicU64,
    pub(crate) accept_errors: AtomicU64,
    pub(crate) slow_consumers_closed: AtomicU64,
    pub(crate) messages_dropped: AtomicU64,
    pub(crate) messages_in: AtomicU64,
    pub(crate) messages_out: AtomicU64,
    pub(crate) publishes: AtomicU64,
    pub(crate) reads_paused: AtomicU64,
    /// TLS connections ended by the peer's bad records (a fatal alert was sent).
    pub(crate) tls_failures: AtomicU64,
    /// Disconnects by the close code that ended them (1006 for no close handshake).
    pub(crate) closes: Labelled<{ CLOSE_CODES.len() }>,
    /// Refused upgrades by the HTTP status sent.
    pub(crate) handshake_failures: Labelled<{ STATUSES.len() }>,
    /// Refused upgrades by cause ([`RejectCause`](crate::upgrade::RejectCause) as u16).
    pub(crate) rejected: Labelled<5>,
    /// Plain HTTP requests answered, by status.
    pub(crate) http_responses: Labelled<{ STATUSES.len() }>,
    pub(crate) reactors: Box<[ReactorMetrics]>,
}

impl Counters {
    pub(crate) fn new(reactors: usize) -> Counters {
        let zero = || AtomicU64::new(0);
        Counters {
            started: Instant::now(),
            accepted: zero(),
            rejected_full: zero(),
            accept_errors: zero(),
            slow_consumers_closed: zero(),
            messages_dropped: zero(),
            messages_in: zero(),
            messages_out: zero(),
            publishes: zero(),
            reads_paused: zero(),
            tls_failures: zero(),
            closes: Labelled::new(CLOSE_CODES),
            handshake_failures: Labelled::new(STATUSES),
            rejected: Labelled::new([0, 1, 2, 3, 4]),
            http_responses: Labelled::new(STATUSES),
            reactors: (0..reactors).map(|_| ReactorMetrics::default()).collect(),
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Reactor `reactor` read `n` WebSocket bytes (after TLS).
    pub(crate) fn read_bytes(&self, reactor: usize, n: usize) {
        if let Some(m) = self.reactors.get(reactor) {
            Counters::add(&m.bytes_in, n);
        }
    }

    /// Reactor `reactor` wrote `n` WebSocket bytes (before TLS).
    pub(crate) fn wrote_bytes(&self, reactor: usize, n: usize) {
        if let Some(m) = self.reactors.get(reactor) {
            Counters::add(&m.bytes_out, n);
        }
    }

    /// Bytes read and written over all reactors.
    pub(crate) fn bytes(&self) -> (u64, u64) {
        let sum = |f: fn(&ReactorMetrics) -> &AtomicU64| {
            self.reactors.iter().map(|m| Counters::get(f(m))).sum()
        };
        (sum(|m| &m.bytes_in), sum(|m| &m.bytes_out))
    }

    /// A connection of reactor `reactor` completed its handshake.
    pub(crate) fn opened(&self, reactor: usize) {
        if let Some(m) = self.reactors.get(reactor) {
            m.open.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connection of reactor `reactor` ended: count it under the close code that ended
    /// it.
    pub(crate) fn closed(&self, reactor: usize, reason: &DisconnectReason) {
        self.closes.bump(close_code_of(reason).0);
        if let Some(m) = self.reactors.get(reactor) {
            m.open.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// An upgrade was refused: count its status and cause.
    pub(crate) fn rejected(&self, rejection: &crate::upgrade::Reject) {
        self.handshake_failures.bump(rejection.status());
        self.rejected.bump(rejection.cause as u16);
    }

    /// The end of a reactor's loop turn: its gauges and the turn's duration.
    pub(crate) fn turn_ended(&self, reactor: usize, took: Duration, sockets: usize, paused: usize) {
        if let Some(m) = self.reactors.get(reactor) {
            m.sockets.store(sockets as u64, Ordering::Relaxed);
            m.paused.store(paused as u64, Ordering::Relaxed);
            m.turns.record(took);
        }
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// The close code a connection ended with, as a peer would see it: the code of the close
/// handshake, or 1006 when there was none.
pub(crate) fn close_code_of(reason: &DisconnectReason) -> CloseCode {
    match reason {
        DisconnectReason::ClosedByPeer { code, .. } | DisconnectReason::ClosedByServer { code } => {
            *code
        }
        DisconnectReason::ProtocolError(e) => e.close_code(),
        DisconnectReason::Shutdown | DisconnectReason::IdleTimeout => CloseCode::GOING_AWAY,
        DisconnectReason::SlowConsumer => CloseCode::POLICY,
        DisconnectReason::Abnormal
        | DisconnectReason::Io(_)
        | DisconnectReason::CloseTimeout
        | DisconnectReason::PongTimeout
        | DisconnectReason::HandshakeFailed(_)
        | DisconnectReason::ConnectTimeout => CloseCode(1006),
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
    /// Data messages queued by `Handle` sends (a publish counts once per recipient).
    pub messages_out: u64,
    /// WebSocket bytes read (HTTP heads and frame headers included). Over TLS, the
    /// plaintext: records' overhead and the TLS handshake are not counted, so `ws://` and
    /// `wss://` count the same traffic alike.
    pub bytes_in: u64,
    /// WebSocket bytes written, counted as [`Stats::bytes_in`] is.
    pub bytes_out: u64,
    /// Times a connection's reading was paused because its worker's queue was full.
    pub reads_paused: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self, connections: usize, sockets: usize, topics: usize) -> Stats {
        let get = Counters::get;
        let (bytes_in, bytes_out) = self.bytes();
        Stats {
            connections,
            sockets,
            topics,
            accepted: get(&self.accepted),
            rejected_full: get(&self.rejected_full),
            slow_consumers_closed: get(&self.slow_consumers_closed),
            messages_dropped: get(&self.messages_dropped),
            messages_in: get(&self.messages_in),
            messages_out: get(&self.messages_out),
            bytes_in,
            bytes_out,
            reads_paused: get(&self.reads_paused),
        }
    }
}

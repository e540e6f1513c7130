//! What a run measured, in a form that merges across threads and worker processes.
//!
//! Every generator thread fills its own [`RunStats`]; the process merges its threads', and
//! with `--procs` the parent merges its workers' (shipped as JSON, histograms in
//! HdrHistogram's V2 format, base64). Figures are computed from the merged stats only.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};

/// Highest latency tracked: 100 s, in nanoseconds (longer values are clamped).
const MAX_TRACKED_NS: u64 = 100_000_000_000;

/// A histogram of nanoseconds; (de)serializes as base64 of HdrHistogram's V2 encoding.
#[derive(Debug, Clone)]
pub struct Hist(Histogram<u64>);

impl Hist {
    /// Three significant digits (0.1% resolution): the run's headline figures.
    pub fn precise() -> Hist {
        Hist::with_digits(3)
    }

    /// Two significant digits (1%): per-second buckets of the timeline.
    pub fn coarse() -> Hist {
        Hist::with_digits(2)
    }

    fn with_digits(sigfig: u8) -> Hist {
        match Histogram::new_with_bounds(1, MAX_TRACKED_NS, sigfig) {
            Ok(h) => Hist(h),
            // The bounds are constants HdrHistogram accepts; keep a usable histogram anyway.
            Err(_) => Hist(Histogram::new(sigfig).unwrap_or_else(|_| unreachable_hist())),
        }
    }

    /// Records one value in nanoseconds (clamped to the tracked range).
    pub fn record(&mut self, ns: u64) {
        self.0.saturating_record(ns.clamp(1, MAX_TRACKED_NS));
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Hist) {
        // Same bounds on both sides, so `add` cannot fail; if it ever did, count nothing
        // rather than half a histogram.
        let _ = self.0.add(&other.0);
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The value at quantile `q` (0..=1), nanoseconds; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.0.is_empty() { 0 } else { self.0.value_at_quantile(q) }
    }

    /// The HdrHistogram itself (nanoseconds).
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.0
    }

    /// The headline percentiles, in microseconds.
    pub fn summary(&self) -> Summary {
        let h = &self.0;
        if h.is_empty() {
            return Summary::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Summary {
            count: h.len(),
            min_us: us(h.min()),
            mean_us: h.mean() / 1000.0,
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            p9999_us: us(h.value_at_quantile(0.9999)),
            max_us: us(h.max()),
        }
    }
}

fn unreachable_hist() -> Histogram<u64> {
    // Histogram::new(2) never fails; this is the last resort of the last resort.
    Histogram::new_with_max(MAX_TRACKED_NS, 2).unwrap_or_else(|_| std::process::abort())
}

impl Serialize for Hist {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = Vec::new();
        V2Serializer::new()
            .serialize(&self.0, &mut buf)
            .map_err(|e| serde::ser::Error::custom(format!("histogram: {e:?}")))?;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&buf))
    }
}

impl<'de> Deserialize<'de> for Hist {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Hist, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)?;
        let h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| serde::de::Error::custom(format!("histogram: {e:?}")))?;
        // Re-home into our bounds so merges never fail.
        let mut out = if h.sigfig() >= 3 { Hist::precise() } else { Hist::coarse() };
        out.0.add(&h).map_err(|e| serde::de::Error::custom(format!("histogram: {e:?}")))?;
        Ok(out)
    }
}

/// Percentiles of one histogram, microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Values recorded.
    pub count: u64,
    /// Smallest.
    pub min_us: f64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// 99.99th percentile.
    pub p9999_us: f64,
    /// Largest.
    pub max_us: f64,
}

/// Counts of everything that happened, over the whole run (warmup and drain included).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Connections the generator tried to open.
    pub attempted: u64,
    /// Connections that completed the handshake.
    pub opened: u64,
    /// Connections that failed before the handshake completed (see [`Failures`]).
    pub failed: u64,
    /// Open connections the server closed or reset before the generator closed them.
    pub closed_by_server: u64,
    /// Connections the generator closed itself, after the close handshake or its timeout.
    pub closed_by_generator: u64,
    /// Connections still open when the run started closing them.
    pub open_at_end: u64,
    /// Data messages sent.
    pub sent: u64,
    /// Data messages received that answer something sent (echo, rate, churn) or were
    /// delivered to a subscriber (broadcast).
    pub received: u64,
    /// Messages sent on connections that died before the answer came.
    pub lost: u64,
    /// Messages sent and not yet answered when the run stopped waiting.
    pub in_flight: u64,
    /// Sends the generator skipped because a connection's queue was over its cap.
    pub skipped: u64,
    /// Data messages received without a readable stamp (not ours).
    pub unstamped: u64,
    /// Stamped messages that answered nothing outstanding (arrived after the run counted
    /// them in flight, or were never sent by this connection).
    pub unexpected: u64,
    /// Answers whose sequence number was not the one expected next.
    pub out_of_order: u64,
    /// Sent messages whose send time fell in the measurement window.
    pub sent_measured: u64,
    /// Received messages whose send time fell in the measurement window.
    pub received_measured: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Pings answered with a pong.
    pub pings: u64,
    /// Data messages sent compressed (permessage-deflate).
    pub compressed_sent: u64,
    /// Data messages received compressed and inflated.
    pub compressed_received: u64,
    /// Broadcast: messages the sender published.
    pub published: u64,
    /// Broadcast: subscribers open when publishing started.
    pub subscribers: u64,
    /// Broadcast: deliveries expected (published × subscribers open at the start).
    pub expected: u64,
    /// Broadcast: distinct (subscriber, message) deliveries.
    pub delivered: u64,
    /// Broadcast: expected deliveries that never came.
    pub missing: u64,
    /// Broadcast: deliveries of a message a subscriber already had.
    pub duplicates: u64,
    /// Broadcast: copies of its own messages the sender got back.
    pub sender_echoes: u64,
    /// Churn: open → (messages) → close cycles completed.
    pub cycles: u64,
    /// `--on-open` messages sent.
    pub session_sent: u64,
    /// Messages without our stamp that came before a connection sent its first measured
    /// message (a greeting, the answer to `--on-open`): not counted as unstamped.
    pub session_replies: u64,
}

impl Counters {
    /// Adds `o` field by field.
    pub fn merge(&mut self, o: &Counters) {
        macro_rules! sum {
            ($($f:ident),*) => { $( self.$f += o.$f; )* };
        }
        sum!(
            attempted,
            opened,
            failed,
            closed_by_server,
            closed_by_generator,
            open_at_end,
            sent,
            received,
            lost,
            in_flight,
            skipped,
            unstamped,
            unexpected,
            out_of_order,
            sent_measured,
            received_measured,
            bytes_sent,
            bytes_received,
            pings,
            compressed_sent,
            compressed_received,
            published,
            subscribers,
            expected,
            delivered,
            missing,
            duplicates,
            sender_echoes,
            cycles,
            session_sent,
            session_replies
        );
    }
}

/// Why a connection failed before or during its opening handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailCause {
    /// The server refused the TCP connection (nothing listening, backlog full).
    Refused,
    /// Connect + handshake took longer than `--connect-timeout`.
    Timeout,
    /// The server reset or closed the connection during the handshake.
    Reset,
    /// The server answered with an HTTP status other than 101.
    Http(u16),
    /// The 101 was malformed (bad accept key, missing headers, unexpected extension).
    Handshake,
    /// The 101 agreed to permessage-deflate with parameters RFC 7692 does not allow.
    Deflate,
    /// The TLS handshake or a TLS record failed (certificate refused, alert, bad record).
    Tls,
    /// No local address/port left (`EADDRNOTAVAIL`): spread over more `--source` addresses.
    AddrUnavailable,
    /// Out of file descriptors (`EMFILE`/`ENFILE`): use `--procs`.
    TooManyFiles,
    /// Any other error.
    Other,
}

impl FailCause {
    /// Classifies an IO error from connect, read or write.
    pub fn from_io(e: &std::io::Error) -> FailCause {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::ConnectionRefused => FailCause::Refused,
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                FailCause::Reset
            }
            K::TimedOut => FailCause::Timeout,
            K::AddrNotAvailable => FailCause::AddrUnavailable,
            // Only TLS reports bad data from a socket read (see `tls::read`).
            K::InvalidData => FailCause::Tls,
            _ => match e.raw_os_error() {
                Some(libc::EMFILE) | Some(libc::ENFILE) => FailCause::TooManyFiles,
                Some(libc::EADDRNOTAVAIL) => FailCause::AddrUnavailable,
                _ => FailCause::Other,
            },
        }
    }
}

impl fmt::Display for FailCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailCause::Refused => f.write_str("refused"),
            FailCause::Timeout => f.write_str("timeout"),
            FailCause::Reset => f.write_str("reset"),
            FailCause::Http(s) => write!(f, "HTTP {s}"),
            FailCause::Handshake => f.write_str("bad handshake"),
            FailCause::Deflate => f.write_str("bad permessage-deflate agreement"),
            FailCause::Tls => f.write_str("TLS"),
            FailCause::AddrUnavailable => f.write_str("no local address/port"),
            FailCause::TooManyFiles => f.write_str("out of file descriptors"),
            FailCause::Other => f.write_str("other"),
        }
    }
}

/// Failed connections by cause.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failures {
    /// Connection refused.
    pub refused: u64,
    /// Connect + handshake timeout.
    pub timeout: u64,
    /// Reset or closed during the handshake.
    pub reset: u64,
    /// Invalid 101.
    pub handshake: u64,
    /// A 101 whose permessage-deflate parameters are invalid.
    pub deflate: u64,
    /// TLS handshake or record failures.
    pub tls: u64,
    /// No local address or port.
    pub addr_unavailable: u64,
    /// Out of file descriptors.
    pub too_many_files: u64,
    /// Anything else.
    pub other: u64,
    /// Non-101 answers by HTTP status.
    pub http: BTreeMap<u16, u64>,
}

impl Failures {
    /// Counts one failure.
    pub fn record(&mut self, cause: FailCause) {
        match cause {
            FailCause::Refused => self.refused += 1,
            FailCause::Timeout => self.timeout += 1,
            FailCause::Reset => self.reset += 1,
            FailCause::Http(s) => *self.http.entry(s).or_default() += 1,
            FailCause::Handshake => self.handshake += 1,
            FailCause::Deflate => self.deflate += 1,
            FailCause::Tls => self.tls += 1,
            FailCause::AddrUnavailable => self.addr_unavailable += 1,
            FailCause::TooManyFiles => self.too_many_files += 1,
            FailCause::Other => self.other += 1,
        }
    }

    /// Adds `o`.
    pub fn merge(&mut self, o: &Failures) {
        self.refused += o.refused;
        self.timeout += o.timeout;
        self.reset += o.reset;
        self.handshake += o.handshake;
        self.deflate += o.deflate;
        self.tls += o.tls;
        self.addr_unavailable += o.addr_unavailable;
        self.too_many_files += o.too_many_files;
        self.other += o.other;
        for (k, v) in &o.http {
            *self.http.entry(*k).or_default() += v;
        }
    }

    /// Causes with a non-zero count, as `(name, count)`.
    pub fn nonzero(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = [
            ("refused", self.refused),
            ("timeout", self.timeout),
            ("reset", self.reset),
            ("bad handshake", self.handshake),
            ("bad deflate agreement", self.deflate),
            ("TLS", self.tls),
            ("no local address", self.addr_unavailable),
            ("out of fds", self.too_many_files),
            ("other", self.other),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| (k.to_string(), n))
        .collect();
        v.extend(self.http.iter().map(|(s, n)| (format!("HTTP {s}"), *n)));
        v
    }
}

/// One second of the measurement window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bucket {
    /// Messages sent in this second.
    pub sent: u64,
    /// Messages received (answers or deliveries) in this second.
    pub received: u64,
    /// Connections that completed their handshake in this second.
    pub opened: u64,
    /// Connections that failed in this second.
    pub failed: u64,
    /// Connections that ended (either side closed) in this second.
    pub closed: u64,
    /// Of those, connections the server closed first.
    pub server_closed: u64,
    /// Connections open at the last event of this second (summed over threads).
    pub open: u64,
    /// Latency of what completed in this second: messages, or handshakes for
    /// `connect`, `hold` and `churn`.
    pub latency: Hist,
}

impl Bucket {
    fn new() -> Bucket {
        Bucket {
            sent: 0,
            received: 0,
            opened: 0,
            failed: 0,
            closed: 0,
            server_closed: 0,
            open: 0,
            latency: Hist::coarse(),
        }
    }

    fn merge(&mut self, o: &Bucket) {
        self.sent += o.sent;
        self.received += o.received;
        self.opened += o.opened;
        self.failed += o.failed;
        self.closed += o.closed;
        self.server_closed += o.server_closed;
        self.open += o.open;
        self.latency.merge(&o.latency);
    }
}

/// How hard one generator thread worked during the measurement window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ThreadLoad {
    /// Worker process index (0 without `--procs`).
    pub worker: usize,
    /// Thread index within its process.
    pub thread: usize,
    /// Fraction of the window the thread was not idle in `poll` (0..=1).
    pub busy: f64,
    /// Whole seconds in which the thread never idled (< 1% of the second in an empty poll).
    pub saturated_secs: u64,
    /// Whole seconds observed.
    pub observed_secs: u64,
}

/// Everything one thread (or, merged, one run) measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunStats {
    /// Counts.
    pub counters: Counters,
    /// Failed connections by cause.
    pub failures: Failures,
    /// Message latency: round trip (echo, rate, churn) or publish → delivery (broadcast),
    /// for messages sent inside the measurement window.
    pub latency: Hist,
    /// TCP connect time.
    pub connect: Hist,
    /// Connect start → valid 101 received.
    pub handshake: Hist,
    /// Churn: connect start → connection closed.
    pub cycle: Hist,
    /// Per-second buckets over the measurement window.
    pub timeline: Vec<Bucket>,
    /// Per-thread load.
    pub threads: Vec<ThreadLoad>,
    /// Length of the measurement window actually run, nanoseconds (longest thread).
    pub window_ns: u64,
    /// Broadcast: per sequence number published in the window, the latency of its latest
    /// delivery (publish → the last subscriber had it), nanoseconds; 0 when none came.
    pub last_delivery: Vec<u64>,
    /// Broadcast: subscriber counts per `--url` (node), in `--url` order.
    pub nodes: Vec<NodeCounts>,
}

/// Broadcast counts of the subscribers on one `--url` (one node of a cluster).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCounts {
    /// Subscribers open when publishing started.
    pub subscribers: u64,
    /// Distinct (subscriber, message) deliveries.
    pub delivered: u64,
    /// Deliveries of a message a subscriber already had.
    pub duplicates: u64,
}

impl NodeCounts {
    /// Adds `o` field by field.
    pub fn merge(&mut self, o: &NodeCounts) {
        self.subscribers += o.subscribers;
        self.delivered += o.delivered;
        self.duplicates += o.duplicates;
    }
}

impl Default for RunStats {
    fn default() -> Self {
        RunStats::new()
    }
}

impl RunStats {
    /// Empty stats.
    pub fn new() -> RunStats {
        RunStats {
            counters: Counters::default(),
            failures: Failures::default(),
            latency: Hist::precise(),
            connect: Hist::precise(),
            handshake: Hist::precise(),
            cycle: Hist::precise(),
            timeline: Vec::new(),
            threads: Vec::new(),
            window_ns: 0,
            last_delivery: Vec::new(),
            nodes: Vec::new(),
        }
    }

    /// Adds `o` (another thread's or worker's stats).
    pub fn merge(&mut self, o: &RunStats) {
        self.counters.merge(&o.counters);
        self.failures.merge(&o.failures);
        self.latency.merge(&o.latency);
        self.connect.merge(&o.connect);
        self.handshake.merge(&o.handshake);
        self.cycle.merge(&o.cycle);
        if self.timeline.len() < o.timeline.len() {
            self.timeline.resize_with(o.timeline.len(), Bucket::new);
        }
        for (a, b) in self.timeline.iter_mut().zip(&o.timeline) {
            a.merge(b);
        }
        self.threads.extend(o.threads.iter().cloned());
        self.window_ns = self.window_ns.max(o.window_ns);
        if self.last_delivery.len() < o.last_delivery.len() {
            self.last_delivery.resize(o.last_delivery.len(), 0);
        }
        for (a, b) in self.last_delivery.iter_mut().zip(&o.last_delivery) {
            *a = (*a).max(*b);
        }
        if self.nodes.len() < o.nodes.len() {
            self.nodes.resize_with(o.nodes.len(), NodeCounts::default);
        }
        for (a, b) in self.nodes.iter_mut().zip(&o.nodes) {
            a.merge(b);
        }
    }

    /// The counts of node `i` (a `--url` index, at most 256 of them).
    pub fn node(&mut self, i: usize) -> &mut NodeCounts {
        if self.nodes.len() <= i {
            self.nodes.resize_with(i + 1, NodeCounts::default);
        }
        &mut self.nodes[i]
    }

    /// The bucket for time `now`, given the window's start and its length in buckets;
    /// `None` outside the window.
    pub fn bucket(&mut self, origin_ns: u64, buckets: usize, now: u64) -> Option<&mut Bucket> {
        if origin_ns == 0 || now < origin_ns {
            return None;
        }
        let i = ((now - origin_ns) / 1_000_000_000) as usize;
        if i >= buckets {
            return None;
        }
        if self.timeline.len() <= i {
            self.timeline.resize_with(i + 1, Bucket::new);
        }
        self.timeline.get_mut(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_survive_json_and_merge() {
        let mut a = RunStats::new();
        for v in [1_000u64, 2_000, 3_000, 50_000] {
            a.latency.record(v);
        }
        a.counters.sent = 4;
        a.failures.record(FailCause::Http(404));
        a.bucket(10, 3, 10 + 1_500_000_000).expect("inside").latency.record(7);
        let json = serde_json::to_string(&a).expect("serializes");
        let b: RunStats = serde_json::from_str(&json).expect("parses");
        assert_eq!(b.latency.count(), 4);
        assert_eq!(b.timeline.len(), 2);
        assert_eq!(b.failures.http.get(&404), Some(&1));
        let mut m = RunStats::new();
        m.merge(&a);
        m.merge(&b);
        assert_eq!(m.counters.sent, 8);
        assert_eq!(m.latency.count(), 8);
        assert_eq!(m.timeline[1].latency.count(), 2);
        let s = m.latency.summary();
        assert!(s.p50_us >= 1.9 && s.p50_us <= 2.1, "{s:?}");
        assert!(s.max_us >= 49.9);
    }

    #[test]
    fn buckets_outside_the_window_are_none() {
        let mut s = RunStats::new();
        assert!(s.bucket(0, 5, 100).is_none());
        assert!(s.bucket(100, 5, 99).is_none());
        assert!(s.bucket(100, 5, 100 + 5_000_000_000).is_none());
        assert!(s.bucket(100, 5, 100 + 4_999_999_999).is_some());
    }
}

//! `broadcast`: N subscribers on a fan-out path and one sender (or one per `--sender-url`)
//! publishing at `--rate`.
//!
//! The senders (on the first thread of the first worker) publish messages stamped with
//! their intended send time and a sequence number, round-robin over the senders (so a
//! cluster's nodes each publish their share). Subscribers spread over the `--url`s (one
//! per node), and deliveries are also counted per node: a message that reaches one node's
//! subscribers and not another's shows up as that node's missing deliveries. Every subscriber keeps a bitmap of the
//! sequence numbers it received, so each delivery is timed, and at the end the run knows
//! what was delivered, what is missing and what came twice. The server is expected to
//! deliver every message to every connection on the path, the sender included (wsloop's
//! `/broadcast`); the sender's own copies are counted apart.

use crate::engine::{Driver, End, Io, Msg, Tick};
use crate::payload::{Stamp, Template};
use crate::scenario::{Lifecycle, Opener, Stage, count_answer, count_sent, earliest};
use crate::stats::Counters;

/// Per-connection state.
#[derive(Debug, Clone)]
pub enum BroadcastConn {
    /// The publishing connection.
    Sender,
    /// A subscriber.
    Subscriber {
        /// One bit per sequence number received.
        seen: Vec<u64>,
        /// Distinct messages received.
        got: u64,
        /// Open when publishing started (only these count toward expected deliveries).
        counted: bool,
        /// The `--url` (node) it connected to.
        node: usize,
    },
}

/// The broadcast driver.
#[derive(Debug)]
pub struct Broadcast {
    lc: Lifecycle,
    opener: Opener,
    /// `Some(index)` on the thread that owns the senders (index, index + 1, ... pick
    /// their source addresses).
    sender_index: Option<usize>,
    /// How many senders to open (one per `--sender-url`).
    sender_count: usize,
    /// The senders still open, in publishing order.
    sender_keys: Vec<usize>,
    sender_tried: bool,
    template: Template,
    interval_ns: f64,
    published: u64,
    max_seq: u64,
    next_check: u64,
}

impl Broadcast {
    /// A driver for the opener's subscribers, plus `sender_count` senders when
    /// `sender_index` is set. `rate` is messages per second (over all senders); `max_seq`
    /// bounds the sequence numbers accepted.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        lc: Lifecycle,
        opener: Opener,
        sender_index: Option<usize>,
        sender_count: usize,
        template: Template,
        rate: f64,
        max_seq: u64,
    ) -> Broadcast {
        Broadcast {
            lc,
            opener,
            sender_index,
            sender_count: sender_count.max(1),
            sender_keys: Vec::new(),
            sender_tried: false,
            template,
            interval_ns: 1e9 / rate.max(0.001),
            published: 0,
            max_seq,
            next_check: 0,
        }
    }

    fn publish_due(&mut self, io: &mut Io<BroadcastConn>) -> Option<u64> {
        loop {
            if self.sender_keys.is_empty() {
                return None;
            }
            let due = self.lc.go + (self.published as f64 * self.interval_ns) as u64;
            if due >= self.lc.measure_end {
                return None;
            }
            if due > io.now {
                return Some(due);
            }
            let turn = (self.published % self.sender_keys.len() as u64) as usize;
            let key = self.sender_keys[turn];
            let stamp = Stamp { ts: due, seq: self.published };
            if !io.send(key, &self.template, stamp) {
                io.stats.counters.skipped += 1;
                if !io.is_open(key) {
                    // The next sender publishes the rest; this message stays skipped.
                    self.sender_keys.remove(turn);
                }
            } else {
                count_sent(io, due, io.last_len());
            }
            self.published += 1;
        }
    }

    fn all_delivered(&mut self, io: &mut Io<BroadcastConn>) -> bool {
        let Some(published) = io.shared().published() else {
            return false;
        };
        if io.now < self.next_check {
            return false;
        }
        self.next_check = io.now + 5_000_000;
        io.all_keys().into_iter().all(|k| match io.state(k) {
            Some(BroadcastConn::Subscriber { got, counted: true, .. }) => *got >= published,
            _ => true,
        })
    }
}

impl Driver for Broadcast {
    type State = BroadcastConn;

    fn tick(&mut self, io: &mut Io<BroadcastConn>) -> Tick {
        let mut due = None;
        if self.lc.stage == Stage::Opening {
            if let (Some(index), false) = (self.sender_index, self.sender_tried) {
                self.sender_tried = true;
                for i in 0..self.sender_count {
                    if let Ok(key) = io.connect_alt(index + i, i, BroadcastConn::Sender) {
                        self.sender_keys.push(key);
                    }
                }
            }
            let nodes = io.node_count();
            due = self.opener.open_due(io, |index| BroadcastConn::Subscriber {
                seen: Vec::new(),
                got: 0,
                counted: false,
                node: index % nodes,
            });
        }
        if self.lc.stage == Stage::Running {
            // Before the window may close: publish what was due inside it, even late.
            self.publish_due(io);
        }
        loop {
            let opened_all = self.opener.exhausted() && io.pending_count() == 0;
            let drained = self.all_delivered(io);
            match self.lc.advance(io, opened_all, drained) {
                None => break,
                Some(Stage::Running) => {
                    let mut subscribers = 0;
                    for key in io.open_keys() {
                        if let Some(BroadcastConn::Subscriber { counted, node, .. }) =
                            io.state_mut(key)
                        {
                            *counted = true;
                            subscribers += 1;
                            let node = *node;
                            io.stats.node(node).subscribers += 1;
                        }
                    }
                    io.stats.counters.subscribers += subscribers;
                    self.sender_keys.retain(|&k| io.is_open(k));
                }
                Some(Stage::Draining) if self.sender_index.is_some() => {
                    io.stats.counters.published = self.published;
                    io.shared().set_published(self.published);
                }
                Some(_) => {}
            }
        }
        if self.lc.stage == Stage::Running {
            due = self.publish_due(io);
        }
        earliest(self.lc.wake(io.now), due)
    }

    fn on_open(&mut self, _io: &mut Io<BroadcastConn>, _key: usize) {}

    fn on_message(&mut self, io: &mut Io<BroadcastConn>, key: usize, msg: Msg) {
        let max_seq = self.max_seq;
        let Some(stamp) = msg.stamp.filter(|s| s.seq < max_seq) else {
            io.stats.counters.unstamped += 1;
            return;
        };
        let (fresh, node) = match io.state_mut(key) {
            Some(BroadcastConn::Sender) => {
                io.stats.counters.sender_echoes += 1;
                return;
            }
            Some(BroadcastConn::Subscriber { counted: false, .. }) | None => return,
            Some(BroadcastConn::Subscriber { seen, got, node, .. }) => {
                let word = (stamp.seq / 64) as usize;
                let bit = 1u64 << (stamp.seq % 64);
                if seen.len() <= word {
                    seen.resize(word + 1, 0);
                }
                let fresh = seen[word] & bit == 0;
                seen[word] |= bit;
                if fresh {
                    *got += 1;
                }
                (fresh, *node)
            }
        };
        if fresh {
            io.stats.counters.delivered += 1;
            io.stats.node(node).delivered += 1;
            if io.in_window(stamp.ts) {
                // Bounded by max_seq, like the subscribers' bitmaps.
                let seq = stamp.seq as usize;
                let last = &mut io.stats.last_delivery;
                if last.len() <= seq {
                    last.resize(seq + 1, 0);
                }
                last[seq] = last[seq].max(io.now.saturating_sub(stamp.ts));
            }
            count_answer(io, stamp);
        } else {
            io.stats.counters.duplicates += 1;
            io.stats.node(node).duplicates += 1;
        }
    }

    fn on_end(
        &mut self,
        _io: &mut Io<BroadcastConn>,
        key: usize,
        _state: BroadcastConn,
        _end: End,
    ) {
        self.sender_keys.retain(|&k| k != key);
    }
}

/// Fills in expected and missing deliveries once every worker's counts are merged.
pub fn finalize(c: &mut Counters) {
    c.expected = c.published * c.subscribers;
    c.missing = c.expected.saturating_sub(c.delivered);
}

//! `rate`: N connections, each sending one message every `--interval` ms for `--duration`.
//!
//! Sends follow a fixed schedule (connection i starts at `interval * i / N`, so sends are
//! spread evenly), and each message carries its *intended* send time. When the generator
//! or the socket falls behind, the delay counts in the round trip: the percentiles are
//! corrected for coordinated omission.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::engine::{Driver, End, Io, Msg, Tick};
use crate::payload::{Stamp, Template};
use crate::scenario::{Answers, Lifecycle, Opener, Stage, count_sent, earliest, take_answer};

/// Per-connection state.
#[derive(Debug, Default, Clone, Copy)]
pub struct RateConn {
    index: usize,
    sent: u64,
    received: u64,
    next_due: u64,
}

impl Answers for RateConn {
    fn counts(&mut self) -> (u64, &mut u64) {
        (self.sent, &mut self.received)
    }
}

/// The rate driver.
#[derive(Debug)]
pub struct Rate {
    lc: Lifecycle,
    opener: Opener,
    template: Template,
    interval_ns: u64,
    total: usize,
    timers: BinaryHeap<Reverse<(u64, usize)>>,
    outstanding: u64,
}

impl Rate {
    /// A driver sending `template` every `interval_ns` on each of `total` connections
    /// (this thread owns the opener's share).
    pub fn new(
        lc: Lifecycle,
        opener: Opener,
        template: Template,
        interval_ns: u64,
        total: usize,
    ) -> Rate {
        Rate {
            lc,
            opener,
            template,
            interval_ns: interval_ns.max(1),
            total: total.max(1),
            timers: BinaryHeap::new(),
            outstanding: 0,
        }
    }

    fn schedule(&mut self, io: &mut Io<RateConn>, key: usize, first: u64) {
        if let Some(s) = io.state_mut(key) {
            s.next_due = first;
            self.timers.push(Reverse((first, key)));
        }
    }

    fn send_due(&mut self, io: &mut Io<RateConn>) {
        while let Some(&Reverse((due, key))) = self.timers.peek() {
            if due > io.now {
                break;
            }
            self.timers.pop();
            let Some(s) = io.state(key).copied() else {
                continue;
            };
            if s.next_due != due || !io.is_open(key) || due >= self.lc.measure_end {
                continue;
            }
            if io.send(key, &self.template, Stamp { ts: due, seq: s.sent }) {
                self.outstanding += 1;
                if let Some(st) = io.state_mut(key) {
                    st.sent += 1;
                }
                count_sent(io, due, io.last_len());
            } else {
                io.stats.counters.skipped += 1;
            }
            let next = due + self.interval_ns;
            self.schedule(io, key, next);
        }
    }
}

impl Driver for Rate {
    type State = RateConn;

    fn tick(&mut self, io: &mut Io<RateConn>) -> Tick {
        let mut due = None;
        if self.lc.stage == Stage::Opening {
            due = self.opener.open_due(io, |index| RateConn { index, ..RateConn::default() });
        }
        if self.lc.stage == Stage::Running {
            // Before the window may close: a thread that wakes late still sends what was
            // due inside the window (late, timed from its intended send time).
            self.send_due(io);
        }
        loop {
            let opened_all = self.opener.exhausted() && io.pending_count() == 0;
            match self.lc.advance(io, opened_all, self.outstanding == 0) {
                None => break,
                Some(Stage::Running) => {
                    let go = self.lc.go;
                    for key in io.open_keys() {
                        let index = io.state(key).map_or(0, |s| s.index);
                        let phase = (self.interval_ns as u128 * (index % self.total) as u128
                            / self.total as u128) as u64;
                        self.schedule(io, key, go + phase);
                    }
                }
                Some(Stage::Draining) => self.timers.clear(),
                Some(Stage::Closing) => {
                    io.stats.counters.in_flight += self.outstanding;
                    self.outstanding = 0;
                    for key in io.all_keys() {
                        if let Some(s) = io.state_mut(key) {
                            s.received = s.sent;
                        }
                    }
                }
                Some(_) => {}
            }
        }
        if self.lc.stage == Stage::Running {
            self.send_due(io);
            due = match (due, self.timers.peek()) {
                (Some(a), Some(Reverse((b, _)))) => Some(a.min(*b)),
                (None, Some(Reverse((b, _)))) => Some(*b),
                (d, None) => d,
            };
        }
        earliest(self.lc.wake(io.now), due)
    }

    fn on_open(&mut self, io: &mut Io<RateConn>, key: usize) {
        if self.lc.loading(io.now) {
            let now = io.now;
            self.schedule(io, key, now);
        }
    }

    fn on_message(&mut self, io: &mut Io<RateConn>, key: usize, msg: Msg) {
        if take_answer(io, key, msg.stamp).is_some() {
            self.outstanding = self.outstanding.saturating_sub(1);
        }
    }

    fn on_end(&mut self, io: &mut Io<RateConn>, _key: usize, state: RateConn, _end: End) {
        let lost = state.sent.saturating_sub(state.received);
        io.stats.counters.lost += lost;
        self.outstanding = self.outstanding.saturating_sub(lost);
    }
}

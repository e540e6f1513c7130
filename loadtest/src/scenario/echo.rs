//! `echo`: N connections, each keeping `--window` messages in flight for `--duration`.
//!
//! Every answer is checked against the sequence expected next and sent again at once, so
//! each connection always has W messages in flight. Messages/s, MB/s and the round-trip
//! percentiles come from the answers to messages sent inside the measurement window.

use crate::engine::{Driver, End, Io, Msg, Tick};
use crate::payload::{Stamp, Template};
use crate::scenario::{Lifecycle, Opener, Stage, count_answer, count_sent, earliest};

/// Per-connection state.
#[derive(Debug, Default, Clone, Copy)]
pub struct EchoConn {
    sent: u64,
    received: u64,
}

/// The echo driver.
#[derive(Debug)]
pub struct Echo {
    lc: Lifecycle,
    opener: Opener,
    template: Template,
    window: usize,
    outstanding: u64,
}

impl Echo {
    /// A driver keeping `window` copies of `template` in flight per connection.
    pub fn new(lc: Lifecycle, opener: Opener, template: Template, window: usize) -> Echo {
        Echo { lc, opener, template, window: window.max(1), outstanding: 0 }
    }

    fn send(&mut self, io: &mut Io<EchoConn>, key: usize) {
        let Some(seq) = io.state(key).map(|s| s.sent) else {
            return;
        };
        let ts = io.now;
        if io.send(key, &self.template, Stamp { ts, seq }) {
            if let Some(s) = io.state_mut(key) {
                s.sent += 1;
            }
            self.outstanding += 1;
            count_sent(io, ts, self.template.len());
        } else {
            io.stats.counters.skipped += 1;
        }
    }

    fn fill_window(&mut self, io: &mut Io<EchoConn>, key: usize) {
        for _ in 0..self.window {
            self.send(io, key);
        }
    }
}

impl Driver for Echo {
    type State = EchoConn;

    fn tick(&mut self, io: &mut Io<EchoConn>) -> Tick {
        let mut due = None;
        if self.lc.stage == Stage::Opening {
            due = self.opener.open_due(io, |_| EchoConn::default());
        }
        loop {
            let opened_all = self.opener.exhausted() && io.pending_count() == 0;
            let drained = self.outstanding == 0;
            match self.lc.advance(io, opened_all, drained) {
                None => break,
                Some(Stage::Running) => {
                    for key in io.open_keys() {
                        self.fill_window(io, key);
                    }
                }
                Some(Stage::Closing) => {
                    // What is still unanswered now is in flight, not lost.
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
        earliest(self.lc.wake(io.now), due)
    }

    fn on_open(&mut self, io: &mut Io<EchoConn>, key: usize) {
        if self.lc.loading(io.now) {
            self.fill_window(io, key);
        }
    }

    fn on_message(&mut self, io: &mut Io<EchoConn>, key: usize, msg: Msg) {
        let Some(stamp) = msg.stamp else {
            io.stats.counters.unstamped += 1;
            return;
        };
        let Some(s) = io.state_mut(key) else {
            return;
        };
        if s.received >= s.sent {
            io.stats.counters.unexpected += 1;
            return;
        }
        let in_order = stamp.seq == s.received;
        s.received += 1;
        if !in_order {
            io.stats.counters.out_of_order += 1;
        }
        self.outstanding = self.outstanding.saturating_sub(1);
        count_answer(io, stamp);
        if self.lc.loading(io.now) {
            self.send(io, key);
        }
    }

    fn on_end(&mut self, io: &mut Io<EchoConn>, _key: usize, state: EchoConn, _end: End) {
        let lost = state.sent.saturating_sub(state.received);
        io.stats.counters.lost += lost;
        self.outstanding = self.outstanding.saturating_sub(lost);
    }
}

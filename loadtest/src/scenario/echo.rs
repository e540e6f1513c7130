//! `echo`: N connections, each keeping `--window` messages in flight for `--duration`.
//!
//! Every answer is checked against the sequence expected next and sent again at once, so
//! each connection always has W messages in flight. Messages/s, MB/s and the round-trip
//! percentiles come from the answers to messages sent inside the measurement window.

use crate::engine::{Driver, End, Io, Msg, Tick};
use crate::payload::{Stamp, Template};
use crate::scenario::{Answers, Lifecycle, Opener, Stage, count_sent, earliest, take_answer};

/// Per-connection state.
#[derive(Debug, Default, Clone, Copy)]
pub struct EchoConn {
    sent: u64,
    received: u64,
}

impl Answers for EchoConn {
    fn counts(&mut self) -> (u64, &mut u64) {
        (self.sent, &mut self.received)
    }
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
            count_sent(io, ts, io.last_len());
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
        if take_answer(io, key, msg.stamp).is_none() {
            return;
        }
        self.outstanding = self.outstanding.saturating_sub(1);
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

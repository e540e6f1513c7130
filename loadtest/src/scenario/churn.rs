//! `churn`: connections opened and closed continuously at `--rate` per second.
//!
//! Each connection opens, sends `--messages` messages and waits for their echoes, then
//! runs the close handshake and waits for the server to close TCP. A completed cycle is
//! timed from `connect()` to the end; at most `--connections` are alive at once (opens
//! due while at the cap are delayed, so the achieved rate shows it).

use crate::engine::{Driver, End, Io, Msg, Tick};
use crate::payload::{Stamp, Template};
use crate::scenario::{Answers, Lifecycle, Opener, Stage, count_sent, earliest, take_answer};

/// Per-connection state.
#[derive(Debug, Default, Clone, Copy)]
pub struct ChurnConn {
    started: u64,
    sent: u64,
    received: u64,
}

impl Answers for ChurnConn {
    fn counts(&mut self) -> (u64, &mut u64) {
        (self.sent, &mut self.received)
    }
}

/// The churn driver.
#[derive(Debug)]
pub struct Churn {
    lc: Lifecycle,
    opener: Opener,
    template: Template,
    messages: u64,
}

impl Churn {
    /// A driver cycling connections at the opener's rate, `messages` echoes per cycle.
    pub fn new(lc: Lifecycle, opener: Opener, template: Template, messages: u64) -> Churn {
        Churn { lc, opener, template, messages }
    }
}

impl Driver for Churn {
    type State = ChurnConn;

    fn tick(&mut self, io: &mut Io<ChurnConn>) -> Tick {
        let mut due = None;
        loop {
            let drained = io.conn_count() == 0;
            match self.lc.advance(io, true, drained) {
                None => break,
                Some(Stage::Closing) => {
                    for key in io.all_keys() {
                        if let Some(s) = io.state_mut(key) {
                            let left = s.sent.saturating_sub(s.received);
                            s.received = s.sent;
                            io.stats.counters.in_flight += left;
                        }
                    }
                }
                Some(_) => {}
            }
        }
        if self.lc.loading(io.now) {
            let now = io.now;
            due = self.opener.open_due(io, |_| ChurnConn { started: now, ..ChurnConn::default() });
        }
        earliest(self.lc.wake(io.now), due)
    }

    fn on_open(&mut self, io: &mut Io<ChurnConn>, key: usize) {
        if self.messages == 0 {
            io.close(key);
            return;
        }
        let ts = io.now;
        for seq in 0..self.messages {
            if io.send(key, &self.template, Stamp { ts, seq }) {
                if let Some(s) = io.state_mut(key) {
                    s.sent += 1;
                }
                count_sent(io, ts, io.last_len());
            } else {
                io.stats.counters.skipped += 1;
            }
        }
    }

    fn on_message(&mut self, io: &mut Io<ChurnConn>, key: usize, msg: Msg) {
        if take_answer(io, key, msg.stamp).is_some_and(|received| received >= self.messages) {
            io.close(key);
        }
    }

    fn on_end(&mut self, io: &mut Io<ChurnConn>, _key: usize, state: ChurnConn, end: End) {
        io.stats.counters.lost += state.sent.saturating_sub(state.received);
        if end == End::ClosedByGenerator
            && state.received >= self.messages
            && state.sent >= self.messages
        {
            io.stats.counters.cycles += 1;
            if io.in_window(state.started) {
                io.stats.cycle.record(io.now.saturating_sub(state.started));
            }
        }
    }
}

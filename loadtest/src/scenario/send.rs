//! `send`: fire-and-forget messages as fast as the sockets take them (the generator's
//! ceiling).
//!
//! Nothing is awaited: each connection's queue is refilled and written until the socket
//! is full. Against `wsloop-loadtest sink --mode discard` (which reads and drops bytes
//! without decoding them) this measures how many frames per second one generator thread
//! can build, mask and write, which is the most any scenario can drive.

use crate::engine::{Driver, End, Io, Msg, Tick};
use crate::payload::{Stamp, Template};
use crate::scenario::{Lifecycle, Opener, Stage, count_sent, earliest};

/// Queue bytes built per connection before each write.
const BATCH_BYTES: usize = 64 * 1024;
/// Batches written per connection per turn before others get theirs.
const BATCHES_PER_TURN: usize = 16;

/// The send driver.
#[derive(Debug)]
pub struct Send {
    lc: Lifecycle,
    opener: Opener,
    template: Template,
    again: Vec<usize>,
}

impl Send {
    /// A driver blasting `template` on the opener's connections.
    pub fn new(lc: Lifecycle, opener: Opener, template: Template) -> Send {
        Send { lc, opener, template, again: Vec::new() }
    }

    fn fill(&mut self, io: &mut Io<u64>, key: usize) {
        for _ in 0..BATCHES_PER_TURN {
            while io.queued(key) < BATCH_BYTES {
                let Some(seq) = io.state(key).copied() else {
                    return;
                };
                let ts = io.now;
                if !io.send(key, &self.template, Stamp { ts, seq }) {
                    return;
                }
                if let Some(s) = io.state_mut(key) {
                    *s += 1;
                }
                count_sent(io, ts, io.last_len());
            }
            if !io.flush(key) {
                // The socket is full: the next writable event calls `on_writable`.
                return;
            }
            if !self.lc.loading(io.now) {
                return;
            }
        }
        // Still writable: continue next turn.
        self.again.push(key);
    }
}

impl Driver for Send {
    type State = u64;

    fn tick(&mut self, io: &mut Io<u64>) -> Tick {
        let mut due = None;
        if self.lc.stage == Stage::Opening {
            due = self.opener.open_due(io, |_| 0);
        }
        loop {
            let opened_all = self.opener.exhausted() && io.pending_count() == 0;
            match self.lc.advance(io, opened_all, true) {
                None => break,
                Some(Stage::Running) => self.again = io.open_keys(),
                Some(_) => {}
            }
        }
        if self.lc.loading(io.now) && !self.again.is_empty() {
            for key in std::mem::take(&mut self.again) {
                self.fill(io, key);
            }
            io.now = crate::clock::now_ns();
            due = Some(io.now);
        } else if !self.lc.loading(io.now) {
            self.again.clear();
        }
        earliest(self.lc.wake(io.now), due)
    }

    fn on_open(&mut self, io: &mut Io<u64>, key: usize) {
        if self.lc.loading(io.now) {
            self.again.push(key);
        }
    }

    fn on_message(&mut self, io: &mut Io<u64>, _key: usize, _msg: Msg) {
        io.stats.counters.unstamped += 1;
    }

    fn on_writable(&mut self, io: &mut Io<u64>, key: usize) {
        if self.lc.loading(io.now) {
            self.fill(io, key);
        }
    }

    fn on_end(&mut self, _io: &mut Io<u64>, _key: usize, _state: u64, _end: End) {}
}

//! `connect`: open N connections at `--rate` per second and time each one.
//!
//! Every connection is timed from `connect()` to the TCP handshake and to a valid 101;
//! failures are counted by cause (refused, timeout, reset, HTTP status...). Connections
//! stay open until all have been attempted, then close together.

use crate::engine::{Driver, End, Io, Msg, Tick};
use crate::scenario::{Lifecycle, Opener, Stage, earliest};

/// The connect driver.
#[derive(Debug)]
pub struct Connect {
    lc: Lifecycle,
    opener: Opener,
}

impl Connect {
    /// A driver opening the opener's share during the measurement window. The lifecycle
    /// must have an open window (it ends when every connection has been attempted).
    pub fn new(lc: Lifecycle, opener: Opener) -> Connect {
        Connect { lc, opener }
    }
}

impl Driver for Connect {
    type State = ();

    fn tick(&mut self, io: &mut Io<()>) -> Tick {
        let mut due = None;
        loop {
            if self.lc.stage == Stage::Running {
                due = self.opener.open_due(io, |_| ());
                if self.opener.exhausted() && io.pending_count() == 0 {
                    self.lc.stop_running(io);
                }
            }
            match self.lc.advance(io, true, true) {
                None => break,
                Some(_) => continue,
            }
        }
        earliest(self.lc.wake(io.now), due)
    }

    fn on_open(&mut self, _io: &mut Io<()>, _key: usize) {}

    fn on_message(&mut self, io: &mut Io<()>, _key: usize, _msg: Msg) {
        io.stats.counters.unstamped += 1;
    }

    fn on_end(&mut self, _io: &mut Io<()>, _key: usize, _state: (), _end: End) {}
}

//! `hold`: open N connections, keep them idle for `--duration`, then close them.
//!
//! The connections send nothing after the handshake (the engine still answers pings). At
//! the end of the window every thread holds its connections open at a barrier while the
//! coordinator samples the server's RSS (`--server-pid`), so "after" is measured with all
//! of them open. Connections the server drops during the hold are counted.

use crate::engine::{Driver, End, Io, Msg, Tick};
use crate::scenario::{Lifecycle, Opener, Stage, earliest};

/// The hold driver.
#[derive(Debug)]
pub struct Hold {
    lc: Lifecycle,
    opener: Opener,
}

impl Hold {
    /// A driver opening the opener's share before the window and holding it through. The
    /// lifecycle must have the hold barrier.
    pub fn new(lc: Lifecycle, opener: Opener) -> Hold {
        Hold { lc, opener }
    }
}

impl Driver for Hold {
    type State = ();

    fn tick(&mut self, io: &mut Io<()>) -> Tick {
        let mut due = None;
        if self.lc.stage == Stage::Opening {
            due = self.opener.open_due(io, |_| ());
        }
        loop {
            let opened_all = self.opener.exhausted() && io.pending_count() == 0;
            if self.lc.advance(io, opened_all, true).is_none() {
                break;
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

//! What a reactor does when `accept` fails for lack of file descriptors or memory: warn
//! (at most once a second), stop accepting for a moment, then try again on its own.
//!
//! Retrying at once would spin: the listener stays readable while the backlog is full.
//! Waiting for the next listener event instead would strand the clients already in the
//! backlog (edge-triggered epoll reports no new edge for them), so they would time out
//! although descriptors free up meanwhile.

use std::io;
use std::time::{Duration, Instant};

use crate::metrics::Counters;

/// How long a reactor stops accepting after a failure.
pub(crate) const PAUSE: Duration = Duration::from_millis(100);
/// Warnings at most this often; failures in between are counted in the next one.
const WARN_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(crate) struct AcceptBackoff {
    resume_at: Option<Instant>,
    last_warning: Option<Instant>,
    unreported: u64,
}

impl AcceptBackoff {
    /// `accept` failed with `error` at `now`: pause, count, maybe warn.
    pub(crate) fn failed(
        &mut self,
        error: &io::Error,
        now: Instant,
        reactor: usize,
        counters: &Counters,
    ) {
        Counters::bump(&counters.accept_errors);
        self.resume_at = Some(now + PAUSE);
        self.unreported += 1;
        if self.last_warning.is_some_and(|at| now.duration_since(at) < WARN_EVERY) {
            return;
        }
        let hint = match error.raw_os_error() {
            Some(24) => " (the process is out of file descriptors: raise `ulimit -n`)",
            Some(23) => " (the system is out of file descriptors: raise fs.file-max)",
            _ => "",
        };
        log::warn!(
            "reactor {reactor}: accept failed: {error}{hint}; {} failure(s) since the last \
             warning; new connections wait in the listen backlog, retrying every {} ms",
            self.unreported,
            PAUSE.as_millis()
        );
        self.last_warning = Some(now);
        self.unreported = 0;
    }

    /// Whether accepting is paused.
    pub(crate) fn is_paused(&self) -> bool {
        self.resume_at.is_some()
    }

    /// How long the poll may sleep before the pause ends.
    pub(crate) fn wait(&self, now: Instant) -> Option<Duration> {
        self.resume_at.map(|at| at.saturating_duration_since(now))
    }

    /// Whether the pause has just ended, so the backlog should be accepted now.
    pub(crate) fn resume_due(&mut self, now: Instant) -> bool {
        match self.resume_at {
            Some(at) if now >= at => {
                self.resume_at = None;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_then_resumes_once() {
        let counters = Counters::new(1);
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        assert!(!b.is_paused() && b.wait(t0).is_none());
        b.failed(&io::Error::from_raw_os_error(24), t0, 0, &counters);
        b.failed(&io::Error::from_raw_os_error(24), t0, 0, &counters);
        assert!(b.is_paused());
        assert_eq!(b.wait(t0), Some(PAUSE));
        assert!(!b.resume_due(t0 + PAUSE / 2));
        assert!(b.resume_due(t0 + PAUSE));
        assert!(!b.resume_due(t0 + PAUSE * 2), "resumes once");
        assert_eq!(Counters::get(&counters.accept_errors), 2);
        assert_eq!(b.unreported, 1, "the second failure waits for the next warning");
    }
}

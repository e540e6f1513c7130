//! Whether a reactor sleeps in its next poll or polls again at once.
//!
//! A thread that sleeps in `epoll_wait` takes tens of microseconds to run again when a
//! packet arrives (an idle core must be woken; on a virtual machine, a trip through the
//! hypervisor). At low load that wake-up is most of a message's round trip. With a
//! busy-poll window, a reactor that just had events keeps polling with a zero timeout
//! for that long, so the next message finds it running. The cost is the CPU the polls
//! burn, and only inside the window: an idle reactor sleeps as before.

use std::time::{Duration, Instant};

/// The busy-poll window and when the reactor last had events.
pub(crate) struct BusyPoll {
    window: Duration,
    last_busy: Option<Instant>,
}

impl BusyPoll {
    /// Polls again at once for `window` after each poll that brought events (zero:
    /// never).
    pub(crate) fn new(window: Duration) -> BusyPoll {
        BusyPoll { window, last_busy: None }
    }

    /// The timeout for a poll at `now`, given how long the reactor could `sleep`
    /// (`None`: until an event): zero inside the window, `sleep` outside it. The clock
    /// is read only after events inside a window, so a reactor without one never reads it.
    pub(crate) fn timeout(
        &self,
        now: impl FnOnce() -> Instant,
        sleep: Option<Duration>,
    ) -> Option<Duration> {
        match self.last_busy {
            Some(busy) if now().saturating_duration_since(busy) < self.window => {
                Some(Duration::ZERO)
            }
            _ => sleep,
        }
    }

    /// Records what a poll that returned at `now` brought.
    pub(crate) fn polled(&mut self, now: Instant, got_events: bool) {
        if got_events && !self.window.is_zero() {
            self.last_busy = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MICRO: Duration = Duration::from_micros(1);

    #[test]
    fn polls_at_once_for_the_window_after_events_then_sleeps_as_asked() {
        let start = Instant::now();
        let mut busy = BusyPoll::new(200 * MICRO);
        let sleep = Some(Duration::from_millis(100));
        assert_eq!(busy.timeout(|| start, sleep), sleep, "no events yet: sleep");
        busy.polled(start, true);
        assert_eq!(busy.timeout(|| start, sleep), Some(Duration::ZERO));
        assert_eq!(busy.timeout(|| start + 199 * MICRO, sleep), Some(Duration::ZERO));
        assert_eq!(busy.timeout(|| start + 200 * MICRO, sleep), sleep, "the window is over");
        assert_eq!(busy.timeout(|| start + 200 * MICRO, None), None);
    }

    #[test]
    fn empty_polls_do_not_extend_the_window_and_events_restart_it() {
        let start = Instant::now();
        let mut busy = BusyPoll::new(200 * MICRO);
        busy.polled(start, true);
        busy.polled(start + 150 * MICRO, false);
        assert_eq!(busy.timeout(|| start + 250 * MICRO, None), None);
        busy.polled(start + 300 * MICRO, true);
        assert_eq!(busy.timeout(|| start + 450 * MICRO, None), Some(Duration::ZERO));
    }

    #[test]
    fn a_zero_window_never_spins() {
        let start = Instant::now();
        let mut busy = BusyPoll::new(Duration::ZERO);
        busy.polled(start, true);
        assert_eq!(busy.timeout(|| start, None), None);
        assert_eq!(busy.timeout(|| start, Some(MICRO)), Some(MICRO));
        // Without a window the reactor's loop never reads the clock for it.
        assert_eq!(busy.timeout(|| unreachable!("the clock was read"), None), None);
    }
}

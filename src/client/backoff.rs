//! When a client connection tries again: exponential backoff with full jitter, as a
//! small state machine over an injected clock reading and random number, so its timing
//! is tested in virtual time.
//!
//! Attempt `n` (1-based) waits a uniformly random time in `[0, min(max, initial · 2^(n-1))]`
//! ("full jitter": clients that lost a server together spread their returns over the
//! whole window instead of arriving in waves). A connection that stayed open for
//! `reset_after` starts again from attempt 1 when it drops.

use std::time::Duration;

use super::options::Reconnect;

/// The reconnect schedule of one client connection.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    policy: Reconnect,
    /// Failed attempts since the last reset.
    attempt: u32,
    /// When the current connection opened (a reading of the injected clock).
    opened_at: Option<Duration>,
}

/// What to do after a connection or an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Try again after `wait`; this is attempt `attempt` since the last reset.
    Retry { attempt: u32, wait: Duration },
    /// `max_attempts` reached: give up.
    GiveUp,
}

impl Backoff {
    pub(crate) fn new(policy: Reconnect) -> Backoff {
        Backoff { policy, attempt: 0, opened_at: None }
    }

    /// The connection opened at `now`.
    pub(crate) fn opened(&mut self, now: Duration) {
        self.opened_at = Some(now);
    }

    /// The connection (or the attempt) ended at `now`: how long to wait before the next
    /// attempt; `random` is any random number.
    pub(crate) fn ended(&mut self, now: Duration, random: u64) -> Next {
        if let Some(opened) = self.opened_at.take()
            && now.saturating_sub(opened) >= self.policy.reset_after
        {
            self.attempt = 0;
        }
        self.attempt = self.attempt.saturating_add(1);
        if self.policy.max_attempts.is_some_and(|max| self.attempt > max) {
            return Next::GiveUp;
        }
        Next::Retry { attempt: self.attempt, wait: self.jittered(random) }
    }

    /// The upper bound of attempt `attempt`'s wait.
    pub(crate) fn window(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.policy.initial.saturating_mul(1u32 << doublings).min(self.policy.max)
    }

    fn jittered(&self, random: u64) -> Duration {
        let window = self.window(self.attempt);
        let nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(random % nanos.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Reconnect {
        Reconnect::default()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn windows_double_from_half_a_second_to_twenty() {
        let b = Backoff::new(policy());
        let windows: Vec<u64> = (1..=9).map(|n| b.window(n).as_millis() as u64).collect();
        assert_eq!(windows, [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000, 20000]);
        assert_eq!(b.window(u32::MAX), ms(20_000));
    }

    #[test]
    fn full_jitter_covers_the_whole_window() {
        let mut b = Backoff::new(policy());
        let mut now = Duration::ZERO;
        // The largest random number lands on the window's top, 0 on its bottom.
        for (attempt, top) in [(1, 500), (2, 1000), (3, 2000), (4, 4000)] {
            let next = b.clone().ended(now, 0);
            assert_eq!(next, Next::Retry { attempt, wait: Duration::ZERO });
            let top_nanos = ms(top).as_nanos() as u64;
            let next = b.ended(now, top_nanos);
            assert_eq!(next, Next::Retry { attempt, wait: ms(top) }, "attempt {attempt}");
            now += ms(top);
        }
    }

    #[test]
    fn a_connection_that_lasted_resets_the_schedule_and_a_short_one_does_not() {
        let mut b = Backoff::new(policy());
        let mut now = Duration::ZERO;
        for _ in 0..5 {
            b.ended(now, 1);
            now += ms(100);
        }
        // Up for 29.9 s: still counting (attempt 6).
        b.opened(now);
        now += ms(29_900);
        assert!(matches!(b.ended(now, 1), Next::Retry { attempt: 6, .. }));
        // Up for 30 s: back to attempt 1, window 500 ms.
        b.opened(now);
        now += ms(30_000);
        let huge = u64::MAX;
        assert_eq!(
            b.ended(now, huge),
            Next::Retry { attempt: 1, wait: Duration::from_nanos(huge % 500_000_001) }
        );
    }

    #[test]
    fn max_attempts_gives_up() {
        let mut b = Backoff::new(Reconnect { max_attempts: Some(2), ..policy() });
        assert!(matches!(b.ended(Duration::ZERO, 7), Next::Retry { attempt: 1, .. }));
        assert!(matches!(b.ended(Duration::ZERO, 7), Next::Retry { attempt: 2, .. }));
        assert_eq!(b.ended(Duration::ZERO, 7), Next::GiveUp);
    }

    #[test]
    fn waits_are_spread_not_in_step() {
        // A simple generator stands in for the reactor's random numbers.
        let mut x = 88172645463325252u64;
        let mut waits = Vec::new();
        for _ in 0..200 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut b = Backoff::new(policy());
            b.ended(Duration::ZERO, 0);
            b.ended(Duration::ZERO, 0);
            if let Next::Retry { wait, .. } = b.ended(Duration::ZERO, x) {
                waits.push(wait);
            }
        }
        assert!(waits.iter().all(|w| *w <= ms(2000)));
        let low = waits.iter().filter(|w| **w < ms(1000)).count();
        assert!((60..140).contains(&low), "{low} of 200 in the lower half");
    }
}

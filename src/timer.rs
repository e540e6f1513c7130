//! A coarse timing wheel, one per reactor: handshake, close and (later) idle and
//! heartbeat deadlines for every connection at O(1) each and no allocation per connection.
//!
//! Time is counted in ticks of [`TICK`]. A connection keeps its own deadline tick; the
//! wheel holds `(slot, tick)` entries in `tick % SLOTS` buckets. An entry is only a
//! reminder to look at the connection: the reactor checks the connection's current
//! deadline then, and re-schedules when the deadline moved later. So moving a deadline
//! later costs nothing, and stale entries fall out when their bucket comes round.

use std::time::{Duration, Instant};

/// The wheel's resolution.
pub(crate) const TICK: Duration = Duration::from_millis(100);
const SLOTS: usize = 1024;

/// A reminder to look at the connection in `slot` at `tick`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) slot: u32,
    pub(crate) tick: u32,
}

pub(crate) struct TimerWheel {
    start: Instant,
    buckets: Vec<Vec<Entry>>,
    /// The last tick whose bucket was emptied.
    done: u32,
    len: usize,
}

impl TimerWheel {
    pub(crate) fn new(start: Instant) -> TimerWheel {
        TimerWheel { start, buckets: (0..SLOTS).map(|_| Vec::new()).collect(), done: 0, len: 0 }
    }

    /// The tick `now` falls in.
    pub(crate) fn tick_at(&self, now: Instant) -> u32 {
        let ms = now.saturating_duration_since(self.start).as_millis();
        (ms / TICK.as_millis()) as u32
    }

    /// The first tick at or after `now + after`; never the current tick, so a deadline
    /// is never early.
    pub(crate) fn deadline(&self, now: Instant, after: Duration) -> u32 {
        let ticks = after.as_millis().div_ceil(TICK.as_millis()) as u32;
        self.tick_at(now).saturating_add(ticks.max(1))
    }

    pub(crate) fn schedule(&mut self, slot: u32, tick: u32) {
        let tick = tick.max(self.done + 1);
        self.buckets[tick as usize % SLOTS].push(Entry { slot, tick });
        self.len += 1;
    }

    /// Moves every entry due at or before `now` into `due`.
    pub(crate) fn expire(&mut self, now: Instant, due: &mut Vec<Entry>) {
        let now = self.tick_at(now);
        // Past one turn of the wheel every bucket has been visited once.
        let from = self.done.saturating_add(1).max(now.saturating_sub(SLOTS as u32 - 1));
        for tick in from..=now {
            let bucket = &mut self.buckets[tick as usize % SLOTS];
            let before = due.len();
            bucket.retain(|e| {
                let is_due = e.tick <= now;
                if is_due {
                    due.push(*e);
                }
                !is_due
            });
            self.len -= due.len() - before;
        }
        self.done = self.done.max(now);
    }

    /// How long the reactor may sleep before the next tick that could hold entries.
    pub(crate) fn next_wake(&self, now: Instant) -> Option<Duration> {
        if self.len == 0 {
            return None;
        }
        let next = self.start + TICK * (self.tick_at(now) + 1);
        Some(next.saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_fire_at_their_tick_not_before() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        let d = w.deadline(t0, Duration::from_millis(250));
        assert_eq!(d, 3);
        w.schedule(7, d);
        let mut due = Vec::new();
        w.expire(t0 + Duration::from_millis(290), &mut due);
        assert!(due.is_empty());
        w.expire(t0 + Duration::from_millis(300), &mut due);
        assert_eq!(due, vec![Entry { slot: 7, tick: 3 }]);
        assert_eq!(w.next_wake(t0), None);
    }

    #[test]
    fn entries_past_the_horizon_wait_for_their_turn() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        let far = SLOTS as u32 + 5;
        w.schedule(1, far);
        let mut due = Vec::new();
        w.expire(t0 + TICK * 5, &mut due);
        assert!(due.is_empty());
        w.expire(t0 + TICK * far, &mut due);
        assert_eq!(due, vec![Entry { slot: 1, tick: far }]);
    }

    #[test]
    fn a_long_sleep_visits_every_bucket_once() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        for s in 0..50 {
            w.schedule(s, s * 37 + 1);
        }
        let mut due = Vec::new();
        w.expire(t0 + TICK * 100_000, &mut due);
        assert_eq!(due.len(), 50);
        assert_eq!(w.next_wake(t0), None);
    }
}

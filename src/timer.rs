//! A coarse timing wheel, one per reactor: every connection's next deadline (handshake,
//! close, heartbeat, idle) at O(1) each and no allocation per connection.
//!
//! Time is counted in ticks of [`TICK`]. A connection's session keeps its own deadline;
//! the wheel holds `(slot, tick)` reminders in `tick % SLOTS` buckets, and the connection
//! records the tick of its one live reminder. When a reminder comes due ([`settle`]) the
//! reactor looks at the deadline as it is now: due, so the session acts; moved later, so
//! a new reminder is set; gone, so nothing. Moving a deadline later therefore costs
//! nothing, and stale reminders fall out when their bucket comes round.
//!
//! The wheel never reads a clock: the reactor reads it once per turn ([`TimerWheel::tick_at`])
//! and passes that tick to everything of the turn, so a reminder set during a turn can
//! never land in a bucket the same turn already emptied. That tick is rounded down, so
//! whoever sets a deadline counts from the end of it (`session::env::deadline_after`):
//! a reminder fires at the start of its tick, never before the duration it stands for
//! has passed, and at most one tick after.
//!
//! Buckets hold their reminders in fixed chunks of [`CHUNK`] entries, drawn from and
//! given back to one pool per wheel, rather than in a vector each. A vector per bucket
//! keeps the capacity of the most reminders it ever held: a connect storm fills a few
//! buckets with thousands of reminders, its heartbeats move to other buckets every
//! interval, and after a while every bucket of the wheel would keep a storm's worth of
//! capacity for idle connections. With chunks a bucket holds at most one partly filled
//! chunk, emptied chunks serve the next bucket, and the pool keeps at most
//! [`SPARE_CHUNKS`] of them.

use std::time::{Duration, Instant};

/// The wheel's resolution.
pub(crate) const TICK: Duration = Duration::from_millis(100);
const SLOTS: usize = 1024;
/// Reminders per chunk: 512 bytes, so a bucket's unused room stays small.
const CHUNK: usize = 64;
/// Emptied chunks kept for reuse (32 KiB); more go back to the allocator.
const SPARE_CHUNKS: usize = 64;

/// A reminder to look at the connection in `slot` at `tick`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) slot: u32,
    pub(crate) tick: u32,
}

/// Up to [`CHUNK`] reminders; never grows past that.
type Chunk = Vec<Entry>;

pub(crate) struct TimerWheel {
    start: Instant,
    /// Per bucket, its chunks; only the last may be partly filled.
    buckets: Vec<Vec<Chunk>>,
    /// Emptied chunks, for the next bucket that needs one.
    spare: Vec<Chunk>,
    /// The last tick whose bucket was emptied.
    done: u32,
    len: usize,
}

impl TimerWheel {
    pub(crate) fn new(start: Instant) -> TimerWheel {
        TimerWheel {
            start,
            buckets: (0..SLOTS).map(|_| Vec::new()).collect(),
            spare: Vec::new(),
            done: 0,
            len: 0,
        }
    }

    /// The tick `now` falls in (rounded down: `now` may be anywhere in it).
    pub(crate) fn tick_at(&self, now: Instant) -> u32 {
        let ms = now.saturating_duration_since(self.start).as_millis();
        u32::try_from(ms / TICK.as_millis()).unwrap_or(u32::MAX)
    }

    /// The instant tick `tick` begins.
    pub(crate) fn instant_of(&self, tick: u32) -> Instant {
        self.start + TICK * tick
    }

    /// Adds a reminder for `tick`, or for the first tick not yet expired if `tick` is;
    /// returns the tick it was filed under (the connection must record that one).
    pub(crate) fn schedule(&mut self, slot: u32, tick: u32) -> u32 {
        let tick = tick.max(self.done.saturating_add(1));
        self.file(Entry { slot, tick });
        self.len += 1;
        tick
    }

    /// Puts `entry` in its bucket's last chunk, starting a chunk when that one is full.
    fn file(&mut self, entry: Entry) {
        let chunks = &mut self.buckets[entry.tick as usize % SLOTS];
        match chunks.last_mut() {
            Some(last) if last.len() < CHUNK => last.push(entry),
            _ => {
                let mut chunk = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(CHUNK));
                chunk.push(entry);
                chunks.push(chunk);
            }
        }
    }

    /// Frees the pooled chunks beyond a few: for a reactor gone idle, so the chunks a
    /// burst of reminders needed go back to the allocator.
    pub(crate) fn release_spare(&mut self) {
        const IDLE_SPARE: usize = 4;
        self.spare.truncate(IDLE_SPARE);
        self.spare.shrink_to_fit();
    }

    /// Gives an emptied chunk back to the pool, or to the allocator when the pool is full.
    fn recycle(&mut self, chunk: Chunk) {
        if self.spare.len() < SPARE_CHUNKS {
            self.spare.push(chunk);
        }
    }

    /// Makes sure a reminder for `slot` comes by `deadline` (0: none wanted). One that
    /// is already due sooner is left alone.
    pub(crate) fn arm(&mut self, slot: u32, timer_tick: &mut u32, deadline: u32) {
        if deadline != 0 && (*timer_tick == 0 || deadline < *timer_tick) {
            *timer_tick = self.schedule(slot, deadline);
        }
    }

    /// Moves every entry due at or before tick `now` into `due`.
    pub(crate) fn expire(&mut self, now: u32, due: &mut Vec<Entry>) {
        // Past one turn of the wheel every bucket has been visited once.
        let from = self.done.saturating_add(1).max(now.saturating_sub(SLOTS as u32 - 1));
        for tick in from..=now {
            self.expire_bucket(tick as usize % SLOTS, now, due);
        }
        self.done = self.done.max(now);
    }

    /// Moves the bucket's entries due at `now` into `due` and files the others again, in
    /// order, into as few chunks as they need.
    fn expire_bucket(&mut self, bucket: usize, now: u32, due: &mut Vec<Entry>) {
        let chunks = std::mem::take(&mut self.buckets[bucket]);
        if chunks.is_empty() {
            return;
        }
        let before = due.len();
        for mut chunk in chunks {
            for entry in chunk.drain(..) {
                if entry.tick <= now {
                    due.push(entry);
                } else {
                    self.file(entry);
                }
            }
            self.recycle(chunk);
        }
        self.len -= due.len() - before;
    }

    /// The tick of the next turn that could find entries due, when there are any.
    pub(crate) fn next_tick(&self, now: u32) -> Option<u32> {
        (self.len > 0).then(|| now.max(self.done).saturating_add(1))
    }

    /// Whether the wheel holds no reminder.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The reminders the wheel has room for, in its buckets and its pool.
    #[cfg(test)]
    fn room(&self) -> usize {
        let filed: usize = self.buckets.iter().flatten().map(Vec::capacity).sum();
        filed + self.spare.iter().map(Vec::capacity).sum::<usize>()
    }
}

/// What a due reminder means for its connection, given the connection's recorded
/// reminder tick and its current deadline: true when the deadline has come and the
/// session must act. A reminder that is stale (the connection has a newer one) or
/// early (the deadline moved later; re-armed here) yields false.
pub(crate) fn settle(
    wheel: &mut TimerWheel,
    entry: Entry,
    timer_tick: &mut u32,
    deadline: u32,
    now: u32,
) -> bool {
    if *timer_tick != entry.tick {
        return false;
    }
    *timer_tick = 0;
    if deadline == 0 {
        return false;
    }
    if deadline > now {
        wheel.arm(entry.slot, timer_tick, deadline);
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wheel() -> TimerWheel {
        TimerWheel::new(Instant::now())
    }

    #[test]
    fn entries_fire_at_their_tick_not_before() {
        let mut w = wheel();
        assert_eq!(w.schedule(7, 3), 3);
        let mut due = Vec::new();
        w.expire(2, &mut due);
        assert!(due.is_empty());
        w.expire(3, &mut due);
        assert_eq!(due, vec![Entry { slot: 7, tick: 3 }]);
        assert!(w.is_empty());
        assert_eq!(w.next_tick(3), None);
    }

    #[test]
    fn entries_past_the_horizon_wait_for_their_turn() {
        let mut w = wheel();
        let far = SLOTS as u32 + 5;
        w.schedule(1, far);
        let mut due = Vec::new();
        w.expire(5, &mut due);
        assert!(due.is_empty());
        w.expire(far, &mut due);
        assert_eq!(due, vec![Entry { slot: 1, tick: far }]);
    }

    #[test]
    fn heartbeats_moving_round_the_wheel_keep_only_what_they_fill() {
        // A storm: 10,000 connections over 20 ticks, then a heartbeat every 300 ticks
        // that files each reminder in a bucket it never used before.
        let mut w = wheel();
        let mut ticks = vec![0u32; 10_000];
        for (slot, tick) in ticks.iter_mut().enumerate() {
            w.arm(slot as u32, tick, 1 + slot as u32 / 500);
        }
        let mut due = Vec::new();
        for now in 1..5_000 {
            due.clear();
            w.expire(now, &mut due);
            for entry in &due {
                let tick = &mut ticks[entry.slot as usize];
                assert!(settle(&mut w, *entry, tick, entry.tick, now));
                w.arm(entry.slot, tick, now + 300);
            }
        }
        assert_eq!(w.len, 10_000);
        // Each live bucket has at most one chunk partly filled; the pool is bounded.
        let live_buckets = w.buckets.iter().filter(|b| !b.is_empty()).count();
        let bound = 10_000 + (live_buckets + SPARE_CHUNKS) * CHUNK;
        assert!(w.room() <= bound, "room for {} reminders, bound {bound}", w.room());
        // Once the reminders are gone, an idle wheel keeps only a few chunks.
        w.expire(10_000, &mut due);
        w.release_spare();
        assert!(w.room() <= 4 * CHUNK, "room for {} reminders", w.room());
    }

    #[test]
    fn a_long_sleep_visits_every_bucket_once() {
        let mut w = wheel();
        for s in 0..50 {
            w.schedule(s, s * 37 + 1);
        }
        let mut due = Vec::new();
        w.expire(100_000, &mut due);
        assert_eq!(due.len(), 50);
        assert!(w.is_empty());
    }

    #[test]
    fn a_reminder_set_for_an_expired_tick_is_filed_where_it_will_fire() {
        let mut w = wheel();
        let mut due = Vec::new();
        w.expire(10, &mut due);
        let mut timer_tick = 0;
        // A deadline computed from an older reading of the clock: tick 9, already swept.
        w.arm(4, &mut timer_tick, 9);
        assert_eq!(timer_tick, 11, "filed under the next tick, and recorded as such");
        w.expire(11, &mut due);
        assert_eq!(due, vec![Entry { slot: 4, tick: 11 }]);
        assert!(settle(&mut w, due[0], &mut timer_tick, 9, 11), "due, late but not lost");
    }

    #[test]
    fn settle_re_arms_a_deadline_that_moved_later_and_skips_stale_reminders() {
        let mut w = wheel();
        let mut timer_tick = 0;
        w.arm(1, &mut timer_tick, 5);
        w.arm(1, &mut timer_tick, 8); // later: the reminder at 5 stays
        assert_eq!(timer_tick, 5);
        let mut due = Vec::new();
        w.expire(5, &mut due);
        assert!(!settle(&mut w, due[0], &mut timer_tick, 8, 5));
        assert_eq!(timer_tick, 8);
        due.clear();
        w.expire(8, &mut due);
        assert!(settle(&mut w, due[0], &mut timer_tick, 8, 8));
        // A reminder the connection no longer records is ignored.
        let stale = Entry { slot: 1, tick: 3 };
        let mut current = 9;
        assert!(!settle(&mut w, stale, &mut current, 9, 9));
        assert_eq!(current, 9);
    }
}

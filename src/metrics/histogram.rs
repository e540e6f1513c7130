//! A fixed-bucket histogram of durations on relaxed atomics: recorded by one thread,
//! read by any, never allocating after construction.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds (the last bucket is +Inf).
pub(crate) const BOUNDS_US: [u64; 12] =
    [10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 100_000, 1_000_000];

/// Counts per bucket (not cumulative), the sum in nanoseconds and the count.
#[derive(Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; BOUNDS_US.len() + 1],
    sum_ns: AtomicU64,
}

/// What a histogram holds, cumulative as Prometheus wants it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HistogramSnapshot {
    /// Observations at or under each bound of [`BOUNDS_US`], then the total count.
    pub(crate) cumulative: Vec<u64>,
    pub(crate) sum_ns: u64,
}

impl Histogram {
    pub(crate) fn record(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_US.iter().position(|&bound| us <= bound).unwrap_or(BOUNDS_US.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Adds this histogram into `into` (for a sum over reactors).
    pub(crate) fn add_to(&self, into: &mut HistogramSnapshot) {
        if into.cumulative.is_empty() {
            into.cumulative = vec![0; BOUNDS_US.len() + 1];
        }
        let mut running = 0;
        for (bucket, total) in self.buckets.iter().zip(into.cumulative.iter_mut()) {
            running += bucket.load(Ordering::Relaxed);
            *total += running;
        }
        into.sum_ns += self.sum_ns.load(Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_inclusive_and_cumulative() {
        let h = Histogram::default();
        h.record(Duration::from_micros(10));
        h.record(Duration::from_micros(11));
        h.record(Duration::from_secs(5));
        let mut s = HistogramSnapshot::default();
        h.add_to(&mut s);
        assert_eq!(s.cumulative[0], 1, "10 us is in the 10 us bucket");
        assert_eq!(s.cumulative[1], 2);
        assert_eq!(s.cumulative[BOUNDS_US.len() - 1], 2);
        assert_eq!(*s.cumulative.last().unwrap(), 3, "+Inf holds everything");
        assert_eq!(s.sum_ns, 5_000_000_000 + 21_000);
        h.add_to(&mut s);
        assert_eq!(*s.cumulative.last().unwrap(), 6, "a second reactor adds up");
    }
}

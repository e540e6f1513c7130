//! Counters keyed by a small label (a close code, an HTTP status, a reject cause): a fixed
//! table of atomics, so counting never allocates or locks and the label set is bounded.

use std::sync::atomic::{AtomicU64, Ordering};

/// One counter per known key, and one for everything else (key 0 in snapshots).
pub(crate) struct Labelled<const N: usize> {
    keys: [u16; N],
    counts: [AtomicU64; N],
    other: AtomicU64,
}

impl<const N: usize> Labelled<N> {
    pub(crate) fn new(keys: [u16; N]) -> Labelled<N> {
        Labelled {
            keys,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            other: AtomicU64::new(0),
        }
    }

    pub(crate) fn bump(&self, key: u16) {
        match self.keys.iter().position(|&k| k == key) {
            Some(i) => self.counts[i].fetch_add(1, Ordering::Relaxed),
            None => self.other.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// `(key, count)` for every key counted at least once; key 0 is "other".
    pub(crate) fn snapshot(&self) -> Vec<(u16, u64)> {
        let known =
            self.keys.iter().zip(&self.counts).map(|(&k, c)| (k, c.load(Ordering::Relaxed)));
        known.chain([(0, self.other.load(Ordering::Relaxed))]).filter(|&(_, n)| n > 0).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_count_as_other() {
        let l = Labelled::new([1000, 1008]);
        l.bump(1008);
        l.bump(1008);
        l.bump(4000);
        assert_eq!(l.snapshot(), vec![(1008, 2), (0, 1)]);
    }
}

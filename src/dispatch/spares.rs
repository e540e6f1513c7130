//! Emptied batch buffers kept for the reactors to fill again, bounded in bytes by what
//! recent batches needed.
//!
//! A batch grows on a reactor and is emptied on a worker. Freeing it there is a free into
//! another thread's malloc arena (and, for a large buffer, a consolidation of that arena),
//! so emptied buffers go back to the reactors. But a kept buffer is memory held for as
//! long as the server runs: sixteen buffers of up to 4,096 entries each could keep 3.6 MB
//! after one burst of traffic, and a connect storm left its buffers behind with the idle
//! connections. So what is kept follows the load: sixteen recent batches' worth of bytes
//! at most, and no buffer far larger than a recent batch.

use std::mem::size_of;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::{Receiver, Sender};

/// The most buffers kept, whatever their size.
const MAX_SPARES: usize = 16;

/// The bytes kept: this many batches of the recent length...
const KEPT_BATCHES: usize = 16;

/// ...and never more than this.
const MAX_KEPT_BYTES: usize = 1 << 20;

/// A buffer is kept only if it holds at most this many times the recent batch length:
/// one grown for a load that has passed is dropped, one of a varying load is kept.
const MAX_GROWTH: usize = 8;

/// The recent length never counts as less than this, so light traffic (batches of a
/// few events) still reuses its small buffers.
const MIN_RECENT: usize = 16;

/// Emptied buffers of `T`, shared by the threads that fill them and the threads that
/// empty them.
pub(crate) struct Spares<T> {
    channel: (Sender<Vec<T>>, Receiver<Vec<T>>),
    /// The bytes of capacity of the buffers in `channel`.
    kept: AtomicUsize,
    /// The longest recent batch, in entries: each batch given back raises it to its own
    /// length or lowers it by a 32nd (a load's batches vary a lot from turn to turn).
    /// Updated without a lock: workers that race may lose an update, which only shifts
    /// the bound a little.
    recent: AtomicUsize,
}

impl<T> Spares<T> {
    pub(crate) fn new() -> Spares<T> {
        Spares {
            channel: crossbeam_channel::bounded(MAX_SPARES),
            kept: AtomicUsize::new(0),
            recent: AtomicUsize::new(0),
        }
    }

    /// An empty buffer: a kept one that still fits the load, or a new one. A kept buffer
    /// grown for a load that has passed is freed here, on the thread that fills buffers.
    pub(crate) fn take(&self) -> Vec<T> {
        let recent = self.recent.load(Ordering::Relaxed);
        while let Ok(spare) = self.channel.1.try_recv() {
            self.kept.fetch_sub(bytes(&spare), Ordering::Relaxed);
            if fits(spare.capacity(), recent) {
                return spare;
            }
        }
        Vec::new()
    }

    /// Takes back `batch`, emptied after carrying `carried` entries, unless keeping it
    /// would hold more than the recent load needs.
    pub(crate) fn give_back(&self, batch: Vec<T>, carried: usize) {
        let recent = self.note(carried);
        let size = bytes(&batch);
        if !batch.is_empty() || size == 0 || !fits(batch.capacity(), recent) {
            return;
        }
        let kept = self.kept.fetch_add(size, Ordering::Relaxed) + size;
        if kept > limit_of::<T>(recent) || self.channel.0.try_send(batch).is_err() {
            self.kept.fetch_sub(size, Ordering::Relaxed);
        }
    }

    /// Frees every kept buffer and forgets the recent load: called by a reactor that has
    /// gone idle, so a burst's buffers do not stay with the connections it left behind.
    /// Frees on the calling thread, which is one that fills buffers.
    pub(crate) fn release(&self) {
        self.recent.store(0, Ordering::Relaxed);
        while let Ok(spare) = self.channel.1.try_recv() {
            self.kept.fetch_sub(bytes(&spare), Ordering::Relaxed);
        }
    }

    /// Counts a batch of `carried` entries into the recent length; returns the new one.
    fn note(&self, carried: usize) -> usize {
        let before = self.recent.load(Ordering::Relaxed);
        let recent = carried.max(before - before / 32);
        self.recent.store(recent, Ordering::Relaxed);
        recent
    }

    /// The bytes of capacity kept now.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.kept.load(Ordering::Relaxed)
    }
}

fn bytes<T>(buffer: &Vec<T>) -> usize {
    buffer.capacity() * size_of::<T>()
}

/// Whether a buffer of `capacity` entries is worth keeping for batches of `recent`.
fn fits(capacity: usize, recent: usize) -> bool {
    capacity <= MAX_GROWTH * recent.max(MIN_RECENT)
}

/// The bytes worth keeping for batches of `recent` entries of `T`.
fn limit_of<T>(recent: usize) -> usize {
    (KEPT_BATCHES * recent.max(MIN_RECENT) * size_of::<T>()).min(MAX_KEPT_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of a batch entry.
    type Entry = [u64; 7];

    /// A buffer of `capacity` entries, emptied.
    fn emptied(capacity: usize) -> Vec<Entry> {
        Vec::with_capacity(capacity)
    }

    #[test]
    fn a_steady_load_recycles_its_buffers() {
        // 100 connections with 16 messages in flight: batches of up to 1,600 events.
        let spares = Spares::<Entry>::new();
        let first = emptied(2048);
        let address = first.as_ptr();
        spares.give_back(first, 1600);
        spares.give_back(emptied(2048), 1500);
        assert_eq!(spares.kept(), 2 * 2048 * size_of::<Entry>());
        let again = spares.take();
        assert_eq!(again.as_ptr(), address, "the same buffer comes back");
        assert_eq!(again.capacity(), 2048);
        assert_eq!(spares.kept(), 2048 * size_of::<Entry>());
    }

    #[test]
    fn a_storm_leaves_only_what_the_recent_load_needs() {
        let spares = Spares::<Entry>::new();
        // A storm: sixteen buffers of a few hundred connects each.
        for _ in 0..16 {
            spares.give_back(emptied(256), 200);
        }
        let during = spares.kept();
        assert!(during <= limit_of::<Entry>(200), "{during}");
        // The storm ends: batches of a few events, then none.
        for _ in 0..200 {
            let batch = spares.take();
            spares.give_back(batch, 3);
        }
        // What stays is a few small batches' worth, not the storm's buffers.
        assert!(spares.kept() <= limit_of::<Entry>(MIN_RECENT), "{}", spares.kept());
        assert!(spares.take().capacity() <= MAX_GROWTH * MIN_RECENT);
    }

    #[test]
    fn going_idle_frees_what_the_last_burst_left() {
        let spares = Spares::<Entry>::new();
        for _ in 0..8 {
            spares.give_back(emptied(1024), 1000);
        }
        assert!(spares.kept() >= 8 * 1024 * size_of::<Entry>());
        spares.release();
        assert_eq!(spares.kept(), 0);
        assert_eq!(spares.take().capacity(), 0, "nothing kept: a fresh buffer");
        // The burst's length is forgotten too: its buffers are no longer kept.
        spares.give_back(emptied(1024), 4);
        assert_eq!(spares.kept(), 0);
    }

    #[test]
    fn an_oversized_buffer_is_not_kept() {
        let spares = Spares::<Entry>::new();
        for _ in 0..40 {
            spares.give_back(emptied(8), 4);
        }
        spares.give_back(emptied(4096), 4);
        assert!(spares.kept() <= limit_of::<Entry>(MIN_RECENT));
        while spares.kept() > 0 {
            assert!(spares.take().capacity() <= 8);
        }
    }

    #[test]
    fn the_bytes_kept_have_a_ceiling() {
        let spares = Spares::<Entry>::new();
        let huge = MAX_KEPT_BYTES / size_of::<Entry>();
        for _ in 0..MAX_SPARES {
            spares.give_back(emptied(huge / 2), huge / 2);
        }
        assert!(spares.kept() <= MAX_KEPT_BYTES, "{}", spares.kept());
        assert!(spares.kept() > 0);
    }

    #[test]
    fn a_buffer_still_in_use_or_never_allocated_is_not_kept() {
        let spares = Spares::<Entry>::new();
        let mut full = emptied(8);
        full.push([0; 7]);
        spares.give_back(full, 1);
        spares.give_back(Vec::new(), 0);
        assert_eq!(spares.kept(), 0);
    }
}

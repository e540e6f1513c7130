//! Per-slot state shared between a reactor and every `Handle`, without a lock: whether an
//! id is open, and how many bytes are buffered for it.
//!
//! One `AtomicU64` per slot: `OPEN | CLOSING | COMPRESSES | WATCHED | generation tag (28
//! bits) | buffered (32 bits)`. "Buffered" counts the memory held for the connection and not yet
//! taken by the kernel: frames still in the command channel and frames in the write
//! queue, each at its length plus [`FRAME_COST`](crate::session::FRAME_COST). A `Handle`
//! reserves a frame's cost before queueing it (refused past `max_backpressure`, so the
//! channel cannot grow without bound); the reactor releases it as the socket takes the
//! bytes. Every change checks the generation tag, so a late command for a closed
//! connection never touches the slot's next connection.
//!
//! `WATCHED` says a producer has seen bytes buffered (through `Handle::buffered`, or a send
//! refused for backpressure): the release that brings the count back to zero clears it and
//! tells the reactor, which then owes the connection a `Drain` event. So a producer that
//! pauses on what `buffered` said is always woken, however the bytes left.
//!
//! The tag is the low 28 bits of the id's 64-bit generation: for a stale id to pass it,
//! the same slot must be reused exactly a multiple of 2^28 accepts later. Even then only
//! what a `Handle` reads here could be wrong; whether a command reaches a connection is
//! decided on the reactor by the full generation. Cells are allocated in chunks as slots
//! are first used: 8 bytes per connection.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::event::ConnId;

const CHUNK: usize = 4096;
const OPEN: u64 = 1 << 63;
const CLOSING: u64 = 1 << 62;
/// permessage-deflate was negotiated: sends worth compressing go to the reactor unframed.
const COMPRESSES: u64 = 1 << 61;
/// A producer saw bytes buffered and waits for them to be written.
const WATCHED: u64 = 1 << 60;
const GEN_SHIFT: u32 = 32;
const TAG_MASK: u64 = (1 << 28) - 1;
const BYTES: u64 = 0xffff_ffff;

/// What a `Handle` can learn about an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// Handshake in progress (not yet visible to the application).
    Handshake,
    Open,
    Closing,
    Gone,
}

/// Whether a connection negotiated permessage-deflate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Compresses(pub(crate) bool);

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    Gone,
    Closing,
    /// Over the cap; `buffered` bytes are already waiting.
    Full,
}

fn tag_of(v: u64) -> u64 {
    (v >> GEN_SHIFT) & TAG_MASK
}

/// The part of an id's generation a cell holds.
fn tag(id: ConnId) -> u64 {
    id.generation() & TAG_MASK
}

/// The generation after `g`, skipping those whose tag is 0, so an empty cell matches no
/// id.
pub(crate) fn next_generation(g: u64) -> u64 {
    let next = g.wrapping_add(1);
    if next & TAG_MASK == 0 { next.wrapping_add(1) } else { next }
}

pub(crate) struct LiveTable {
    chunks: Box<[OnceLock<Box<[AtomicU64]>>]>,
}

impl LiveTable {
    pub(crate) fn new(max_slots: usize) -> LiveTable {
        let n = max_slots.div_ceil(CHUNK).max(1);
        LiveTable { chunks: (0..n).map(|_| OnceLock::new()).collect() }
    }

    /// How many slots the table can hold.
    pub(crate) fn capacity(&self) -> usize {
        self.chunks.len() * CHUNK
    }

    fn cell(&self, slot: usize) -> Option<&AtomicU64> {
        self.chunks.get(slot / CHUNK)?.get()?.get(slot % CHUNK)
    }

    fn cell_or_init(&self, slot: usize) -> Option<&AtomicU64> {
        let chunk = self.chunks.get(slot / CHUNK)?;
        chunk.get_or_init(|| (0..CHUNK).map(|_| AtomicU64::new(0)).collect()).get(slot % CHUNK)
    }

    /// The cell's value if it holds `id`'s generation and is open.
    fn current(&self, id: ConnId) -> Option<(&AtomicU64, u64)> {
        let cell = self.cell(id.slot())?;
        let v = cell.load(Ordering::Acquire);
        (tag_of(v) == tag(id) && v & OPEN != 0).then_some((cell, v))
    }

    pub(crate) fn get(&self, id: ConnId) -> Liveness {
        match self.current(id) {
            None => Liveness::Gone,
            Some((_, v)) if v & CLOSING != 0 => Liveness::Closing,
            Some(_) => Liveness::Open,
        }
    }

    /// Marks `id` as compressing (owning reactor only, before it opens).
    pub(crate) fn set_compresses(&self, id: ConnId) {
        if let Some(cell) = self.cell(id.slot())
            && tag_of(cell.load(Ordering::Acquire)) == tag(id)
        {
            cell.fetch_or(COMPRESSES, Ordering::AcqRel);
        }
    }

    /// Bytes accepted for `id` and not yet written to its socket. A non-zero answer
    /// marks the connection watched: a `Drain` follows once the count is back to zero.
    pub(crate) fn buffered(&self, id: ConnId) -> Option<usize> {
        let (cell, v) = self.current(id)?;
        let bytes = (v & BYTES) as usize;
        if bytes > 0 && v & WATCHED == 0 {
            // Set from the value just read: the release to zero comes after and sees it.
            let v = cell.fetch_or(WATCHED, Ordering::AcqRel);
            return Some((v & BYTES) as usize).filter(|_| tag_of(v) == tag(id));
        }
        Some(bytes)
    }

    /// Reserves `len` bytes for a frame about to be queued from another thread; says
    /// whether the connection negotiated compression.
    pub(crate) fn reserve(
        &self,
        id: ConnId,
        len: usize,
        cap: usize,
    ) -> Result<Compresses, Refused> {
        let Some((cell, mut v)) = self.current(id) else {
            return Err(Refused::Gone);
        };
        loop {
            if tag_of(v) != tag(id) || v & OPEN == 0 {
                return Err(Refused::Gone);
            }
            if v & CLOSING != 0 {
                return Err(Refused::Closing);
            }
            let buffered = (v & BYTES) as usize;
            // A message always fits an empty buffer, so one bigger than the cap can
            // still be sent; the cap bounds what piles up behind it.
            if buffered > 0 && buffered + len > cap {
                cell.fetch_or(WATCHED, Ordering::AcqRel);
                return Err(Refused::Full);
            }
            match cell.compare_exchange_weak(v, v + len as u64, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(Compresses(v & COMPRESSES != 0)),
                Err(now) => v = now,
            }
        }
    }

    /// Marks `id` closing if it is open; false if it already was closing or is gone (so
    /// exactly one caller starts the close).
    pub(crate) fn mark_closing(&self, id: ConnId) -> bool {
        let Some((cell, mut v)) = self.current(id) else { return false };
        loop {
            if tag_of(v) != tag(id) || v & OPEN == 0 || v & CLOSING != 0 {
                return false;
            }
            match cell.compare_exchange_weak(v, v | CLOSING, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(now) => v = now,
            }
        }
    }

    /// Sets `id`'s state (owning reactor only). `Handshake` starts a new connection with
    /// nothing buffered; `Gone` clears the slot.
    pub(crate) fn set(&self, id: ConnId, state: Liveness) {
        let Some(cell) = self.cell_or_init(id.slot()) else { return };
        let generation = tag(id) << GEN_SHIFT;
        match state {
            Liveness::Handshake => cell.store(generation, Ordering::Release),
            Liveness::Gone => cell.store(0, Ordering::Release),
            Liveness::Open => {
                cell.fetch_or(OPEN, Ordering::AcqRel);
            }
            Liveness::Closing => {
                cell.fetch_or(OPEN | CLOSING, Ordering::AcqRel);
            }
        }
    }

    /// Adds bytes the reactor queued itself (owning reactor only).
    pub(crate) fn add(&self, id: ConnId, len: usize) {
        self.update(id, |bytes| bytes.saturating_add(len as u64).min(BYTES));
    }

    /// Releases bytes written or discarded; true when that emptied a watched count (the
    /// mark is cleared in the same step, and a `Drain` is owed). A late release for a
    /// connection that has ended finds another generation (or none) in the cell and
    /// changes nothing.
    pub(crate) fn release(&self, id: ConnId, len: usize) -> bool {
        let Some(cell) = self.cell(id.slot()) else { return false };
        let mut v = cell.load(Ordering::Acquire);
        loop {
            if tag_of(v) != tag(id) {
                return false;
            }
            let bytes = (v & BYTES).saturating_sub(len as u64);
            let emptied = bytes == 0 && v & WATCHED != 0;
            let new = (v & !BYTES & !(if emptied { WATCHED } else { 0 })) | bytes;
            match cell.compare_exchange_weak(v, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return emptied,
                Err(now) => v = now,
            }
        }
    }

    /// Applies `f` to the byte count; returns the new cell value, `None` for another
    /// generation.
    fn update(&self, id: ConnId, f: impl Fn(u64) -> u64) -> Option<u64> {
        let cell = self.cell(id.slot())?;
        let mut v = cell.load(Ordering::Acquire);
        loop {
            if tag_of(v) != tag(id) {
                return None;
            }
            let new = (v & !BYTES) | f(v & BYTES);
            match cell.compare_exchange_weak(v, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(new),
                Err(now) => v = now,
            }
        }
    }

    /// The buffered bytes as the owning reactor sees them.
    pub(crate) fn owned_buffered(&self, id: ConnId) -> usize {
        self.cell(id.slot()).map_or(0, |c| (c.load(Ordering::Acquire) & BYTES) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_state_and_rejects_other_generations() {
        let t = LiveTable::new(10_000);
        let id = ConnId::new(0, 5, 4097);
        assert_eq!(t.get(id), Liveness::Gone);
        t.set(id, Liveness::Handshake);
        assert_eq!(t.get(id), Liveness::Gone, "handshaking ids are not visible");
        t.set(id, Liveness::Open);
        assert_eq!(t.get(id), Liveness::Open);
        assert_eq!(t.get(ConnId::new(0, 6, 4097)), Liveness::Gone);
        assert!(t.mark_closing(id));
        assert!(!t.mark_closing(id), "only one caller starts the close");
        assert_eq!(t.get(id), Liveness::Closing);
        t.set(id, Liveness::Gone);
        assert_eq!(t.get(id), Liveness::Gone);
    }

    #[test]
    fn reservations_stop_at_the_cap_and_release_frees_room() {
        let t = LiveTable::new(10);
        let id = ConnId::new(0, 1, 3);
        t.set(id, Liveness::Handshake);
        t.add(id, 129);
        t.set(id, Liveness::Open);
        assert_eq!(t.buffered(id), Some(129));
        assert_eq!(t.reserve(id, 871, 1000), Ok(Compresses(false)));
        assert_eq!(t.reserve(id, 1, 1000), Err(Refused::Full));
        t.release(id, 1000);
        assert_eq!(t.buffered(id), Some(0));
        assert_eq!(t.reserve(ConnId::new(0, 2, 3), 1, 1000), Err(Refused::Gone));
        assert!(t.reserve(id, 5000, 1000).is_ok(), "an empty buffer takes any message");
        assert_eq!(t.reserve(id, 1, 1000), Err(Refused::Full));
        t.release(id, 5000);
        t.set(id, Liveness::Closing);
        assert_eq!(t.reserve(id, 1, 1000), Err(Refused::Closing));
    }

    #[test]
    fn a_new_generation_starts_empty() {
        let t = LiveTable::new(10);
        let old = ConnId::new(0, 1, 3);
        t.set(old, Liveness::Handshake);
        t.set(old, Liveness::Open);
        t.reserve(old, 50, 100).unwrap();
        t.set(old, Liveness::Gone);
        let new = ConnId::new(0, 2, 3);
        t.set(new, Liveness::Handshake);
        t.set(new, Liveness::Open);
        assert_eq!(t.buffered(new), Some(0));
        assert_eq!(t.reserve(old, 1, 100), Err(Refused::Gone));
    }

    #[test]
    fn late_releases_do_not_touch_the_next_connection() {
        let t = LiveTable::new(10);
        let old = ConnId::new(0, 1, 3);
        t.set(old, Liveness::Handshake);
        t.set(old, Liveness::Open);
        t.reserve(old, 50, 100).unwrap();
        t.set(old, Liveness::Gone);
        t.release(old, 50);
        let new = ConnId::new(0, 2, 3);
        t.set(new, Liveness::Handshake);
        t.set(new, Liveness::Open);
        t.release(old, 50);
        assert_eq!(t.buffered(new), Some(0));
        assert_eq!(t.get(new), Liveness::Open);
    }

    #[test]
    fn reservations_say_whether_the_connection_compresses() {
        let t = LiveTable::new(10);
        let id = ConnId::new(0, 1, 3);
        t.set(id, Liveness::Handshake);
        t.set_compresses(id);
        t.set(id, Liveness::Open);
        assert_eq!(t.reserve(id, 10, 100), Ok(Compresses(true)));
        let other = ConnId::new(0, 1, 4);
        t.set(other, Liveness::Handshake);
        t.set(other, Liveness::Open);
        assert_eq!(t.reserve(other, 10, 100), Ok(Compresses(false)));
    }

    #[test]
    fn a_watched_count_owes_one_drain_when_it_empties() {
        let t = LiveTable::new(10);
        let id = ConnId::new(0, 1, 3);
        t.set(id, Liveness::Handshake);
        t.set(id, Liveness::Open);
        t.reserve(id, 100, 1000).unwrap();
        assert!(!t.release(id, 100), "nobody watched");
        assert_eq!(t.buffered(id), Some(0), "an empty count is not watched");
        t.reserve(id, 100, 1000).unwrap();
        assert_eq!(t.buffered(id), Some(100));
        t.reserve(id, 50, 1000).unwrap();
        assert!(!t.release(id, 100), "not empty yet");
        assert!(t.release(id, 50), "empty: a drain is owed");
        t.reserve(id, 10, 1000).unwrap();
        assert!(!t.release(id, 10), "once");
        // A refused send watches too.
        t.reserve(id, 900, 1000).unwrap();
        assert_eq!(t.reserve(id, 200, 1000), Err(Refused::Full));
        assert!(t.release(id, 900));
    }

    #[test]
    fn generations_skip_the_empty_tag() {
        assert_eq!(next_generation(1), 2);
        assert_eq!(next_generation(TAG_MASK), TAG_MASK + 2);
        let id = ConnId::new(0, TAG_MASK + 2, 3);
        let t = LiveTable::new(10);
        t.set(id, Liveness::Handshake);
        t.set(id, Liveness::Open);
        assert_eq!(t.get(id), Liveness::Open);
        assert_eq!(t.get(ConnId::new(0, 2, 3)), Liveness::Gone, "another generation");
    }

    #[test]
    fn slots_past_the_table_are_gone() {
        let t = LiveTable::new(10);
        let id = ConnId::new(0, 1, 1 << 20);
        t.set(id, Liveness::Open);
        assert_eq!(t.get(id), Liveness::Gone);
    }
}

//! Which connection ids are open, readable from any thread without a lock.
//!
//! The owning reactor writes a slot's state when the connection opens, starts closing, or
//! ends; a `Handle` reads it to refuse stale ids at once. One `u32` per slot, allocated
//! in chunks as slots are first used, so the table costs 4 bytes per connection.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::event::ConnId;

const CHUNK: usize = 4096;
const OPEN: u32 = 1 << 31;
const CLOSING: u32 = 1 << 30;

/// What a `Handle` can learn about an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    Open,
    Closing,
    Gone,
}

pub(crate) struct LiveTable {
    chunks: Box<[OnceLock<Box<[AtomicU32]>>]>,
}

impl LiveTable {
    pub(crate) fn new(max_slots: usize) -> LiveTable {
        let n = max_slots.div_ceil(CHUNK).max(1);
        LiveTable {
            chunks: (0..n).map(|_| OnceLock::new()).collect(),
        }
    }

    fn cell(&self, slot: usize) -> Option<&AtomicU32> {
        self.chunks.get(slot / CHUNK)?.get()?.get(slot % CHUNK)
    }

    fn cell_or_init(&self, slot: usize) -> Option<&AtomicU32> {
        let chunk = self.chunks.get(slot / CHUNK)?;
        chunk
            .get_or_init(|| (0..CHUNK).map(|_| AtomicU32::new(0)).collect())
            .get(slot % CHUNK)
    }

    pub(crate) fn get(&self, id: ConnId) -> Liveness {
        let Some(cell) = self.cell(id.slot()) else {
            return Liveness::Gone;
        };
        let v = cell.load(Ordering::Acquire);
        if v & ConnId::GEN_MASK != id.generation() || v & OPEN == 0 {
            Liveness::Gone
        } else if v & CLOSING != 0 {
            Liveness::Closing
        } else {
            Liveness::Open
        }
    }

    /// Called by the owning reactor only.
    pub(crate) fn set(&self, id: ConnId, state: Liveness) {
        let v = match state {
            Liveness::Open => OPEN | id.generation(),
            Liveness::Closing => OPEN | CLOSING | id.generation(),
            Liveness::Gone => 0,
        };
        if let Some(cell) = self.cell_or_init(id.slot()) {
            cell.store(v, Ordering::Release);
        }
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
        t.set(id, Liveness::Open);
        assert_eq!(t.get(id), Liveness::Open);
        assert_eq!(t.get(ConnId::new(0, 6, 4097)), Liveness::Gone);
        t.set(id, Liveness::Closing);
        assert_eq!(t.get(id), Liveness::Closing);
        t.set(id, Liveness::Gone);
        assert_eq!(t.get(id), Liveness::Gone);
    }

    #[test]
    fn slots_past_the_table_are_gone() {
        let t = LiveTable::new(10);
        let id = ConnId::new(0, 1, 1 << 20);
        t.set(id, Liveness::Open);
        assert_eq!(t.get(id), Liveness::Gone);
    }
}

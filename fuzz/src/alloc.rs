//! A global allocator that counts the heap bytes the current thread holds, and their
//! peak, so a target can assert that the code under test holds no more than its limits.
//!
//! Counts are per thread (the fuzzer runs one input at a time on one thread; the seed
//! tests run in parallel) and signed, since a thread may free what another allocated.
//! A `realloc` counts as its change in size: what is measured is what stays held, not
//! the copy in flight.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, with per-thread byte counts.
pub struct Counting;

#[global_allocator]
static GLOBAL: Counting = Counting;

thread_local! {
    // `const` and without `Drop`: no lazy initialisation and no destructor, so reading
    // them never allocates, even from inside the allocator.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// Heap bytes the current thread holds (allocated minus freed since it started).
pub fn live() -> isize {
    LIVE.try_with(Cell::get).unwrap_or(0)
}

/// The most [`live`] reached since the last [`reset_peak`].
pub fn peak() -> isize {
    PEAK.try_with(Cell::get).unwrap_or(0)
}

/// Starts a new peak measurement from the current [`live`] count.
pub fn reset_peak() {
    let _ = PEAK.try_with(|peak| peak.set(live()));
}

fn add(bytes: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get().wrapping_add(bytes);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn size(bytes: usize) -> isize {
    isize::try_from(bytes).unwrap_or(isize::MAX)
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the bookkeeping around it touches only const thread-locals,
// which never allocate and never unwind.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's `layout` obligations are passed on as they are.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            add(size(layout.size()));
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            add(size(layout.size()));
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through this type) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        add(-size(layout.size()));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by `System` with `layout`; the caller guarantees
        // `new_size` is valid for it.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            add(size(new_size) - size(layout.size()));
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_is_held_and_its_peak() {
        let before = live();
        reset_peak();
        let mut v: Vec<u8> = Vec::with_capacity(1000);
        assert_eq!(live() - before, 1000);
        v.reserve_exact(3000);
        assert_eq!(live() - before, 3000, "a realloc counts as its change in size");
        v.shrink_to(10);
        drop(v);
        assert_eq!(live(), before);
        assert_eq!(peak() - before, 3000);
        let zeroed = vec![0u8; 500];
        assert_eq!(live() - before, 500);
        drop(zeroed);
        assert_eq!(live(), before);
    }
}

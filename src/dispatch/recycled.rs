//! Written frames' buffers, kept by a reactor to copy the next received messages into
//! for its workers.
//!
//! A worker gets each message as an owned `Message`: the reactor copies it out of its
//! receive buffer into a buffer with room for the reply's frame header. An echo sends that
//! buffer back framed in place, and once the socket has taken the frame the reactor holds
//! the same buffer again. Freeing it and allocating the next message's buffer cost two
//! trips through the allocator per message (the per-thread cache of each size holds a
//! few buffers, and a turn frees hundreds), so a written frame's buffer is kept for the
//! next message of the same frame length instead.
//!
//! What is kept is bounded in bytes, holds small buffers only, and only of a size a
//! message has asked for lately: a storm of handshakes writes thousands of 101s, and
//! keeping their buffers (no message is their size) held a megabyte of memory that the
//! connections' own allocations then had to grow the heap past (+105 B per idle
//! connection over 10,000). It is freed when the reactor goes idle.

use bytes::Bytes;

/// The bytes of buffers kept at most.
const MAX_KEPT_BYTES: usize = 1 << 20;

/// The largest buffer kept: larger messages are rarer, and their allocation costs little
/// next to copying them.
const MAX_BUFFER_BYTES: usize = 4096;

/// How many of the most recently kept buffers are looked at for one of the wanted size:
/// a few sizes may alternate (a request and its answer), a search must stay short.
const SEARCH_DEPTH: usize = 4;

/// How many recently asked sizes a kept buffer may have.
const ASKED_SIZES: usize = 4;

/// Empty buffers of written frames, most recently kept last.
#[derive(Default)]
pub(crate) struct Recycled {
    buffers: Vec<Vec<u8>>,
    /// The capacity, in bytes, of `buffers`' buffers.
    kept: usize,
    /// The last sizes asked for and not found, the latest at `next - 1`; 0 is no size
    /// (no buffer of capacity 0 is kept).
    asked: [usize; ASKED_SIZES],
    next: usize,
}

impl Recycled {
    /// A kept empty buffer of exactly `capacity` bytes, if there is one.
    pub(crate) fn take(&mut self, capacity: usize) -> Option<Vec<u8>> {
        let found =
            self.buffers.iter().rev().take(SEARCH_DEPTH).position(|b| b.capacity() == capacity);
        match found {
            Some(back) => {
                let index = self.buffers.len() - 1 - back;
                let buffer = self.buffers.swap_remove(index);
                self.kept -= buffer.capacity();
                Some(buffer)
            }
            None => {
                self.note_asked(capacity);
                None
            }
        }
    }

    /// Remembers a size a message needed, so buffers of that size are kept.
    fn note_asked(&mut self, capacity: usize) {
        if !self.asked.contains(&capacity) {
            self.asked[self.next % ASKED_SIZES] = capacity;
            self.next = self.next.wrapping_add(1);
        }
    }

    /// Keeps the buffer of a frame the socket has taken, if nothing else holds it, a
    /// message asked for its size lately, and it fits; otherwise it is dropped.
    pub(crate) fn keep(&mut self, frame: Bytes) {
        if !frame.is_unique() {
            return;
        }
        // Unique: the buffer is handed over, not copied.
        let mut buffer = Vec::from(frame);
        let capacity = buffer.capacity();
        if capacity == 0
            || capacity > MAX_BUFFER_BYTES
            || self.kept + capacity > MAX_KEPT_BYTES
            || !self.asked.contains(&capacity)
        {
            return;
        }
        buffer.clear();
        self.kept += capacity;
        self.buffers.push(buffer);
    }

    /// Frees every kept buffer (the reactor went idle).
    pub(crate) fn release(&mut self) {
        self.buffers = Vec::new();
        self.kept = 0;
    }

    /// The bytes kept.
    #[cfg(test)]
    pub(crate) fn kept(&self) -> usize {
        self.kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sizes_messages_asked_for_are_kept() {
        let mut recycled = Recycled::default();
        recycled.keep(frame_of(129).0);
        assert_eq!(recycled.kept(), 0, "no message asked for 129 bytes (a 101, say)");
        for size in 1..=ASKED_SIZES + 1 {
            drop(recycled.take(size));
        }
        recycled.keep(frame_of(1).0);
        assert_eq!(recycled.kept(), 0, "the oldest size asked for is forgotten");
        recycled.keep(frame_of(ASKED_SIZES + 1).0);
        assert_eq!(recycled.kept(), ASKED_SIZES + 1);
    }

    fn frame_of(capacity: usize) -> (Bytes, *const u8) {
        let buffer = vec![7u8; capacity];
        let at = buffer.as_ptr();
        (Bytes::from(buffer), at)
    }

    #[test]
    fn a_written_frame_s_buffer_is_the_next_one_of_its_size() {
        let mut recycled = Recycled::default();
        drop(recycled.take(34));
        let (frame, at) = frame_of(34);
        recycled.keep(frame);
        assert_eq!(recycled.kept(), 34);
        assert!(recycled.take(100).is_none(), "no buffer of another size");
        let again = recycled.take(34).expect("the kept buffer");
        assert_eq!((again.as_ptr(), again.capacity(), again.len()), (at, 34, 0));
        assert_eq!(recycled.kept(), 0);
    }

    #[test]
    fn a_frame_held_elsewhere_or_too_large_is_not_kept() {
        let mut recycled = Recycled::default();
        drop((recycled.take(34), recycled.take(MAX_BUFFER_BYTES + 1)));
        let (frame, _) = frame_of(34);
        let other = frame.clone();
        recycled.keep(frame);
        assert_eq!(recycled.kept(), 0, "a frame shared with a fan-out is not taken");
        drop(other);
        recycled.keep(frame_of(MAX_BUFFER_BYTES + 1).0);
        recycled.keep(Bytes::from_static(b"static"));
        assert_eq!(recycled.kept(), 0);
    }

    #[test]
    fn what_is_kept_stays_within_its_bytes() {
        let mut recycled = Recycled::default();
        drop(recycled.take(MAX_BUFFER_BYTES));
        for _ in 0..2 * MAX_KEPT_BYTES / MAX_BUFFER_BYTES {
            recycled.keep(frame_of(MAX_BUFFER_BYTES).0);
        }
        assert_eq!(recycled.kept(), MAX_KEPT_BYTES);
        recycled.release();
        assert_eq!(recycled.kept(), 0);
    }

    #[test]
    fn alternating_sizes_both_find_their_buffer() {
        let mut recycled = Recycled::default();
        drop((recycled.take(34), recycled.take(1028)));
        let (small, small_at) = frame_of(34);
        let (large, large_at) = frame_of(1028);
        recycled.keep(small);
        recycled.keep(large);
        let (small, large) = (recycled.take(34).expect("34"), recycled.take(1028).expect("1028"));
        assert_eq!((small.as_ptr(), large.as_ptr()), (small_at, large_at));
    }
}

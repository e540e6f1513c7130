//! Sequence numbers per origin and stream: given out by the sender, checked by each
//! receiver to drop duplicates and see gaps (sans-IO).

use std::collections::HashMap;
use std::sync::Arc;

/// A stream of messages from one origin, numbered on its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Stream {
    Topic(Arc<str>),
    Broadcast,
    /// Direct sends and closes to one node.
    Node(u32),
}

/// The sender's counters: the next number of each stream it has sent on.
///
/// Bounded: past `capacity` streams it forgets them all and draws a new epoch, so
/// receivers restart their count instead of seeing a gap.
pub(crate) struct Sequencer {
    epoch: u32,
    next: HashMap<Stream, u64>,
    capacity: usize,
}

impl Sequencer {
    pub(crate) fn new(epoch: u32, capacity: usize) -> Sequencer {
        Sequencer { epoch, next: HashMap::new(), capacity: capacity.max(1) }
    }

    /// The epoch and number of the next message on `stream`.
    pub(crate) fn next(&mut self, stream: &Stream) -> (u32, u64) {
        if let Some(n) = self.next.get_mut(stream) {
            *n += 1;
            return (self.epoch, *n);
        }
        if self.next.len() >= self.capacity {
            self.next.clear();
            self.epoch = self.epoch.wrapping_add(1);
        }
        self.next.insert(stream.clone(), 1);
        (self.epoch, 1)
    }
}

/// What a receiver makes of one numbered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The next one (or the first seen from this origin and epoch): deliver.
    InOrder,
    /// `missed` messages before it never arrived: deliver, and tell the application.
    Gap { missed: u64 },
    /// Seen before (or older): drop.
    Duplicate,
}

/// A receiver's last number per origin and stream. Bounded like [`Sequencer`]: past
/// `capacity` it forgets everything and starts again (a gap across that moment goes
/// unseen; the counters say how often it happened).
pub(crate) struct Tracker {
    last: HashMap<(u32, Stream), (u32, u64)>,
    capacity: usize,
    pub(crate) forgets: u64,
}

impl Tracker {
    pub(crate) fn new(capacity: usize) -> Tracker {
        Tracker { last: HashMap::new(), capacity: capacity.max(1), forgets: 0 }
    }

    /// Checks message `seq` of `epoch` from `origin` on `stream`.
    pub(crate) fn check(&mut self, origin: u32, stream: Stream, epoch: u32, seq: u64) -> Verdict {
        let key = (origin, stream);
        if let Some((last_epoch, last)) = self.last.get_mut(&key)
            && *last_epoch == epoch
        {
            if seq <= *last {
                return Verdict::Duplicate;
            }
            let missed = seq - *last - 1;
            *last = seq;
            return if missed == 0 { Verdict::InOrder } else { Verdict::Gap { missed } };
        }
        if !self.last.contains_key(&key) && self.last.len() >= self.capacity {
            self.last.clear();
            self.forgets += 1;
        }
        // A new origin, epoch or subscription: its first message sets the count.
        self.last.insert(key, (epoch, seq));
        Verdict::InOrder
    }

    /// Forgets `topic`'s streams (it was unsubscribed: what comes after a new subscribe
    /// starts a new count).
    pub(crate) fn forget_topic(&mut self, topic: &str) {
        self.last.retain(|(_, stream), _| !matches!(stream, Stream::Topic(t) if &**t == topic));
    }

    /// Forgets everything (the connection to Redis was lost; every stream resyncs).
    pub(crate) fn clear(&mut self) {
        self.last.clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.last.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str) -> Stream {
        Stream::Topic(Arc::from(name))
    }

    #[test]
    fn the_sender_counts_per_stream_and_forgets_past_capacity() {
        let mut s = Sequencer::new(5, 2);
        assert_eq!(s.next(&topic("a")), (5, 1));
        assert_eq!(s.next(&topic("a")), (5, 2));
        assert_eq!(s.next(&Stream::Broadcast), (5, 1));
        assert_eq!(s.next(&topic("a")), (5, 3));
        // A third stream: everything is forgotten under a new epoch.
        assert_eq!(s.next(&Stream::Node(9)), (6, 1));
        assert_eq!(s.next(&topic("a")), (6, 1));
    }

    #[test]
    fn the_receiver_drops_duplicates_and_sees_gaps() {
        let mut t = Tracker::new(100);
        assert_eq!(t.check(1, topic("a"), 0, 5), Verdict::InOrder, "first seen sets the count");
        assert_eq!(t.check(1, topic("a"), 0, 6), Verdict::InOrder);
        assert_eq!(t.check(1, topic("a"), 0, 6), Verdict::Duplicate);
        assert_eq!(t.check(1, topic("a"), 0, 3), Verdict::Duplicate);
        assert_eq!(t.check(1, topic("a"), 0, 9), Verdict::Gap { missed: 2 });
        assert_eq!(t.check(2, topic("a"), 0, 1), Verdict::InOrder, "origins count apart");
        assert_eq!(t.check(1, topic("a"), 1, 1), Verdict::InOrder, "a new epoch restarts");
        t.forget_topic("a");
        assert_eq!(t.len(), 0);
        assert_eq!(t.check(1, topic("a"), 1, 7), Verdict::InOrder);
    }

    #[test]
    fn the_receiver_is_bounded() {
        let mut t = Tracker::new(3);
        for origin in 0..10 {
            t.check(origin, Stream::Broadcast, 0, 1);
            assert!(t.len() <= 3);
        }
        assert_eq!(t.forgets, 3);
    }
}

//! What a client connection holds while it is down: messages sent through a `Handle`
//! between a drop and the next open, bounded in bytes, shared by the sending threads
//! and the owning reactor.
//!
//! The reactor flips `up` under the same lock it drains the queue with, so a message
//! is either held (and written first after the reconnect) or sent the normal way after
//! the drained ones: a thread's messages keep their order across a reconnect.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::event::ConnId;
use crate::session;

/// One client connection's offline queue.
pub(crate) struct Offline {
    inner: Mutex<Queue>,
}

struct Queue {
    /// Open: sends take the normal path.
    up: bool,
    /// Ended for good: nothing is held any more.
    ended: bool,
    frames: VecDeque<Bytes>,
    /// Held bytes, each frame at its memory cost (`session::cost`).
    bytes: usize,
    limit: usize,
}

/// What became of a message offered to the offline queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offered {
    Held,
    /// Over the byte bound: the caller gets an error.
    Full,
    /// The connection is open (or ended): not held.
    NotDown,
}

impl Offline {
    pub(crate) fn new(limit: usize) -> Offline {
        let queue = Queue { up: false, ended: false, frames: VecDeque::new(), bytes: 0, limit };
        Offline { inner: Mutex::new(queue) }
    }

    /// Holds `frame` (a server-style frame; the reactor masks it) while the connection
    /// is down.
    pub(crate) fn hold(&self, frame: Bytes) -> Offered {
        let mut q = self.inner.lock();
        if q.up || q.ended {
            return Offered::NotDown;
        }
        let cost = session::cost(frame.len());
        if q.bytes + cost > q.limit {
            return Offered::Full;
        }
        q.bytes += cost;
        q.frames.push_back(frame);
        Offered::Held
    }

    /// The connection opened: takes what was held (in order) and lets sends through.
    pub(crate) fn open(&self) -> VecDeque<Bytes> {
        let mut q = self.inner.lock();
        q.up = true;
        q.bytes = 0;
        std::mem::take(&mut q.frames)
    }

    /// The connection dropped and will come back: hold sends from now on.
    pub(crate) fn down(&self) {
        self.inner.lock().up = false;
    }

    /// The connection ended for good: drops what was held.
    pub(crate) fn end(&self) {
        let mut q = self.inner.lock();
        q.ended = true;
        q.bytes = 0;
        q.frames = VecDeque::new();
    }

    /// Bytes held now.
    #[cfg(test)]
    pub(crate) fn held_bytes(&self) -> usize {
        self.inner.lock().bytes
    }
}

/// The offline queues of a server's client connections, looked up only when a send finds
/// its connection not open (never on the path of an open connection).
#[derive(Default)]
pub(crate) struct OfflineTable {
    lines: RwLock<HashMap<ConnId, Arc<Offline>>>,
}

impl OfflineTable {
    pub(crate) fn get(&self, id: ConnId) -> Option<Arc<Offline>> {
        self.lines.read().get(&id).cloned()
    }

    pub(crate) fn insert(&self, id: ConnId, line: Arc<Offline>) {
        self.lines.write().insert(id, line);
    }

    pub(crate) fn remove(&self, id: ConnId) {
        if let Some(line) = self.lines.write().remove(&id) {
            line.end();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_while_down_within_its_bound_and_hands_back_in_order() {
        let line = Offline::new(2 * session::cost(10));
        let frame = |n: u8| Bytes::from(vec![n; 10]);
        assert_eq!(line.hold(frame(1)), Offered::Held);
        assert_eq!(line.hold(frame(2)), Offered::Held);
        assert_eq!(line.hold(frame(3)), Offered::Full);
        assert_eq!(line.held_bytes(), 2 * session::cost(10));
        let held: Vec<u8> = line.open().iter().map(|f| f[0]).collect();
        assert_eq!(held, [1, 2]);
        assert_eq!(line.hold(frame(4)), Offered::NotDown);
        line.down();
        assert_eq!(line.hold(frame(5)), Offered::Held);
        line.end();
        assert_eq!(line.held_bytes(), 0);
        assert_eq!(line.hold(frame(6)), Offered::NotDown);
    }
}

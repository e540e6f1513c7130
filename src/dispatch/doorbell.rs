//! How a worker waits for its next batch, and how a reactor wakes it.
//!
//! The channel's own blocking receive spins before it sleeps: about 127 `pause`s (2 µs on
//! this machine kind) and a few yields, twice. On a core the worker shares with its
//! reactor, that spin is time the reactor cannot use: the reply the worker just sent waits
//! for it. A worker here polls the channel, says it is going to sleep, looks once more and
//! parks; a reactor that has just sent it a batch unparks it only if it said so.
//!
//! No wake is lost: the worker's "asleep" and the reactor's send are each followed by a
//! sequentially consistent fence before the other side's state is read, so either the
//! worker's last look finds the batch, or the reactor finds it asleep and unparks it (an
//! unpark before the park makes the park return at once).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::thread::Thread;

use crossbeam_channel::{Receiver, TryRecvError};

/// One worker's doorbell, shared by the worker and every reactor.
#[derive(Default)]
pub(crate) struct Doorbell {
    asleep: AtomicBool,
    /// The worker's thread, set once it is spawned (before any reactor runs).
    thread: OnceLock<Thread>,
}

impl Doorbell {
    /// Names the thread that waits on this bell.
    pub(crate) fn belongs_to(&self, thread: Thread) {
        let _ = self.thread.set(thread);
    }

    /// After a send on the worker's channel (or dropping a sender): wakes the worker if
    /// it sleeps.
    pub(crate) fn ring(&self) {
        fence(Ordering::SeqCst);
        if self.asleep.swap(false, Ordering::SeqCst)
            && let Some(thread) = self.thread.get()
        {
            thread.unpark();
        }
    }

    /// The next item of `channel`, sleeping until there is one; `None` once every sender
    /// is gone. Called only by the thread the bell belongs to.
    pub(crate) fn wait<T>(&self, channel: &Receiver<T>) -> Option<T> {
        loop {
            match channel.try_recv() {
                Ok(item) => return Some(item),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => {}
            }
            self.asleep.store(true, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            match channel.try_recv() {
                Ok(item) => {
                    self.asleep.store(false, Ordering::Relaxed);
                    return Some(item);
                }
                Err(TryRecvError::Disconnected) => return None,
                // A ring may come at any time (even before this park, which then returns
                // at once), and a park may end without one: the loop looks again.
                Err(TryRecvError::Empty) => std::thread::park(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crossbeam_channel::{bounded, unbounded};

    use super::*;

    #[test]
    fn a_sleeping_worker_gets_every_item_and_ends_when_the_senders_do() {
        let bell = Arc::new(Doorbell::default());
        // Unbounded, so a worker that never wakes fails the test rather than block it.
        let (tx, rx) = unbounded::<u32>();
        let (done, result) = bounded(1);
        let worker = {
            let bell = bell.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while let Some(item) = bell.wait(&rx) {
                    got.push(item);
                }
                done.send(got).unwrap();
            })
        };
        bell.belongs_to(worker.thread().clone());
        for item in 0..2000 {
            // Now and then let the worker fall asleep first, so both orders happen.
            if item % 100 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            tx.send(item).unwrap();
            bell.ring();
        }
        drop(tx);
        bell.ring();
        // A lost wake-up would leave the worker asleep: a failure, not a hung test.
        let got = result.recv_timeout(Duration::from_secs(20)).expect("the worker woke");
        assert_eq!(got, (0..2000).collect::<Vec<_>>());
        worker.join().unwrap();
    }

    #[test]
    fn a_ring_without_a_sleeper_changes_nothing() {
        let bell = Doorbell::default();
        bell.ring();
        assert!(!bell.asleep.load(Ordering::SeqCst));
        let (tx, rx) = bounded::<u32>(1);
        tx.send(7).unwrap();
        assert_eq!(bell.wait(&rx), Some(7));
        drop(tx);
        assert_eq!(bell.wait(&rx), None);
    }
}

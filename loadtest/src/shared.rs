//! State the generator threads of one process share: start barrier, hold barrier,
//! abort flag and live progress counters. All lock-free; threads poll it on their ticks.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// What one thread reports for the live progress line (refreshed every 100 ms).
#[derive(Debug, Default)]
pub struct ThreadProgress {
    /// Connections open now.
    pub open: AtomicU64,
    /// Messages sent so far.
    pub sent: AtomicU64,
    /// Messages received so far.
    pub received: AtomicU64,
    /// Connections that failed so far.
    pub failed: AtomicU64,
    /// p99 latency so far over the measurement window, nanoseconds.
    pub p99_ns: AtomicU64,
}

/// A snapshot summed (p99: maximum) over threads or processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgressSnapshot {
    /// Connections open.
    pub open: u64,
    /// Messages sent.
    pub sent: u64,
    /// Messages received.
    pub received: u64,
    /// Failed connections.
    pub failed: u64,
    /// Highest per-thread p99, nanoseconds.
    pub p99_ns: u64,
}

impl ProgressSnapshot {
    /// Adds another thread's or process's snapshot.
    pub fn add(&mut self, o: ProgressSnapshot) {
        self.open += o.open;
        self.sent += o.sent;
        self.received += o.received;
        self.failed += o.failed;
        self.p99_ns = self.p99_ns.max(o.p99_ns);
    }
}

/// Shared by the threads of one process and its coordinator.
#[derive(Debug)]
pub struct Shared {
    threads: usize,
    ready: AtomicUsize,
    start_ns: AtomicU64,
    held: AtomicUsize,
    released: AtomicBool,
    abort: AtomicBool,
    published: AtomicU64,
    publishing_done: AtomicBool,
    /// One slot per thread.
    pub progress: Vec<ThreadProgress>,
}

impl Shared {
    /// State for `threads` generator threads.
    pub fn new(threads: usize) -> Shared {
        Shared {
            threads,
            ready: AtomicUsize::new(0),
            start_ns: AtomicU64::new(0),
            held: AtomicUsize::new(0),
            released: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            published: AtomicU64::new(0),
            publishing_done: AtomicBool::new(false),
            progress: (0..threads).map(|_| ThreadProgress::default()).collect(),
        }
    }

    /// A thread has opened (or given up on) its connections.
    pub fn mark_ready(&self) {
        self.ready.fetch_add(1, Ordering::AcqRel);
    }

    /// Every thread is ready.
    pub fn all_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) >= self.threads
    }

    /// The coordinator sets the common start time ([`crate::clock::now_ns`]).
    pub fn set_start(&self, start_ns: u64) {
        self.start_ns.store(start_ns.max(1), Ordering::Release);
    }

    /// The start time, once set.
    pub fn start(&self) -> Option<u64> {
        match self.start_ns.load(Ordering::Acquire) {
            0 => None,
            t => Some(t),
        }
    }

    /// A thread has finished its measurement window and holds its connections open.
    pub fn mark_held(&self) {
        self.held.fetch_add(1, Ordering::AcqRel);
    }

    /// Every thread holds.
    pub fn all_held(&self) -> bool {
        self.held.load(Ordering::Acquire) >= self.threads
    }

    /// Lets held threads close their connections.
    pub fn release(&self) {
        self.released.store(true, Ordering::Release);
    }

    /// Whether held threads may close.
    pub fn released(&self) -> bool {
        self.released.load(Ordering::Acquire)
    }

    /// Stops every thread as soon as it can (connections are closed, figures kept).
    pub fn abort(&self) {
        self.abort.store(true, Ordering::Release);
    }

    /// Whether [`Shared::abort`] was called.
    pub fn aborted(&self) -> bool {
        self.abort.load(Ordering::Acquire)
    }

    /// Broadcast: the sender (in this process) has published `n` messages and stopped.
    pub fn set_published(&self, n: u64) {
        self.published.store(n, Ordering::Release);
        self.publishing_done.store(true, Ordering::Release);
    }

    /// Broadcast: the final published count, when the sender lives in this process.
    pub fn published(&self) -> Option<u64> {
        if self.publishing_done.load(Ordering::Acquire) {
            Some(self.published.load(Ordering::Acquire))
        } else {
            None
        }
    }

    /// The sum over threads of their progress.
    pub fn snapshot(&self) -> ProgressSnapshot {
        let mut s = ProgressSnapshot::default();
        for p in &self.progress {
            s.add(ProgressSnapshot {
                open: p.open.load(Ordering::Relaxed),
                sent: p.sent.load(Ordering::Relaxed),
                received: p.received.load(Ordering::Relaxed),
                failed: p.failed.load(Ordering::Relaxed),
                p99_ns: p.p99_ns.load(Ordering::Relaxed),
            });
        }
        s
    }
}

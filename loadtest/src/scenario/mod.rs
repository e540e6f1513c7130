//! Scenarios: one [`Driver`](crate::engine::Driver) per subcommand, and what they share:
//! the run's timing ([`Plan`]), which connections a thread opens ([`Opener`]), the stages
//! every run goes through ([`Lifecycle`]) and the message counting rules.
//!
//! A run's stages, all threads of all worker processes in step:
//!
//! ```text
//! Opening ─► Ready ─(start barrier)─► Running: warmup, then the measurement window
//!   ─► Draining (answers still in flight) ─► [Holding (hold barrier)] ─► Closing ─► Done
//! ```

pub mod broadcast;
pub mod churn;
pub mod connect;
pub mod echo;
pub mod hold;
pub mod rate;
pub mod send;

use crate::engine::{Io, Tick};
use crate::payload::Stamp;

/// When things happen, from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Seconds of load before the measurement window, excluded from figures.
    pub warmup_ns: u64,
    /// The measurement window.
    pub duration_ns: u64,
    /// Longest wait for answers still in flight after the window.
    pub drain_ns: u64,
    /// Longest wait for close handshakes at the end.
    pub close_ns: u64,
    /// Connect + handshake deadline of one connection.
    pub connect_timeout_ns: u64,
}

impl Plan {
    /// One-second buckets in the measurement window.
    pub fn buckets(&self) -> usize {
        self.duration_ns.div_ceil(1_000_000_000).max(1) as usize
    }
}

/// Which connections one thread opens, and how fast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share {
    /// This thread's first global connection index.
    pub first: usize,
    /// Generator threads over all processes (global indices are dealt round-robin).
    pub step: usize,
    /// Connections in the whole run (`usize::MAX`: unbounded, for churn).
    pub total: usize,
    /// This thread's connections per second; 0 or less: as fast as `concurrency` allows.
    pub rate: f64,
    /// Most handshakes in progress at once on this thread.
    pub concurrency: usize,
    /// Most connections alive at once on this thread (churn); `usize::MAX`: no cap.
    pub max_live: usize,
}

impl Share {
    /// How many of the run's connections this thread owns.
    pub fn assigned(&self) -> usize {
        if self.total == usize::MAX {
            usize::MAX
        } else if self.first >= self.total {
            0
        } else {
            (self.total - self.first).div_ceil(self.step.max(1))
        }
    }
}

/// Opens a thread's share of connections at its rate.
#[derive(Debug, Clone)]
pub struct Opener {
    share: Share,
    next: usize,
    issued: u64,
    started: u64,
}

impl Opener {
    /// An opener that has not started.
    pub fn new(share: Share) -> Opener {
        Opener { share, next: share.first, issued: 0, started: 0 }
    }

    /// Connections this thread owns.
    pub fn assigned(&self) -> usize {
        self.share.assigned()
    }

    /// Every owned connection has been attempted.
    pub fn exhausted(&self) -> bool {
        self.next >= self.share.total
    }

    /// Attempts every connection that is due now; `make` builds the state of connection
    /// number `index`. Returns when the next one is due, if the rate holds it back.
    pub fn open_due<S>(&mut self, io: &mut Io<S>, mut make: impl FnMut(usize) -> S) -> Option<u64> {
        if self.started == 0 {
            self.started = io.now.max(1);
        }
        let step = self.share.step.max(1);
        while !self.exhausted()
            && io.pending_count() < self.share.concurrency.max(1)
            && io.conn_count() < self.share.max_live
        {
            if self.share.rate > 0.0 {
                let due = self.started + (self.issued as f64 * 1e9 / self.share.rate) as u64;
                if due > io.now {
                    return Some(due);
                }
            }
            let index = self.next;
            self.next = self.next.saturating_add(step);
            self.issued += 1;
            // A failure is already counted by the engine; the state is not needed.
            let _ = io.connect(index, make(index));
        }
        None
    }
}

/// A run's stages; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Opening this thread's connections.
    Opening,
    /// Waiting for the common start time.
    Ready,
    /// Generating load: warmup, then the measurement window.
    Running,
    /// Load stopped; waiting for answers in flight.
    Draining,
    /// Measurement done, connections held open until the coordinator releases them.
    Holding,
    /// Close handshakes in progress.
    Closing,
    /// Finished.
    Done,
}

/// Moves one thread through the stages, in step with the others through [`crate::shared`].
#[derive(Debug, Clone)]
pub struct Lifecycle {
    /// The current stage.
    pub stage: Stage,
    plan: Plan,
    hold_barrier: bool,
    open_window: bool,
    opening_deadline: u64,
    /// The common start time, once known.
    pub go: u64,
    /// Start of the measurement window (after warmup).
    pub measure_start: u64,
    /// End of the measurement window.
    pub measure_end: u64,
    drain_end: u64,
    close_end: u64,
}

impl Lifecycle {
    /// A lifecycle in [`Stage::Opening`]. `opening_ns` bounds the opening stage;
    /// `hold_barrier` adds [`Stage::Holding`]; `open_window` makes the window last until
    /// [`Lifecycle::stop_running`] (connect) instead of `--duration`.
    pub fn new(
        plan: Plan,
        now: u64,
        opening_ns: u64,
        hold_barrier: bool,
        open_window: bool,
    ) -> Lifecycle {
        Lifecycle {
            stage: Stage::Opening,
            plan,
            hold_barrier,
            open_window,
            opening_deadline: now.saturating_add(opening_ns),
            go: 0,
            measure_start: 0,
            measure_end: u64::MAX,
            drain_end: 0,
            close_end: 0,
        }
    }

    /// How long the opening stage may take for `conns` connections at `rate` per second.
    pub fn opening_budget(plan: &Plan, conns: usize, rate: f64) -> u64 {
        let pacing = if rate > 0.0 { (conns as f64 / rate * 1e9) as u64 } else { 0 };
        pacing.saturating_add(plan.connect_timeout_ns).saturating_add(1_000_000_000)
    }

    /// Whether load should be generated now (inside Running, before the window's end).
    pub fn loading(&self, now: u64) -> bool {
        self.stage == Stage::Running && now < self.measure_end
    }

    /// Ends the Running stage now (open-window scenarios).
    pub fn stop_running<S>(&mut self, io: &mut Io<S>) {
        if self.stage == Stage::Running {
            self.measure_end = io.now;
            io.set_window(
                self.measure_start,
                io.now.max(self.measure_start + 1),
                self.plan_buckets_open(),
            );
        }
    }

    fn plan_buckets_open(&self) -> usize {
        if self.open_window { 3600 } else { self.plan.buckets() }
    }

    /// Moves forward by at most one stage; returns the stage entered, if any. Call in a
    /// loop until `None`. `opened_all`: nothing left to open or pending; `drained`: no
    /// answer is outstanding.
    pub fn advance<S>(&mut self, io: &mut Io<S>, opened_all: bool, drained: bool) -> Option<Stage> {
        let now = io.now;
        let shared = io.shared().clone();
        let live = matches!(
            self.stage,
            Stage::Opening | Stage::Ready | Stage::Running | Stage::Draining | Stage::Holding
        );
        if live && shared.aborted() {
            if self.stage == Stage::Opening {
                shared.mark_ready();
            }
            return Some(self.enter_closing(io));
        }
        match self.stage {
            Stage::Opening if opened_all || now >= self.opening_deadline => {
                shared.mark_ready();
                self.stage = Stage::Ready;
                Some(Stage::Ready)
            }
            Stage::Ready => {
                let go = shared.start()?;
                if self.go == 0 {
                    self.go = go;
                    self.measure_start = go.saturating_add(self.plan.warmup_ns);
                    self.measure_end = if self.open_window {
                        u64::MAX
                    } else {
                        self.measure_start.saturating_add(self.plan.duration_ns)
                    };
                    io.set_window(self.measure_start, self.measure_end, self.plan_buckets_open());
                }
                if now >= go {
                    self.stage = Stage::Running;
                    Some(Stage::Running)
                } else {
                    None
                }
            }
            Stage::Running if now >= self.measure_end => {
                self.stage = Stage::Draining;
                self.drain_end = now.saturating_add(self.plan.drain_ns);
                Some(Stage::Draining)
            }
            Stage::Draining if drained || now >= self.drain_end => {
                if self.hold_barrier {
                    shared.mark_held();
                    self.stage = Stage::Holding;
                    Some(Stage::Holding)
                } else {
                    Some(self.enter_closing(io))
                }
            }
            Stage::Holding if shared.released() => Some(self.enter_closing(io)),
            Stage::Closing if io.conn_count() == 0 || now >= self.close_end => {
                self.stage = Stage::Done;
                Some(Stage::Done)
            }
            _ => None,
        }
    }

    fn enter_closing<S>(&mut self, io: &mut Io<S>) -> Stage {
        io.stats.counters.open_at_end += io.open_count() as u64;
        io.close_all();
        self.stage = Stage::Closing;
        self.close_end = io.now.saturating_add(self.plan.close_ns);
        Stage::Closing
    }

    /// When the lifecycle next needs a tick.
    pub fn wake(&self, now: u64) -> Tick {
        match self.stage {
            Stage::Opening => Tick::Idle,
            Stage::Ready if self.go != 0 => Tick::At(self.go),
            Stage::Ready | Stage::Holding => Tick::At(now + 2_000_000),
            Stage::Running => Tick::At(self.measure_end),
            Stage::Draining => Tick::At(self.drain_end),
            Stage::Closing => Tick::At(self.close_end),
            Stage::Done => Tick::Done,
        }
    }
}

/// The earlier of two wake-ups.
pub fn earliest(a: Tick, b: Option<u64>) -> Tick {
    match (a, b) {
        (Tick::Done, _) => Tick::Done,
        (Tick::At(t), Some(u)) => Tick::At(t.min(u)),
        (Tick::Idle, Some(u)) => Tick::At(u),
        (t, None) => t,
    }
}

/// Counts one message sent with send time `ts` and `len` payload bytes.
pub fn count_sent<S>(io: &mut Io<S>, ts: u64, len: usize) {
    let measured = io.in_window(ts);
    let c = &mut io.stats.counters;
    c.sent += 1;
    c.bytes_sent += len as u64;
    if measured {
        c.sent_measured += 1;
    }
    if let Some(b) = io.bucket() {
        b.sent += 1;
    }
}

/// A connection that counts the messages it sent and the answers it received.
pub trait Answers {
    /// Messages sent and answers received so far.
    fn counts(&mut self) -> (u64, &mut u64);
}

/// Takes an echoed message for `key`: counts it as unstamped or unexpected (more answers
/// than messages sent) and returns `None`, or records it (and whether it came in order)
/// and returns the connection's received count after it.
pub fn take_answer<S: Answers>(io: &mut Io<S>, key: usize, stamp: Option<Stamp>) -> Option<u64> {
    let Some(stamp) = stamp else {
        io.stats.counters.unstamped += 1;
        return None;
    };
    let (sent, received) = io.state_mut(key)?.counts();
    if *received >= sent {
        io.stats.counters.unexpected += 1;
        return None;
    }
    let in_order = stamp.seq == *received;
    *received += 1;
    let now_received = *received;
    if !in_order {
        io.stats.counters.out_of_order += 1;
    }
    count_answer(io, stamp);
    Some(now_received)
}

/// Counts one answer or delivery: latency from its stamp's send time to now.
pub fn count_answer<S>(io: &mut Io<S>, stamp: Stamp) {
    let latency = io.now.saturating_sub(stamp.ts);
    let measured = io.in_window(stamp.ts);
    io.stats.counters.received += 1;
    if measured {
        io.stats.counters.received_measured += 1;
        io.stats.latency.record(latency);
    }
    if let Some(b) = io.bucket() {
        b.received += 1;
        b.latency.record(latency);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_deal_connections_round_robin() {
        let s = |first, step, total| Share {
            first,
            step,
            total,
            rate: 0.0,
            concurrency: 1,
            max_live: usize::MAX,
        };
        assert_eq!(s(0, 4, 10).assigned(), 3); // 0 4 8
        assert_eq!(s(1, 4, 10).assigned(), 3); // 1 5 9
        assert_eq!(s(2, 4, 10).assigned(), 2); // 2 6
        assert_eq!(s(3, 4, 10).assigned(), 2); // 3 7
        assert_eq!(s(5, 8, 4).assigned(), 0);
        assert_eq!(s(0, 1, usize::MAX).assigned(), usize::MAX);
    }

    #[test]
    fn earliest_wake() {
        assert_eq!(earliest(Tick::At(5), Some(3)), Tick::At(3));
        assert_eq!(earliest(Tick::Idle, Some(3)), Tick::At(3));
        assert_eq!(earliest(Tick::Idle, None), Tick::Idle);
        assert_eq!(earliest(Tick::Done, Some(1)), Tick::Done);
    }
}

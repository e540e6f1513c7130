//! A validated run: scenario, connections, timing; and how one generator thread of it is
//! built and run.

use std::sync::Arc;

use crate::engine::{self, Driver, EngineConfig, EngineError, Io};
use crate::pattern::Pattern;
use crate::payload::{PayloadKind, Template};
use crate::rng::XorShift;
use crate::scenario::{
    Lifecycle, Opener, Plan, Share, broadcast::Broadcast, churn::Churn, connect::Connect,
    echo::Echo, hold::Hold, rate::Rate, send::Send,
};
use crate::shared::Shared;
use crate::stats::RunStats;

/// The scenario and its own parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum ScenarioSpec {
    /// `echo --window W`.
    Echo {
        /// Messages in flight per connection.
        window: usize,
    },
    /// `rate --interval I` or `rate --rate N/s`.
    Rate {
        /// Nanoseconds between two sends of one connection.
        interval_ns: u64,
        /// `--rate`: messages per second over all connections, when given that way.
        rate: Option<f64>,
    },
    /// `connect --rate R`.
    Connect {
        /// Connections per second (0: unpaced).
        rate: f64,
    },
    /// `hold --rate R`.
    Hold {
        /// Connections per second while opening (0: unpaced).
        rate: f64,
    },
    /// `broadcast --rate R [--sender-url U]...`.
    Broadcast {
        /// Messages published per second.
        rate: f64,
        /// Where the senders connect (one each), when not the `--url`s.
        sender_urls: Vec<String>,
    },
    /// `churn --rate R --messages M`.
    Churn {
        /// Connections opened per second.
        rate: f64,
        /// Messages echoed per connection.
        messages: u64,
    },
    /// `send`.
    Send,
}

impl ScenarioSpec {
    /// The subcommand name.
    pub fn name(&self) -> &'static str {
        match self {
            ScenarioSpec::Echo { .. } => "echo",
            ScenarioSpec::Rate { .. } => "rate",
            ScenarioSpec::Connect { .. } => "connect",
            ScenarioSpec::Hold { .. } => "hold",
            ScenarioSpec::Broadcast { .. } => "broadcast",
            ScenarioSpec::Churn { .. } => "churn",
            ScenarioSpec::Send => "send",
        }
    }

    /// Whether threads wait at the hold barrier (so the server's RSS can be sampled).
    pub fn has_hold_barrier(&self) -> bool {
        matches!(self, ScenarioSpec::Hold { .. })
    }

    /// Whether the scenario is about connections rather than messages.
    pub fn is_connection_scenario(&self) -> bool {
        matches!(
            self,
            ScenarioSpec::Connect { .. } | ScenarioSpec::Hold { .. } | ScenarioSpec::Churn { .. }
        )
    }
}

/// A validated run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// What to run.
    pub scenario: ScenarioSpec,
    /// How connections talk.
    pub engine: EngineConfig,
    /// The first `--url` as given.
    pub url: String,
    /// Every `--url`, in order (connection i goes to the (i mod n)-th).
    pub urls: Vec<String>,
    /// `--connections`.
    pub connections: usize,
    /// `--threads` (per process).
    pub threads: usize,
    /// `--procs`.
    pub procs: usize,
    /// This process's worker index (0 when not a worker).
    pub worker_index: usize,
    /// Worker processes in the run (1 when not a worker).
    pub worker_count: usize,
    /// Whether this process is a `--procs` worker.
    pub is_worker: bool,
    /// Timing.
    pub plan: Plan,
    /// `--connect-rate`.
    pub connect_rate: f64,
    /// `--connect-concurrency`.
    pub connect_concurrency: usize,
    /// `--size`.
    pub size: usize,
    /// `--payload`.
    pub payload: PayloadKind,
    /// `--payload-template` / `--payload-file`.
    pub pattern: Option<Pattern>,
    /// `hold --server-pid`.
    pub server_pid: Option<u32>,
}

impl RunSpec {
    /// Generator threads over all worker processes.
    pub fn total_threads(&self) -> usize {
        self.threads * self.worker_count
    }

    /// Connections per second of the opening stage (or of the scenario itself for
    /// connect and churn), over the whole run.
    pub fn open_rate(&self) -> f64 {
        match self.scenario {
            ScenarioSpec::Connect { rate } | ScenarioSpec::Hold { rate } => rate,
            ScenarioSpec::Churn { rate, .. } => rate,
            _ => self.connect_rate,
        }
    }

    /// Which connections thread `thread` of this process opens.
    pub fn share(&self, thread: usize) -> Share {
        let step = self.total_threads();
        let per_thread_rate = self.open_rate() / step as f64;
        let (total, max_live) = match self.scenario {
            ScenarioSpec::Churn { .. } => (usize::MAX, self.connections.div_ceil(step).max(1)),
            _ => (self.connections, usize::MAX),
        };
        Share {
            first: self.worker_index * self.threads + thread,
            step,
            total,
            rate: per_thread_rate,
            concurrency: self.connect_concurrency,
            max_live,
        }
    }

    /// Longest the whole run can take, for watchdogs.
    pub fn deadline_ns(&self) -> u64 {
        let p = &self.plan;
        let opening = Lifecycle::opening_budget(p, self.connections, self.open_rate());
        opening
            .saturating_add(p.warmup_ns)
            .saturating_add(p.duration_ns)
            .saturating_add(p.drain_ns)
            .saturating_add(p.close_ns)
            .saturating_add(p.connect_timeout_ns)
            .saturating_add(30_000_000_000)
    }

    /// Builds thread `thread`'s driver and runs it to the end.
    ///
    /// # Errors
    /// [`EngineError`] when the thread cannot create its poll instance.
    pub fn run_thread(&self, thread: usize, shared: Arc<Shared>) -> Result<RunStats, EngineError> {
        let cfg = Arc::new(self.engine.clone());
        let seed = (self.worker_index as u64) << 32 | thread as u64;
        let mut rng = XorShift::new(seed ^ 0x5eed);
        let template = match &self.pattern {
            Some(p) => Template::from_pattern(self.payload, p.clone()),
            None => Template::new(self.payload, self.size, &mut rng),
        };
        let share = self.share(thread);
        let now = crate::clock::now_ns();
        let opening = Lifecycle::opening_budget(
            &self.plan,
            share.assigned().min(self.connections),
            share.rate,
        );
        let lc = |hold: bool, open_window: bool| {
            Lifecycle::new(self.plan, now, opening, hold, open_window)
        };
        let opener = Opener::new(share);
        let mut stats = match &self.scenario {
            ScenarioSpec::Echo { window } => drive(
                cfg,
                shared,
                thread,
                seed,
                Echo::new(lc(false, false), opener, template, *window),
            )?,
            ScenarioSpec::Rate { interval_ns, .. } => drive(
                cfg,
                shared,
                thread,
                seed,
                Rate::new(lc(false, false), opener, template, *interval_ns, self.connections),
            )?,
            ScenarioSpec::Connect { .. } => {
                drive(cfg, shared, thread, seed, Connect::new(lc(false, true), opener))?
            }
            ScenarioSpec::Hold { .. } => {
                drive(cfg, shared, thread, seed, Hold::new(lc(true, false), opener))?
            }
            ScenarioSpec::Broadcast { rate, sender_urls } => {
                let sender = (self.worker_index == 0 && thread == 0).then_some(self.connections);
                let secs = (self.plan.warmup_ns + self.plan.duration_ns) as f64 / 1e9;
                let max_seq = (rate * secs).ceil() as u64 + 16;
                drive(
                    cfg,
                    shared,
                    thread,
                    seed,
                    Broadcast::new(
                        lc(false, false),
                        opener,
                        sender,
                        sender_urls.len().max(1),
                        template,
                        *rate,
                        max_seq,
                    ),
                )?
            }
            ScenarioSpec::Churn { messages, .. } => drive(
                cfg,
                shared,
                thread,
                seed,
                Churn::new(lc(false, false), opener, template, *messages),
            )?,
            ScenarioSpec::Send => {
                drive(cfg, shared, thread, seed, Send::new(lc(false, false), opener, template))?
            }
        };
        for t in &mut stats.threads {
            t.worker = self.worker_index;
        }
        Ok(stats)
    }
}

fn drive<D: Driver>(
    cfg: Arc<EngineConfig>,
    shared: Arc<Shared>,
    thread: usize,
    seed: u64,
    mut driver: D,
) -> Result<RunStats, EngineError> {
    let mut io: Io<D::State> = Io::new(cfg, shared, thread, seed)?;
    engine::run(&mut io, &mut driver);
    Ok(std::mem::take(&mut io.stats))
}

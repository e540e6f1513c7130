//! Runs one process's generator threads and keeps them in step: the start barrier, the hold
//! barrier, the watchdog and the live progress, either on its own (standalone) or as a
//! `--procs` worker taking orders from its parent over stdin/stdout (see [`crate::procs`]).

use std::fmt;
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::clock::now_ns;
use crate::engine::EngineError;
use crate::procs::{ParentMsg, WorkerMsg};
use crate::progress::Progress;
use crate::rss::{RssSample, RssSampler, vm_rss_bytes};
use crate::shared::Shared;
use crate::spec::RunSpec;
use crate::stats::RunStats;

/// How long after the last thread is ready the common start is set (lets every thread
/// see it before it passes).
const START_DELAY_NS: u64 = 20_000_000;
/// Coordinator loop period.
const STEP: Duration = Duration::from_millis(20);
/// Progress period.
const PROGRESS_NS: u64 = 250_000_000;

/// What a run produced, before it is turned into a report.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Every thread's stats, merged.
    pub stats: RunStats,
    /// Server RSS before any connection (`hold --server-pid`), bytes.
    pub rss_before: Option<u64>,
    /// Server RSS with every connection held open, bytes.
    pub rss_after: Option<u64>,
    /// Things the reader should know (RSS unreadable, a worker's complaint...).
    pub warnings: Vec<String>,
    /// The server's RSS over the run (`hold --server-pid`).
    pub rss_samples: Vec<RssSample>,
}

/// Why a run could not complete.
#[derive(Debug)]
pub enum CoordError {
    /// A generator thread could not be spawned.
    Spawn(std::io::Error),
    /// A generator thread could not start its engine.
    Engine(EngineError),
    /// A generator thread panicked.
    Panicked,
    /// A worker process failed.
    Worker {
        /// Its index.
        index: usize,
        /// What went wrong.
        reason: String,
    },
    /// The results could not be written to the parent.
    Output(std::io::Error),
}

impl fmt::Display for CoordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoordError::Spawn(e) => write!(f, "cannot start a generator thread: {e}"),
            CoordError::Engine(e) => write!(f, "{e}"),
            CoordError::Panicked => f.write_str("a generator thread panicked"),
            CoordError::Worker { index, reason } => write!(f, "worker {index}: {reason}"),
            CoordError::Output(e) => write!(f, "cannot report to the parent process: {e}"),
        }
    }
}

impl std::error::Error for CoordError {}

/// Reads the server's RSS, turning a failure into a warning.
pub fn sample_rss(pid: Option<u32>, warnings: &mut Vec<String>) -> Option<u64> {
    let pid = pid?;
    match vm_rss_bytes(pid) {
        Ok(v) => Some(v),
        Err(e) => {
            warnings.push(e.to_string());
            None
        }
    }
}

type Handles = Vec<JoinHandle<Result<RunStats, EngineError>>>;

fn spawn_threads(spec: &RunSpec, shared: &Arc<Shared>) -> Result<Handles, CoordError> {
    let mut handles = Vec::with_capacity(spec.threads);
    for thread in 0..spec.threads {
        let spec = spec.clone();
        let mine = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("loadgen-{thread}"))
            .spawn(move || spec.run_thread(thread, mine));
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                // Let the threads already running finish instead of waiting at a barrier.
                shared.abort();
                let _ = join(handles);
                return Err(CoordError::Spawn(e));
            }
        }
    }
    Ok(handles)
}

fn join(handles: Handles) -> Result<RunStats, CoordError> {
    let mut merged = RunStats::new();
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(stats)) => merged.merge(&stats),
            Ok(Err(e)) => first_err = first_err.or(Some(CoordError::Engine(e))),
            Err(_) => first_err = first_err.or(Some(CoordError::Panicked)),
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(merged),
    }
}

/// Runs the whole run in this process.
///
/// # Errors
/// [`CoordError`] when a thread cannot start or panics.
pub fn run_standalone(spec: &RunSpec, progress: &mut Progress) -> Result<Outcome, CoordError> {
    let mut out = Outcome::default();
    out.rss_before = sample_rss(spec.server_pid, &mut out.warnings);
    let shared = Arc::new(Shared::new(spec.threads));
    let handles = spawn_threads(spec, &shared)?;
    let deadline = now_ns().saturating_add(spec.deadline_ns());
    let mut started = false;
    let mut released = false;
    let mut next_progress = 0;
    let mut rss = RssSampler::new(spec.server_pid, now_ns());
    while !handles.iter().all(|h| h.is_finished()) {
        let now = now_ns();
        rss.tick(now, shared.snapshot().open);
        if !started && shared.all_ready() {
            shared.set_start(now + START_DELAY_NS);
            progress.started(now + START_DELAY_NS);
            started = true;
        }
        if !released && shared.all_held() {
            out.rss_after = sample_rss(spec.server_pid, &mut out.warnings);
            shared.release();
            released = true;
        }
        if now >= next_progress {
            progress.update(shared.snapshot());
            next_progress = now + PROGRESS_NS;
        }
        if now > deadline && !shared.aborted() {
            out.warnings.push("the run overran its deadline and was stopped".into());
            shared.abort();
        }
        std::thread::sleep(STEP);
    }
    progress.finish();
    out.rss_samples = rss.samples;
    out.stats = join(handles)?;
    Ok(out)
}

/// Runs this process's share as worker of a `--procs` parent: barriers and progress go
/// over stdout, orders come on stdin, and the merged stats are printed last.
///
/// # Errors
/// [`CoordError`] when a thread cannot start, or stdout is gone.
pub fn run_worker(spec: &RunSpec) -> Result<(), CoordError> {
    let shared = Arc::new(Shared::new(spec.threads));
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("orders".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let Ok(line) = line else { break };
                if let Some(msg) = ParentMsg::parse(&line)
                    && tx.send(msg).is_err()
                {
                    break;
                }
            }
        })
        .map_err(CoordError::Spawn)?;
    let handles = spawn_threads(spec, &shared)?;
    let deadline = now_ns().saturating_add(spec.deadline_ns());
    let mut said_ready = false;
    let mut said_held = false;
    let mut next_progress = 0;
    let stdout = std::io::stdout();
    let say = |msg: WorkerMsg| -> Result<(), CoordError> {
        let mut out = stdout.lock();
        writeln!(out, "{}", msg.encode()).map_err(CoordError::Output)?;
        out.flush().map_err(CoordError::Output)
    };
    while !handles.iter().all(|h| h.is_finished()) {
        let now = now_ns();
        if !said_ready && shared.all_ready() {
            say(WorkerMsg::Ready)?;
            said_ready = true;
        }
        if !said_held && shared.all_held() {
            say(WorkerMsg::Held)?;
            said_held = true;
        }
        if now >= next_progress {
            say(WorkerMsg::Progress(shared.snapshot()))?;
            next_progress = now + PROGRESS_NS;
        }
        if now > deadline {
            shared.abort();
        }
        match rx.recv_timeout(STEP) {
            Ok(ParentMsg::Go(t)) => shared.set_start(t),
            Ok(ParentMsg::Release) => shared.release(),
            Ok(ParentMsg::Abort) => shared.abort(),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                // The parent is gone: stop cleanly rather than wait at a barrier forever.
                shared.abort();
                std::thread::sleep(STEP);
            }
        }
    }
    let stats = join(handles)?;
    say(WorkerMsg::Result(Box::new(stats)))
}

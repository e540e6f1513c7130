//! `--procs K`: the parent re-executes itself K times as workers and merges their results.
//!
//! Each worker gets the same command line plus `--worker-index i --worker-count K`, owns
//! every K-th connection, and talks to the parent in lines:
//!
//! ```text
//! worker → parent (stdout)            parent → worker (stdin)
//!   READY          connections open     GO <start ns>   common start (CLOCK_MONOTONIC)
//!   HELD           hold barrier         RELEASE         close after the hold barrier
//!   P o s r f p99  progress             ABORT           stop now
//!   RESULT <json>  merged RunStats
//! ```
//!
//! `CLOCK_MONOTONIC` is one clock for the whole machine, so one start time means the same
//! instant to every worker and timestamps cross process boundaries.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use crate::clock::now_ns;
use crate::coord::{CoordError, Outcome, sample_rss};
use crate::progress::Progress;
use crate::shared::ProgressSnapshot;
use crate::spec::RunSpec;
use crate::stats::RunStats;

/// Delay between the last READY and the common start.
const START_DELAY_NS: u64 = 100_000_000;

/// An order from the parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParentMsg {
    /// Start at this [`now_ns`] time.
    Go(u64),
    /// Leave the hold barrier.
    Release,
    /// Stop now.
    Abort,
}

impl ParentMsg {
    /// The line for this order.
    pub fn encode(self) -> String {
        match self {
            ParentMsg::Go(t) => format!("GO {t}"),
            ParentMsg::Release => "RELEASE".into(),
            ParentMsg::Abort => "ABORT".into(),
        }
    }

    /// Parses a line; `None` for anything else.
    pub fn parse(line: &str) -> Option<ParentMsg> {
        let line = line.trim();
        match line {
            "RELEASE" => Some(ParentMsg::Release),
            "ABORT" => Some(ParentMsg::Abort),
            _ => line.strip_prefix("GO ").and_then(|t| t.parse().ok()).map(ParentMsg::Go),
        }
    }
}

/// A report from a worker.
#[derive(Debug, Clone)]
pub enum WorkerMsg {
    /// Its connections are open (or given up on).
    Ready,
    /// It holds its connections at the hold barrier.
    Held,
    /// Live counters.
    Progress(ProgressSnapshot),
    /// Its final, merged stats.
    Result(Box<RunStats>),
}

impl WorkerMsg {
    /// The line for this report.
    pub fn encode(&self) -> String {
        match self {
            WorkerMsg::Ready => "READY".into(),
            WorkerMsg::Held => "HELD".into(),
            WorkerMsg::Progress(p) => {
                format!("P {} {} {} {} {}", p.open, p.sent, p.received, p.failed, p.p99_ns)
            }
            WorkerMsg::Result(stats) => match serde_json::to_string(stats) {
                Ok(json) => format!("RESULT {json}"),
                Err(e) => format!("FAILED cannot serialize results: {e}"),
            },
        }
    }

    /// Parses a line; `Err` carries a line that is not a report (a worker's failure text).
    pub fn parse(line: &str) -> Result<WorkerMsg, String> {
        match line {
            "READY" => return Ok(WorkerMsg::Ready),
            "HELD" => return Ok(WorkerMsg::Held),
            _ => {}
        }
        if let Some(json) = line.strip_prefix("RESULT ") {
            return serde_json::from_str(json)
                .map(|s| WorkerMsg::Result(Box::new(s)))
                .map_err(|e| format!("unreadable results: {e}"));
        }
        if let Some(rest) = line.strip_prefix("P ") {
            let v: Vec<u64> = rest.split(' ').filter_map(|x| x.parse().ok()).collect();
            if let [open, sent, received, failed, p99_ns] = v[..] {
                return Ok(WorkerMsg::Progress(ProgressSnapshot {
                    open,
                    sent,
                    received,
                    failed,
                    p99_ns,
                }));
            }
        }
        Err(line.to_string())
    }
}

enum Event {
    Line(usize, String),
    Eof(usize),
}

struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    ready: bool,
    held: bool,
    progress: ProgressSnapshot,
    result: Option<RunStats>,
    failure: Option<String>,
}

impl Worker {
    fn tell(&mut self, msg: ParentMsg) {
        if let Some(stdin) = self.stdin.as_mut() {
            // A worker that is gone fails through its stdout; nothing to do here.
            let _ = writeln!(stdin, "{}", msg.encode()).and_then(|_| stdin.flush());
        }
    }
}

fn spawn_workers(spec: &RunSpec, tx: &mpsc::Sender<Event>) -> Result<Vec<Worker>, CoordError> {
    let exe = std::env::current_exe().map_err(|e| CoordError::Worker {
        index: 0,
        reason: format!("cannot find this executable: {e}"),
    })?;
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let mut workers: Vec<Worker> = Vec::with_capacity(spec.procs);
    for index in 0..spec.procs {
        let spawned = Command::new(&exe)
            .args(&args)
            .arg("--worker-index")
            .arg(index.to_string())
            .arg("--worker-count")
            .arg(spec.procs.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                for w in &mut workers {
                    w.tell(ParentMsg::Abort);
                }
                return Err(CoordError::Worker { index, reason: format!("cannot start: {e}") });
            }
        };
        let stdin = child.stdin.take();
        if let Some(stdout) = child.stdout.take() {
            let tx = tx.clone();
            let _ = std::thread::Builder::new().name(format!("worker-{index}")).spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(Event::Line(index, line)).is_err() {
                        return;
                    }
                }
                let _ = tx.send(Event::Eof(index));
            });
        }
        workers.push(Worker {
            child,
            stdin,
            ready: false,
            held: false,
            progress: ProgressSnapshot::default(),
            result: None,
            failure: None,
        });
    }
    Ok(workers)
}

/// Runs the run over `spec.procs` worker processes and merges their stats.
///
/// # Errors
/// [`CoordError::Worker`] when a worker cannot start, dies, or sends no results.
pub fn run_parent(spec: &RunSpec, progress: &mut Progress) -> Result<Outcome, CoordError> {
    let mut out = Outcome::default();
    out.rss_before = sample_rss(spec.server_pid, &mut out.warnings);
    let (tx, rx) = mpsc::channel();
    let mut workers = spawn_workers(spec, &tx)?;
    drop(tx);
    let deadline = now_ns().saturating_add(spec.deadline_ns());
    let mut rss = crate::rss::RssSampler::new(spec.server_pid, now_ns());
    let mut started = false;
    let mut released = false;
    let mut aborted = false;
    let mut open_readers = workers.len();
    while open_readers > 0 {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Event::Line(i, line)) => match WorkerMsg::parse(&line) {
                Ok(WorkerMsg::Ready) => workers[i].ready = true,
                Ok(WorkerMsg::Held) => workers[i].held = true,
                Ok(WorkerMsg::Progress(p)) => workers[i].progress = p,
                Ok(WorkerMsg::Result(stats)) => workers[i].result = Some(*stats),
                Err(text) => workers[i].failure = Some(text),
            },
            Ok(Event::Eof(i)) => {
                open_readers -= 1;
                if workers[i].result.is_none() && !aborted {
                    aborted = true;
                    for w in &mut workers {
                        w.tell(ParentMsg::Abort);
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if !started && workers.iter().all(|w| w.ready) {
            let start = now_ns() + START_DELAY_NS;
            for w in &mut workers {
                w.tell(ParentMsg::Go(start));
            }
            progress.started(start);
            started = true;
        }
        if !released && workers.iter().all(|w| w.held) {
            out.rss_after = sample_rss(spec.server_pid, &mut out.warnings);
            for w in &mut workers {
                w.tell(ParentMsg::Release);
            }
            released = true;
        }
        let mut snap = ProgressSnapshot::default();
        for w in &workers {
            snap.add(w.progress);
        }
        rss.tick(now_ns(), snap.open);
        progress.update(snap);
        if now_ns() > deadline && !aborted {
            aborted = true;
            out.warnings.push("the run overran its deadline and was stopped".into());
            for w in &mut workers {
                w.tell(ParentMsg::Abort);
            }
        }
    }
    progress.finish();
    out.rss_samples = rss.samples;
    let mut failed = None;
    for (index, w) in workers.iter_mut().enumerate() {
        w.stdin = None;
        let status = w.child.wait();
        match (&w.result, status) {
            (Some(stats), _) => out.stats.merge(stats),
            (None, status) => {
                let reason = w.failure.clone().unwrap_or_else(|| match status {
                    Ok(s) => format!("exited ({s}) without results"),
                    Err(e) => format!("cannot be waited for: {e}"),
                });
                failed = failed.or(Some(CoordError::Worker { index, reason }));
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        for m in [ParentMsg::Go(123), ParentMsg::Release, ParentMsg::Abort] {
            assert_eq!(ParentMsg::parse(&m.encode()), Some(m));
        }
        assert_eq!(ParentMsg::parse("GO x"), None);
        let p = ProgressSnapshot { open: 1, sent: 2, received: 3, failed: 4, p99_ns: 5 };
        match WorkerMsg::parse(&WorkerMsg::Progress(p).encode()) {
            Ok(WorkerMsg::Progress(q)) => assert_eq!(p, q),
            other => panic!("{other:?}"),
        }
        let mut stats = RunStats::new();
        stats.counters.sent = 9;
        stats.latency.record(1234);
        match WorkerMsg::parse(&WorkerMsg::Result(Box::new(stats)).encode()) {
            Ok(WorkerMsg::Result(s)) => {
                assert_eq!(s.counters.sent, 9);
                assert_eq!(s.latency.count(), 1);
            }
            other => panic!("{other:?}"),
        }
        assert!(WorkerMsg::parse("error: boom").is_err());
    }
}

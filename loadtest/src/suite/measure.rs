//! One scenario on one server: the generator run pinned to the client core, the server's
//! CPU read over a window inside the measurement window, the generator's typed report.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::matrix::Matrix;
use super::procfs::{CoreTicks, CpuTicks, TICKS_PER_SEC, core_ticks, fd_count};
use crate::report::Report;

/// The CPU window opens this long after (the moment the server holds every connection +
/// the warmup): the generator starts sending 20–60 ms after that moment (its start
/// barrier), so the window never covers connection setup or warmup.
const CPU_START_MARGIN: Duration = Duration::from_millis(250);
/// ...and closes this long before that moment + warmup + duration (no drain, no close).
const CPU_END_MARGIN: Duration = Duration::from_millis(50);

/// A scenario of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    /// `echo` with this payload size.
    Echo(usize),
    /// `rate`: latency at a fixed load.
    Latency,
    /// `hold --server-pid`: idle memory per connection.
    Idle,
}

impl Scenario {
    /// A short name for files.
    pub fn key(self) -> String {
        match self {
            Scenario::Echo(n) => format!("echo{n}"),
            Scenario::Latency => "latency".into(),
            Scenario::Idle => "idle".into(),
        }
    }

    /// The generator's arguments (besides `--url`, `--json`, `--hgrm`, `--quiet`).
    pub fn args(self, m: &Matrix, server_pid: u32) -> Vec<String> {
        let (s, c) = (&m.settings, &m.scenarios);
        let timing =
            ["-d".to_string(), s.duration_s.to_string(), "--warmup".into(), s.warmup_s.to_string()];
        let mut a: Vec<String> = match self {
            Scenario::Echo(size) => vec![
                "echo".into(),
                "-c".into(),
                c.echo_connections.to_string(),
                "-w".into(),
                c.echo_window.to_string(),
                "-s".into(),
                size.to_string(),
            ],
            Scenario::Latency => vec![
                "rate".into(),
                "-c".into(),
                c.rate_connections.to_string(),
                "-i".into(),
                c.rate_interval_ms.to_string(),
                "-s".into(),
                "32".into(),
            ],
            Scenario::Idle => {
                return vec![
                    "hold".into(),
                    "-c".into(),
                    c.hold_connections.to_string(),
                    "-d".into(),
                    s.hold_s.to_string(),
                    "--server-pid".into(),
                    server_pid.to_string(),
                ];
            }
        };
        a.extend(timing);
        a.extend(["--payload".into(), "binary".into()]);
        a
    }

    /// Connections the server holds during the run.
    pub fn connections(self, m: &Matrix) -> usize {
        match self {
            Scenario::Echo(_) => m.scenarios.echo_connections,
            Scenario::Latency => m.scenarios.rate_connections,
            Scenario::Idle => m.scenarios.hold_connections,
        }
    }
}

/// The server's CPU over the window inside the measurement window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuWindow {
    /// The window's length, seconds.
    pub secs: f64,
    /// CPU ticks spent in it.
    pub ticks: CpuTicks,
    /// How busy the server's core was in it, percent (by anything: the server and
    /// whatever else ran there).
    pub core_busy_pct: Option<f64>,
    /// The share of the server's core the hypervisor took (steal time), percent: a
    /// server's own CPU time may count it, as it ran while the core was taken.
    pub core_steal_pct: Option<f64>,
    /// The generator's own CPU ticks in the same window: what a message cost it, which
    /// sets msg/s when it is the limit.
    pub generator: Option<CpuTicks>,
    /// The share of the generator's core the hypervisor took, percent.
    pub generator_core_steal_pct: Option<f64>,
}

impl CpuWindow {
    /// Server CPU per message, (user, system) nanoseconds, at `msgs_per_sec`.
    pub fn ns_per_msg(&self, msgs_per_sec: f64) -> Option<(f64, f64)> {
        self.per_msg(self.ticks, msgs_per_sec)
    }

    /// The generator's CPU per message, (user, system) nanoseconds, at `msgs_per_sec`.
    pub fn generator_ns_per_msg(&self, msgs_per_sec: f64) -> Option<(f64, f64)> {
        self.per_msg(self.generator?, msgs_per_sec)
    }

    fn per_msg(&self, ticks: CpuTicks, msgs_per_sec: f64) -> Option<(f64, f64)> {
        let msgs = msgs_per_sec * self.secs;
        if msgs <= 0.0 {
            return None;
        }
        let ns = |ticks: u64| ticks as f64 / TICKS_PER_SEC * 1e9 / msgs;
        Some((ns(ticks.user), ns(ticks.system)))
    }

    /// Server CPU use, percent of one core.
    pub fn percent(&self) -> f64 {
        let t = self.ticks.user + self.ticks.system;
        if self.secs > 0.0 { 100.0 * t as f64 / TICKS_PER_SEC / self.secs } else { 0.0 }
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The generator's report, typed.
    pub report: Box<Report>,
    /// The server's CPU, when the window could be placed.
    pub cpu: Option<CpuWindow>,
    /// The latency distribution: (percentile 0..1, milliseconds).
    pub percentiles: Vec<(f64, f64)>,
}

/// Where one run's files go.
pub struct Files {
    /// `--json`.
    pub json: PathBuf,
    /// `--hgrm`.
    pub hgrm: PathBuf,
    /// The generator's stdout and stderr.
    pub log: PathBuf,
}

impl Files {
    /// The files of `server`'s `scenario` in round `round` in `dir`.
    pub fn new(dir: &Path, server: &str, scenario: Scenario, round: u32) -> Files {
        let stem = format!("{server}.{}.r{round}", scenario.key());
        Files {
            json: dir.join(format!("{stem}.json")),
            hgrm: dir.join(format!("{stem}.hgrm")),
            log: dir.join(format!("{stem}.loadtest.txt")),
        }
    }
}

/// Runs `scenario` against the server `pid` on `port`.
///
/// # Errors
/// Why there is no result: the generator could not start, overran, exited without a
/// report, or wrote one the suite cannot read.
pub fn run(
    m: &Matrix,
    scenario: Scenario,
    pid: u32,
    port: u16,
    files: &Files,
) -> Result<Measured, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the generator: {e}"))?;
    let log = File::create(&files.log).map_err(|e| e.to_string())?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let base = fd_count(pid).unwrap_or(0);
    let mut child = Command::new("taskset")
        .arg("-c")
        .arg(m.settings.client_core.to_string())
        .arg(&exe)
        .args(scenario.args(m, pid))
        .arg("--url")
        .arg(format!("ws://127.0.0.1:{port}/"))
        .arg("--json")
        .arg(&files.json)
        .arg("--hgrm")
        .arg(&files.hgrm)
        .arg("--quiet")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start the generator: {e}"))?;
    let s = &m.settings;
    let limit = Duration::from_secs_f64(s.warmup_s + s.duration_s.max(s.hold_s) + 90.0);
    let started = Instant::now();
    let cpu = if scenario == Scenario::Idle {
        None
    } else {
        cpu_window(m, scenario, pid, base, &mut child)
    };
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the generator ran over {limit:?} and was stopped"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // A failed health check (exit 3) still wrote its report: the notes say what failed.
    if !matches!(status.code(), Some(0) | Some(3)) {
        let tail = std::fs::read_to_string(&files.log).unwrap_or_default();
        let last = tail.lines().rev().take(3).collect::<Vec<_>>().join(" / ");
        return Err(format!("the generator exited with {status}: {last}"));
    }
    let text = std::fs::read_to_string(&files.json)
        .map_err(|e| format!("no report at {}: {e}", files.json.display()))?;
    let report = super::parse_report(&text, &scenario)?;
    let percentiles = match std::fs::read_to_string(&files.hgrm) {
        Ok(t) => crate::hgrm::parse_percentiles(&t).map_err(|e| e.to_string())?,
        Err(_) => Vec::new(),
    };
    Ok(Measured { report: Box::new(report), cpu, percentiles })
}

/// Waits until the server holds the run's connections, then reads its CPU over a window
/// inside the measurement window. `None` when it never held them all at once.
fn cpu_window(
    m: &Matrix,
    scenario: Scenario,
    pid: u32,
    base: usize,
    child: &mut std::process::Child,
) -> Option<CpuWindow> {
    let want = scenario.connections(m);
    let give_up = Instant::now() + Duration::from_secs(15);
    let all = loop {
        if Instant::now() > give_up || matches!(child.try_wait(), Ok(Some(_))) {
            return None;
        }
        if fd_count(pid).unwrap_or(0).saturating_sub(base) >= want {
            break Instant::now();
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let s = &m.settings;
    let warmup = Duration::from_secs_f64(s.warmup_s);
    let open = all + warmup + CPU_START_MARGIN;
    let close = all + warmup + Duration::from_secs_f64(s.duration_s) - CPU_END_MARGIN;
    let (core, client_core, generator) = (s.server_core, s.client_core, child.id());
    sleep_until(open);
    let t0 = Instant::now();
    let (a, core_a) = (CpuTicks::of(pid)?, core_ticks(core));
    let (gen_a, client_a) = (CpuTicks::of(generator), core_ticks(client_core));
    sleep_until(close);
    let t1 = Instant::now();
    let (b, core_b) = (CpuTicks::of(pid)?, core_ticks(core));
    let (gen_b, client_b) = (CpuTicks::of(generator), core_ticks(client_core));
    let (core_busy_pct, core_steal_pct) = core_shares(core_a, core_b);
    let (_, generator_core_steal_pct) = core_shares(client_a, client_b);
    Some(CpuWindow {
        secs: (t1 - t0).as_secs_f64(),
        ticks: b.since(a),
        core_busy_pct,
        core_steal_pct,
        generator: gen_a.zip(gen_b).map(|(a, b)| b.since(a)),
        generator_core_steal_pct,
    })
}

/// A core's (busy, steal) percent between two readings of `/proc/stat`.
fn core_shares(a: Option<CoreTicks>, b: Option<CoreTicks>) -> (Option<f64>, Option<f64>) {
    match (a, b) {
        (Some(a), Some(b)) if b.total > a.total => {
            let pct = |x0: u64, x1: u64| {
                Some(100.0 * x1.saturating_sub(x0) as f64 / (b.total - a.total) as f64)
            };
            (pct(a.busy, b.busy), pct(a.steal, b.steal))
        }
        _ => (None, None),
    }
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_per_message_splits_user_and_system() {
        let w = CpuWindow {
            secs: 2.0,
            ticks: CpuTicks { user: 150, system: 50 },
            core_busy_pct: None,
            core_steal_pct: None,
            generator: Some(CpuTicks { user: 40, system: 160 }),
            generator_core_steal_pct: None,
        };
        // 1.5 s user + 0.5 s system over 2 s at 1M msg/s: 750 + 250 ns per message.
        let (user, system) = w.ns_per_msg(1_000_000.0).expect("messages");
        assert!((user - 750.0).abs() < 1e-6 && (system - 250.0).abs() < 1e-6);
        let (user, system) = w.generator_ns_per_msg(1_000_000.0).expect("messages");
        assert!((user - 200.0).abs() < 1e-6 && (system - 800.0).abs() < 1e-6);
        assert!((w.percent() - 100.0).abs() < 1e-9);
        assert_eq!(w.ns_per_msg(0.0), None);
    }
}

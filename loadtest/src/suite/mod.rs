//! `wsloop-loadtest suite [MATRIX.toml]`: the benchmark suite. For each server of the matrix
//! (default `loadtest/suite.toml`): build it, start it pinned to one core, drive it with this
//! generator pinned to another through each scenario (echo per size, latency, idle
//! memory; each scenario on every server in turn, round after round), read the generator's typed report, and print a Markdown table plus SVG charts.
//! Everything lands in `target/bench-suite/<UTC time>/`; `--write FILE` also copies the
//! Markdown to FILE, and its two charts beside it named after it, saying so.

pub mod charts;
pub mod matrix;
pub mod measure;
pub mod procfs;
pub mod server;
pub mod table;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use matrix::{Matrix, ServerSpec};
use measure::{Files, Measured, Scenario};

use crate::cli::SuiteArgs;
use crate::report::Report;

/// Where and when a suite ran.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// UTC date and time.
    pub date: String,
    /// Cores, CPU model, memory, kernel.
    pub machine: String,
    /// The command line.
    pub command: String,
    /// The git revision of the tree.
    pub rev: String,
    /// Load average before the runs.
    pub load_before: String,
    /// Load average after the runs.
    pub load_after: String,
    /// Seconds the suite took, builds included.
    pub elapsed_s: f64,
    /// Where the raw results are, relative to the repository root.
    pub out_dir: String,
}

/// One scenario on one server.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The server's key.
    pub server: String,
    /// The scenario.
    pub scenario: Scenario,
    /// The round, from 1.
    pub round: u32,
    /// What it measured, or why it has no figures.
    pub result: Result<Measured, String>,
    /// Things to know about the figures.
    pub notes: Vec<String>,
}

/// Everything a suite produced.
#[derive(Debug, Clone)]
pub struct Results {
    /// The matrix it ran.
    pub matrix: Matrix,
    /// Servers not run, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Every run, in order.
    pub runs: Vec<RunOutcome>,
    /// Where and when.
    pub meta: Meta,
}

impl Results {
    /// The runs of `server`'s `scenario`, one per round, in order.
    pub fn rounds_of(&self, server: &str, scenario: Scenario) -> Vec<&RunOutcome> {
        self.runs.iter().filter(|o| o.server == server && o.scenario == scenario).collect()
    }

    /// The median round of `server`'s `scenario`: by msg/s for echo, by p50 for latency
    /// (the lower of the two middle ones for an even count). Failed rounds are left out;
    /// when every round failed, the first.
    pub fn run(&self, server: &str, scenario: Scenario) -> Option<&RunOutcome> {
        let rounds = self.rounds_of(server, scenario);
        let mut measured: Vec<(&RunOutcome, f64)> = rounds
            .iter()
            .filter_map(|&o| o.result.as_ref().ok().map(|m| (o, m.median_key(scenario))))
            .collect();
        if measured.is_empty() {
            return rounds.first().copied();
        }
        measured.sort_by(|a, b| a.1.total_cmp(&b.1));
        Some(measured[(measured.len() - 1) / 2].0)
    }

    /// Why `server` was skipped, if it was.
    pub fn skipped_reason(&self, server: &str) -> Option<&str> {
        self.skipped.iter().find(|(k, _)| k == server).map(|(_, why)| why.as_str())
    }

    /// Messages per second of the latency scenario, over all connections.
    pub fn latency_rate(&self) -> f64 {
        let c = &self.matrix.scenarios;
        c.rate_connections as f64 * 1000.0 / c.rate_interval_ms
    }
}

impl Measured {
    /// What the median round of `scenario` is chosen by: msg/s, or p50 for latency.
    fn median_key(&self, scenario: Scenario) -> f64 {
        if scenario == Scenario::Latency {
            self.report.latency_us.p50_us
        } else {
            self.msgs_per_sec()
        }
    }

    /// Messages echoed per second in the window.
    pub fn msgs_per_sec(&self) -> f64 {
        self.report.throughput.msgs_per_sec
    }

    /// Server CPU per message, (user, system) ns.
    pub fn cpu_split(&self) -> Option<(f64, f64)> {
        self.cpu?.ns_per_msg(self.msgs_per_sec())
    }

    /// The generator's CPU per message, (user, system) ns, over the server's CPU window.
    pub fn generator_split(&self) -> Option<(f64, f64)> {
        self.cpu?.generator_ns_per_msg(self.msgs_per_sec())
    }

    /// Whether the generator, not the server, may have set the pace.
    pub fn generator_bound(&self) -> bool {
        let closed_loop_note = self.report.warnings.iter().any(|w| w.starts_with("closed loop"));
        !closed_loop_note
            && self.report.generator.iter().any(|g| g.saturated_secs > 0 || g.busy > 0.9)
    }

    /// The generator's busiest thread, `*` when it may have been the limit.
    pub fn busy_cell(&self) -> String {
        let busy = self.report.generator.iter().map(|g| g.busy).fold(0.0f64, f64::max);
        format!("{:.0}%{}", busy * 100.0, if self.generator_bound() { "\\*" } else { "" })
    }
}

/// Reads a generator report for `scenario`: typed, every field required (no lookups that
/// fall back to a default), and of the scenario asked for.
///
/// # Errors
/// What is wrong with it: not JSON, a field missing or mistyped, another scenario.
pub fn parse_report(text: &str, scenario: &Scenario) -> Result<Report, String> {
    let report: Report =
        serde_json::from_str(text).map_err(|e| format!("unreadable generator report: {e}"))?;
    let want = match scenario {
        Scenario::Echo(_) => "echo",
        Scenario::Latency => "rate",
        Scenario::Idle => "hold",
    };
    if report.scenario != want {
        return Err(format!("a report of `{}` where `{want}` was run", report.scenario));
    }
    if let Scenario::Echo(size) = scenario
        && report.settings.size != *size
    {
        return Err(format!(
            "a report of {} B messages where {size} B were sent",
            report.settings.size
        ));
    }
    Ok(report)
}

/// What the report says the reader should know.
fn notes_of(report: &Report) -> Vec<String> {
    let mut notes: Vec<String> = report.verdict.problems.clone();
    notes.extend(report.warnings.iter().map(|w| format!("loadtest: {w}")));
    notes
}

/// Runs the suite; returns the process exit code (0 when every run produced figures).
///
/// # Errors
/// A message when the suite cannot start at all (matrix unreadable, no output directory).
pub fn run(args: &SuiteArgs) -> Result<u8, String> {
    let began = Instant::now();
    let root = repo_root();
    let text = match &args.matrix {
        Some(p) => {
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?
        }
        None => matrix::DEFAULT.to_string(),
    };
    let mut m = Matrix::parse(&text).map_err(|e| e.to_string())?;
    if args.quick {
        m.quick();
    }
    if !args.servers.is_empty() {
        m.only(&args.servers).map_err(|e| e.to_string())?;
    }
    if cfg!(debug_assertions) {
        log(
            "warning: this generator is a debug build; its figures are its own limit (use cargo run --release)",
        );
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let out =
        args.out.clone().unwrap_or_else(|| root.join("target/bench-suite").join(utc_stamp(now)));
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    log(&format!("writing to {}", out.display()));
    pin_self(m.settings.client_core);
    let load_before = load_average();
    let skipped = prepare(&root, &m, &out, args.no_build);
    let mut runs = Vec::new();
    let mut port = 19_200;
    let present: Vec<&ServerSpec> =
        m.servers.iter().filter(|sv| !skipped.iter().any(|(k, _)| k == &sv.key)).collect();
    for Slot { round, scenario: s, server: sv } in schedule(&m, &present) {
        port = server::free_port(port + 1).unwrap_or(port);
        log(&format!("{}: {} (round {round} of {})", sv.key, s.key(), m.settings.rounds));
        let o = run_one(&root, &m, sv, (s, round), port, &out);
        match &o.result {
            Ok(meas) => log(&format!("  ok: {}", summary(meas, &o.notes))),
            Err(e) => log(&format!("  FAILED: {e}")),
        }
        runs.push(o);
    }
    let meta = Meta {
        date: utc_date(now),
        machine: machine(),
        command: command_line(),
        rev: git_rev(&root),
        load_before,
        load_after: load_average(),
        elapsed_s: began.elapsed().as_secs_f64(),
        out_dir: out.strip_prefix(&root).unwrap_or(&out).display().to_string(),
    };
    let results = Results { matrix: m, skipped, runs, meta };
    let text = table::render(&results, "");
    print!("{text}");
    let report_path = out.join("report.md");
    std::fs::write(&report_path, &text)
        .map_err(|e| format!("cannot write {}: {e}", report_path.display()))?;
    charts::write(&results, &out).map_err(|e| e.to_string())?;
    log(&format!(
        "wrote {}, {}, {}",
        report_path.display(),
        out.join("throughput.svg").display(),
        out.join("latency.svg").display()
    ));
    if let Some(path) = &args.write {
        let charts = write_beside(&results, &out, path)?;
        let tracked = is_tracked(&root, path);
        log(&format!(
            "wrote {}{} and its charts {}",
            path.display(),
            if tracked { " (a tracked file: review the change with git diff)" } else { "" },
            charts.join(", ")
        ));
    }
    let failed = results.runs.iter().filter(|o| o.result.is_err()).count();
    log(&format!(
        "done in {:.0} s: {} runs, {failed} failed, {} server(s) skipped",
        results.meta.elapsed_s,
        results.runs.len(),
        results.skipped.len()
    ));
    Ok(if failed == 0 { 0 } else { 1 })
}

/// One run of the suite's schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot<S> {
    round: u32,
    scenario: Scenario,
    server: S,
}

/// The order of the runs: round by round, and within a round scenario by scenario, each
/// of `servers` in turn. A subject and the peer it is compared with then run less than a
/// minute apart, not several, so a change in the host's speed between them is small. Even
/// rounds take the servers in reverse order, so a drift over a round favours none of them
/// (the later server of a pair in one round is the earlier in the next).
fn schedule<S: Copy>(m: &Matrix, servers: &[S]) -> Vec<Slot<S>> {
    let mut slots = Vec::new();
    for round in 1..=m.settings.rounds {
        for scenario in scenarios_of(m, round) {
            let slot = |&server: &S| Slot { round, scenario, server };
            if round % 2 == 0 {
                slots.extend(servers.iter().rev().map(slot));
            } else {
                slots.extend(servers.iter().map(slot));
            }
        }
    }
    slots
}

/// The scenarios of a round: echo per size and latency in every round; idle memory,
/// which the host's load does not move, in the first only.
fn scenarios_of(m: &Matrix, round: u32) -> Vec<Scenario> {
    let mut scenarios: Vec<Scenario> =
        m.scenarios.echo_sizes.iter().map(|&n| Scenario::Echo(n)).collect();
    scenarios.push(Scenario::Latency);
    if round == 1 {
        scenarios.push(Scenario::Idle);
    }
    scenarios
}

fn run_one(
    root: &Path,
    m: &Matrix,
    sv: &ServerSpec,
    (s, round): (Scenario, u32),
    port: u16,
    out: &Path,
) -> RunOutcome {
    let mut o = RunOutcome {
        server: sv.key.clone(),
        scenario: s,
        round,
        result: Err(String::new()),
        notes: Vec::new(),
    };
    let log = out.join(format!("{}.{}.r{round}.server.log", sv.key, s.key()));
    let mut srv = match server::Server::start(root, sv, port, m.settings.server_core, &log) {
        Ok(srv) => srv,
        Err(e) => {
            o.result = Err(format!("the server did not start: {e}"));
            return o;
        }
    };
    o.result = measure::run(m, s, srv.pid, port, &Files::new(out, &sv.key, s, round));
    if let Ok(meas) = &o.result {
        o.notes = notes_of(&meas.report);
        if s != Scenario::Idle && meas.cpu.is_none() {
            o.notes.push("the server never held every connection at once: no CPU figures".into());
        }
        let core = m.settings.server_core;
        if let Some(others) = meas.cpu.and_then(|c| contention(&c)) {
            o.notes.insert(
                0,
                format!(
                    "other work (processes, interrupts, the hypervisor) took {others:.0}% of core {core}: msg/s and latency show the machine's load"
                ),
            );
        }
        if let Some(steal) = meas.cpu.and_then(|c| stolen(&c)) {
            o.notes.insert(
                0,
                format!(
                    "the hypervisor took {steal:.0}% of core {core} (steal time): the server's CPU figures may count it, and msg/s and latency show the host's load"
                ),
            );
        }
    }
    if let Some(status) = srv.exited() {
        o.notes.push(format!("the server exited on its own ({status})"));
    }
    srv.stop();
    o
}

/// The share of the server's core other processes took in the CPU window, percent, when
/// it is over 20%: enough to make the run's msg/s and latency unreliable.
fn contention(c: &measure::CpuWindow) -> Option<f64> {
    let others = c.core_busy_pct? - c.percent();
    (others > 20.0).then_some(others)
}

/// The share of the server's core the hypervisor took in the CPU window, percent, when it
/// is 10% or more: the host's other work then shows in the run's figures.
fn stolen(c: &measure::CpuWindow) -> Option<f64> {
    c.core_steal_pct.filter(|&steal| steal >= 10.0)
}

/// Builds what the matrix needs (each distinct command once); returns the servers that
/// cannot run, with the reason.
fn prepare(root: &Path, m: &Matrix, out: &Path, no_build: bool) -> Vec<(String, String)> {
    let mut skipped = Vec::new();
    if server::find_on_path("taskset").is_none() {
        for sv in &m.servers {
            skipped.push((sv.key.clone(), "`taskset` (util-linux) is not on PATH".to_string()));
        }
        return skipped;
    }
    let mut done: BTreeSet<Vec<String>> = BTreeSet::new();
    let mut failed: BTreeSet<Vec<String>> = BTreeSet::new();
    for sv in &m.servers {
        if let Some(tool) = server::missing_tool(&sv.needs) {
            let why = format!("`{tool}` is not on PATH (install it to include this server)");
            log(&format!("{}: skipped: {why}", sv.key));
            skipped.push((sv.key.clone(), why));
            continue;
        }
        if no_build {
            continue;
        }
        for (i, cmd) in sv.build.iter().enumerate() {
            if failed.contains(cmd) {
                skipped.push((sv.key.clone(), format!("`{}` failed", cmd.join(" "))));
                break;
            }
            if done.contains(cmd) {
                continue;
            }
            log(&format!("building: {}", cmd.join(" ")));
            let build_log = out.join(format!("{}.build{i}.log", sv.key));
            match server::build(root, cmd, &build_log) {
                Ok(()) => {
                    done.insert(cmd.clone());
                }
                Err(e) => {
                    log(&format!("{}: skipped: {e}", sv.key));
                    failed.insert(cmd.clone());
                    skipped.push((sv.key.clone(), e));
                    break;
                }
            }
        }
    }
    skipped
}

fn summary(m: &Measured, notes: &[String]) -> String {
    let mut parts = Vec::new();
    let r = &m.report;
    if r.scenario != "hold" {
        parts.push(format!("{} msg/s", crate::progress::group(m.msgs_per_sec().round() as u64)));
    }
    if let Some((u, s)) = m.cpu_split() {
        parts.push(format!("server CPU {:.0} + {:.0} ns/msg (user + sys)", u, s));
    }
    if r.scenario == "rate" {
        parts.push(format!("p50/p99 {:.0}/{:.0} µs", r.latency_us.p50_us, r.latency_us.p99_us));
    }
    if let Some(b) = r.memory.as_ref().and_then(|mem| mem.bytes_per_connection) {
        parts.push(format!("{b:.0} B/conn"));
    }
    parts.push(format!("generator {}", m.busy_cell().replace("\\*", "*")));
    parts.extend(notes.iter().cloned());
    parts.join(", ")
}

fn log(msg: &str) {
    eprintln!("[suite] {msg}");
}

/// The repository the generator was built from (where the matrix's paths start), else the
/// current directory.
fn repo_root() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if built.join("peers").is_dir() {
        built.canonicalize().unwrap_or(built)
    } else {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
    }
}

/// Keeps the suite's own polling off the server's core.
fn pin_self(core: usize) {
    let _ = Command::new("taskset")
        .args(["-a", "-p", "-c", &core.to_string(), &std::process::id().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    // Every core of the machine (this process is pinned to one).
    let cores = std::fs::read_to_string("/proc/cpuinfo")
        .map(|t| t.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or("?".into(), |kib| format!("{:.0}", kib / 1048576.0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores, {cpu}, {mem_gib} GiB, Linux {}", kernel.trim())
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("wsloop-loadtest {}", args.join(" "))
}

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(root).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn git_rev(root: &Path) -> String {
    let rev = git(root, &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(
        root,
        &["status", "--porcelain", "--", "src", "loadtest", "peers", "Cargo.toml", "Cargo.lock"],
    )
    .is_some_and(|s| !s.is_empty());
    if dirty { format!("{rev} with uncommitted changes") } else { rev }
}

/// Writes the report to `path` (`--write`) with its charts copied beside it, named after it
/// (`BENCHMARKS.md` → `BENCHMARKS.throughput.svg`, `BENCHMARKS.latency.svg`), so that the
/// copy shows them wherever it is kept; returns the charts' paths.
fn write_beside(results: &Results, out: &Path, path: &Path) -> Result<Vec<String>, String> {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let prefix = format!("{stem}.");
    let text = table::render(results, &prefix);
    std::fs::write(path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let mut written = Vec::new();
    for chart in ["throughput.svg", "latency.svg"] {
        let to = path.with_file_name(format!("{prefix}{chart}"));
        std::fs::copy(out.join(chart), &to)
            .map_err(|e| format!("cannot copy {chart} to {}: {e}", to.display()))?;
        written.push(to.display().to_string());
    }
    Ok(written)
}

fn is_tracked(root: &Path, path: &Path) -> bool {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    git(root, &["ls-files", "--error-unmatch", &path.display().to_string()]).is_some()
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn utc_parts(secs: u64) -> (i64, u32, u32, u64, u64, u64) {
    let (y, mo, d) = civil((secs / 86_400) as i64);
    let s = secs % 86_400;
    (y, mo, d, s / 3600, s % 3600 / 60, s % 60)
}

/// `20261129T201500Z`.
fn utc_stamp(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = utc_parts(secs);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// `2026-11-29 20:15 UTC`.
fn utc_date(secs: u64) -> String {
    let (y, mo, d, h, mi, _) = utc_parts(secs);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02} UTC")
}

#[cfg(test)]
mod tests;

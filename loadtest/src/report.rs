//! Figures from merged stats: the final table on stdout and the `--json` document.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::coord::Outcome;
use crate::payload::PayloadKind;
use crate::progress::group;
use crate::rss::RssSample;
use crate::scenario::broadcast;
use crate::spec::{RunSpec, ScenarioSpec};
use crate::stats::{Counters, Failures, NodeCounts, RunStats, Summary, ThreadLoad};
use crate::threshold::Threshold;
use crate::verdict::Verdict;

/// The run's settings, as the JSON records them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// `--connections`.
    pub connections: usize,
    /// `--threads` per process.
    pub threads: usize,
    /// `--procs`.
    pub procs: usize,
    /// `--duration`, seconds.
    pub duration_s: f64,
    /// `--warmup`, seconds.
    pub warmup_s: f64,
    /// `--size`, bytes.
    pub size: usize,
    /// `--payload`.
    pub payload: PayloadKind,
    /// `--compression`.
    pub compression: bool,
    /// `--source` addresses.
    pub sources: Vec<String>,
    /// `echo --window`.
    pub window: Option<usize>,
    /// `rate --interval`, milliseconds.
    pub interval_ms: Option<f64>,
    /// `--rate` of connect, hold, churn (connections/s) or broadcast (messages/s).
    pub rate: Option<f64>,
    /// `churn --messages`.
    pub messages: Option<u64>,
    /// Messages rendered from `--payload-template` / `--payload-file` (`size` is then
    /// the nominal size).
    pub template: bool,
}

/// Connection figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Connections {
    /// Attempts.
    pub attempted: u64,
    /// Handshakes completed.
    pub opened: u64,
    /// Failed attempts.
    pub failed: u64,
    /// Failed attempts by cause.
    pub failures: Failures,
    /// Open when the run began closing.
    pub open_at_end: u64,
    /// Closed by the server first.
    pub closed_by_server: u64,
    /// Closed by the generator.
    pub closed_by_generator: u64,
}

/// Message accounting: `sent = received + lost + in_flight` for echo, rate and churn.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Messages {
    /// Sent.
    pub sent: u64,
    /// Answered (or, broadcast, distinct deliveries).
    pub received: u64,
    /// Sent on connections that died unanswered.
    pub lost: u64,
    /// Unanswered when the run stopped waiting.
    pub in_flight: u64,
    /// Sends skipped because the connection's queue was full.
    pub skipped: u64,
    /// Received without our stamp.
    pub unstamped: u64,
    /// Stamped but answering nothing outstanding.
    pub unexpected: u64,
    /// Answers out of sequence.
    pub out_of_order: u64,
    /// Whether every message sent is accounted for.
    pub accounted: bool,
}

/// Rates over the measurement window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Throughput {
    /// Length of the window, seconds.
    pub window_s: f64,
    /// Messages answered (delivered for broadcast) per second, of those sent in the window.
    pub msgs_per_sec: f64,
    /// Messages sent per second in the window.
    pub sent_per_sec: f64,
    /// Payload megabytes (10^6) per second, answered messages.
    pub mb_per_sec: f64,
    /// Handshakes completed per second (connect, churn).
    pub connects_per_sec: f64,
    /// Churn cycles completed per second.
    pub cycles_per_sec: f64,
}

/// Broadcast accounting: `expected = delivered + missing`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BroadcastFigures {
    /// Messages published.
    pub published: u64,
    /// Subscribers open when publishing started.
    pub subscribers: u64,
    /// published × subscribers.
    pub expected: u64,
    /// Distinct deliveries.
    pub delivered: u64,
    /// Expected deliveries that never came.
    pub missing: u64,
    /// Repeated deliveries.
    pub duplicates: u64,
    /// Copies the sender got of its own messages.
    pub sender_echoes: u64,
    /// Per message published in the window: publish → its last subscriber had it, on
    /// whichever node (`--url`) that subscriber was.
    pub last_delivery_us: Summary,
    /// The same accounting per `--url` (node of a cluster), in `--url` order.
    pub nodes: Vec<NodeFigures>,
}

/// Broadcast accounting of the subscribers on one `--url`: `expected = delivered +
/// missing`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeFigures {
    /// The `--url`.
    pub url: String,
    /// Subscribers on it open when publishing started.
    pub subscribers: u64,
    /// published × subscribers.
    pub expected: u64,
    /// Distinct deliveries.
    pub delivered: u64,
    /// Expected deliveries that never came.
    pub missing: u64,
    /// Repeated deliveries.
    pub duplicates: u64,
}

/// Server memory (`hold --server-pid`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Memory {
    /// The server's pid.
    pub server_pid: u32,
    /// RSS before any connection, bytes.
    pub rss_before: Option<u64>,
    /// RSS with every connection open, bytes.
    pub rss_after: Option<u64>,
    /// (after − before) / connections open.
    pub bytes_per_connection: Option<f64>,
}

/// One second of the timeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Point {
    /// Seconds since the window started.
    pub t: u64,
    /// Messages sent.
    pub sent: u64,
    /// Messages received.
    pub received: u64,
    /// Handshakes completed.
    pub opened: u64,
    /// Failed connections.
    pub failed: u64,
    /// Connections ended.
    pub closed: u64,
    /// Connections the server closed first.
    pub server_closed: u64,
    /// Connections open.
    pub open: u64,
    /// Latency percentiles of what completed in this second (microseconds).
    pub latency_us: Summary,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The scenario name.
    pub scenario: String,
    /// The first `--url`.
    pub url: String,
    /// Every `--url`, in order (connections spread round-robin over them).
    pub urls: Vec<String>,
    /// Settings.
    pub settings: Settings,
    /// Connection figures.
    pub connections: Connections,
    /// Message accounting.
    pub messages: Messages,
    /// Rates.
    pub throughput: Throughput,
    /// Message latency (round trip, or publish → delivery), sent in the window.
    pub latency_us: Summary,
    /// TCP connect time.
    pub connect_us: Summary,
    /// Connect start → 101.
    pub handshake_us: Summary,
    /// Churn: connect start → closed.
    pub cycle_us: Summary,
    /// Broadcast accounting.
    pub broadcast: Option<BroadcastFigures>,
    /// Server memory.
    pub memory: Option<Memory>,
    /// The server's RSS four times a second over the whole run (`hold --server-pid`).
    pub memory_timeline: Vec<RssSample>,
    /// Per-second timeline of the window.
    pub timeline: Vec<Point>,
    /// Per generator thread load.
    pub generator: Vec<ThreadLoad>,
    /// Whether any generator thread was saturated for a second or more.
    pub generator_saturated: bool,
    /// Things to know before trusting the figures.
    pub warnings: Vec<String>,
    /// Raw counters.
    pub counters: Counters,
    /// Thresholds and health: see [`crate::verdict`].
    pub verdict: Verdict,
}

impl Report {
    /// Figures for `spec` from what the run produced.
    pub fn build(spec: &RunSpec, outcome: &Outcome) -> Report {
        let mut stats: RunStats = outcome.stats.clone();
        let is_broadcast = matches!(spec.scenario, ScenarioSpec::Broadcast { .. });
        if is_broadcast {
            broadcast::finalize(&mut stats.counters);
        }
        let c = &stats.counters;
        let window_s = if stats.window_ns > 0 {
            stats.window_ns as f64 / 1e9
        } else {
            spec.plan.duration_ns as f64 / 1e9
        };
        let per_sec = |n: u64| {
            if window_s > 0.0 { n as f64 / window_s } else { 0.0 }
        };
        let msgs_per_sec = per_sec(c.received_measured);
        let accounted = match spec.scenario {
            ScenarioSpec::Echo { .. } | ScenarioSpec::Rate { .. } | ScenarioSpec::Churn { .. } => {
                c.sent == c.received + c.lost + c.in_flight
            }
            ScenarioSpec::Broadcast { .. } => c.expected == c.delivered + c.missing,
            _ => true,
        };
        let opened_in_window: u64 = stats.timeline.iter().map(|b| b.opened).sum();
        let (window, interval_ms, rate, messages) = match &spec.scenario {
            ScenarioSpec::Echo { window } => (Some(*window), None, None, None),
            ScenarioSpec::Rate { interval_ns, rate } => {
                (None, Some(*interval_ns as f64 / 1e6), *rate, None)
            }
            ScenarioSpec::Connect { rate } | ScenarioSpec::Hold { rate } => {
                (None, None, Some(*rate), None)
            }
            ScenarioSpec::Broadcast { rate, .. } => (None, None, Some(*rate), None),
            ScenarioSpec::Churn { rate, messages } => (None, None, Some(*rate), Some(*messages)),
            ScenarioSpec::Send => (None, None, None, None),
        };
        let memory = spec.server_pid.map(|pid| {
            let per_conn = match (outcome.rss_before, outcome.rss_after) {
                (Some(b), Some(a)) if c.open_at_end > 0 => {
                    Some((a as f64 - b as f64) / c.open_at_end as f64)
                }
                _ => None,
            };
            Memory {
                server_pid: pid,
                rss_before: outcome.rss_before,
                rss_after: outcome.rss_after,
                bytes_per_connection: per_conn,
            }
        });
        let timeline = stats
            .timeline
            .iter()
            .enumerate()
            .map(|(t, b)| Point {
                t: t as u64,
                sent: b.sent,
                received: b.received,
                opened: b.opened,
                failed: b.failed,
                closed: b.closed,
                server_closed: b.server_closed,
                open: b.open,
                latency_us: b.latency.summary(),
            })
            .collect();
        let generator_saturated = stats.threads.iter().any(|t| t.saturated_secs > 0);
        let mut report = Report {
            scenario: spec.scenario.name().to_string(),
            url: spec.url.clone(),
            urls: spec.urls.clone(),
            settings: Settings {
                connections: spec.connections,
                threads: spec.threads,
                procs: spec.procs,
                duration_s: spec.plan.duration_ns as f64 / 1e9,
                warmup_s: spec.plan.warmup_ns as f64 / 1e9,
                size: spec.size,
                payload: spec.payload,
                compression: spec.engine.deflate,
                sources: spec.engine.sources.iter().map(|a| a.to_string()).collect(),
                window,
                interval_ms,
                rate,
                messages,
                template: spec.pattern.is_some(),
            },
            connections: Connections {
                attempted: c.attempted,
                opened: c.opened,
                failed: c.failed,
                failures: stats.failures.clone(),
                open_at_end: c.open_at_end,
                closed_by_server: c.closed_by_server,
                closed_by_generator: c.closed_by_generator,
            },
            messages: Messages {
                sent: c.sent,
                received: c.received,
                lost: c.lost,
                in_flight: c.in_flight,
                skipped: c.skipped,
                unstamped: c.unstamped,
                unexpected: c.unexpected,
                out_of_order: c.out_of_order,
                accounted,
            },
            throughput: Throughput {
                window_s,
                msgs_per_sec,
                sent_per_sec: per_sec(c.sent_measured),
                mb_per_sec: msgs_per_sec * spec.size as f64 / 1e6,
                connects_per_sec: per_sec(opened_in_window),
                cycles_per_sec: per_sec(stats.cycle.count()),
            },
            latency_us: stats.latency.summary(),
            connect_us: stats.connect.summary(),
            handshake_us: stats.handshake.summary(),
            cycle_us: stats.cycle.summary(),
            broadcast: is_broadcast.then_some(BroadcastFigures {
                published: c.published,
                subscribers: c.subscribers,
                expected: c.expected,
                delivered: c.delivered,
                missing: c.missing,
                duplicates: c.duplicates,
                sender_echoes: c.sender_echoes,
                last_delivery_us: last_delivery_summary(&stats.last_delivery),
                nodes: node_figures(&spec.urls, &stats.nodes, c.published),
            }),
            memory,
            memory_timeline: outcome.rss_samples.clone(),
            timeline,
            generator: stats.threads.clone(),
            generator_saturated,
            warnings: outcome.warnings.clone(),
            counters: c.clone(),
            verdict: Verdict::default(),
        };
        report.warnings.extend(warnings(&report, spec));
        report
    }

    /// Tests `thresholds` and the run's health into [`Report::verdict`].
    pub fn judge(&mut self, thresholds: &[Threshold]) {
        self.verdict = Verdict::judge(self, thresholds);
    }

    /// Writes the JSON document.
    ///
    /// # Errors
    /// The IO error when the file cannot be written.
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, json + "\n")
    }

    /// The final table (warnings are not in it: see [`Report::warnings`], printed on
    /// stderr by the binary).
    pub fn table(&self) -> String {
        let mut t = String::new();
        let s = &self.settings;
        let _ = writeln!(t, "wsloop-loadtest {}  {}", self.scenario, self.urls.join(" "));
        let mut line = format!(
            "  {} connection{} · {} thread{}",
            group(s.connections as u64),
            plural(s.connections as u64),
            s.threads,
            plural(s.threads as u64)
        );
        if s.procs > 1 {
            let _ = write!(line, " × {} processes", s.procs);
        }
        if let Some(w) = s.window {
            let _ = write!(line, " · window {w}");
        }
        if let Some(i) = s.interval_ms {
            let _ = write!(line, " · every {i} ms");
        }
        if let Some(r) = s.rate {
            let unit = match self.scenario.as_str() {
                "broadcast" => "msg/s",
                "rate" => "msg/s overall",
                _ => "conn/s",
            };
            if r > 0.0 {
                let r = if r.fract() == 0.0 && r < 1e15 { group(r as u64) } else { r.to_string() };
                let _ = write!(line, " · {r} {unit}");
            }
        }
        if !matches!(self.scenario.as_str(), "connect" | "hold") {
            let kind = match s.payload {
                PayloadKind::Binary => "binary",
                PayloadKind::Text => "text",
                PayloadKind::Json => "json",
            };
            let from = if s.template { " from a template" } else { "" };
            let _ = write!(line, " · {} B {kind}{from}", s.size);
        }
        if self.scenario != "connect" {
            let _ = write!(line, " · {:.1} s", self.throughput.window_s);
            if s.warmup_s > 0.0 {
                let _ = write!(line, " (+{:.1} s warmup)", s.warmup_s);
            }
        }
        let _ = writeln!(t, "{line}\n");

        let c = &self.connections;
        let mut conn = format!(
            "{} opened of {} · {} failed",
            group(c.opened),
            group(c.attempted),
            group(c.failed)
        );
        let causes = c.failures.nonzero();
        if !causes.is_empty() {
            let list: Vec<String> = causes.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let _ = write!(conn, " ({})", list.join(", "));
        }
        let _ = write!(
            conn,
            " · {} open at end · {} closed by server",
            group(c.open_at_end),
            group(c.closed_by_server)
        );
        row(&mut t, "connections", &conn);

        let k = &self.counters;
        if k.session_sent > 0 || k.session_replies > 0 {
            row(
                &mut t,
                "session",
                &format!(
                    "{} --on-open message{} sent · {} repl{} before the first measured message",
                    group(k.session_sent),
                    plural(k.session_sent),
                    group(k.session_replies),
                    if k.session_replies == 1 { "y" } else { "ies" }
                ),
            );
        }
        if k.compressed_sent > 0 || k.compressed_received > 0 {
            row(
                &mut t,
                "compression",
                &format!(
                    "{} message{} sent deflated · {} received deflated",
                    group(k.compressed_sent),
                    plural(k.compressed_sent),
                    group(k.compressed_received)
                ),
            );
        }
        let m = &self.messages;
        match self.scenario.as_str() {
            "echo" | "rate" | "churn" => {
                row(
                    &mut t,
                    "messages",
                    &format!(
                        "sent {} = received {} + lost {} + in flight {}  {}",
                        group(m.sent),
                        group(m.received),
                        group(m.lost),
                        group(m.in_flight),
                        if m.accounted { "(all accounted for)" } else { "(MISMATCH)" }
                    ),
                );
            }
            "send" => row(&mut t, "messages", &format!("sent {}", group(m.sent))),
            _ => {}
        }
        if let Some(b) = &self.broadcast {
            row(
                &mut t,
                "broadcast",
                &format!(
                    "published {} to {} subscribers: expected {} = delivered {} + missing {} · duplicates {}",
                    group(b.published),
                    group(b.subscribers),
                    group(b.expected),
                    group(b.delivered),
                    group(b.missing),
                    group(b.duplicates)
                ),
            );
        }
        for (i, n) in self.broadcast.iter().flat_map(|b| &b.nodes).enumerate() {
            let nodes = self.broadcast.as_ref().map_or(0, |b| b.nodes.len());
            if nodes > 1 {
                row(
                    &mut t,
                    &format!("  node {i}"),
                    &format!(
                        "{} subscribers: expected {} = delivered {} + missing {} · duplicates {}  ({})",
                        group(n.subscribers),
                        group(n.expected),
                        group(n.delivered),
                        group(n.missing),
                        group(n.duplicates),
                        n.url
                    ),
                );
            }
        }
        if let Some(b) = self.broadcast.as_ref().filter(|b| b.last_delivery_us.count > 0) {
            row(&mut t, "to last subscriber", &percentiles(&b.last_delivery_us));
        }
        let tp = &self.throughput;
        match self.scenario.as_str() {
            "echo" | "rate" | "broadcast" => row(
                &mut t,
                "throughput",
                &format!(
                    "{} msg/s · {:.2} MB/s{}",
                    group(tp.msgs_per_sec.round() as u64),
                    tp.mb_per_sec,
                    self.while_the_server_was_up()
                ),
            ),
            "send" => row(
                &mut t,
                "throughput",
                &format!(
                    "{} msg/s sent · {:.2} MB/s",
                    group(tp.sent_per_sec.round() as u64),
                    tp.sent_per_sec * s.size as f64 / 1e6
                ),
            ),
            "connect" => row(
                &mut t,
                "throughput",
                &format!("{} connections/s", group(tp.connects_per_sec.round() as u64)),
            ),
            "churn" => row(
                &mut t,
                "throughput",
                &format!(
                    "{} cycles/s · {} connections/s",
                    group(tp.cycles_per_sec.round() as u64),
                    group(tp.connects_per_sec.round() as u64)
                ),
            ),
            _ => {}
        }
        if self.latency_us.count > 0 {
            let label = if self.scenario == "broadcast" { "delivery" } else { "round trip" };
            row(&mut t, label, &percentiles(&self.latency_us));
        }
        if self.handshake_us.count > 0 {
            row(&mut t, "handshake", &percentiles(&self.handshake_us));
        }
        if self.scenario == "connect" && self.connect_us.count > 0 {
            row(&mut t, "tcp connect", &percentiles(&self.connect_us));
        }
        if self.cycle_us.count > 0 {
            row(&mut t, "cycle", &percentiles(&self.cycle_us));
        }
        if let Some(mem) = &self.memory {
            let text = match (mem.rss_before, mem.rss_after, mem.bytes_per_connection) {
                (Some(b), Some(a), Some(per)) => format!(
                    "server pid {}: RSS {:.1} MiB → {:.1} MiB · {} bytes per connection",
                    mem.server_pid,
                    b as f64 / 1048576.0,
                    a as f64 / 1048576.0,
                    group(per.max(0.0).round() as u64)
                ),
                _ => format!("server pid {}: RSS not available", mem.server_pid),
            };
            row(&mut t, "memory", &text);
        }
        let busiest = self.generator.iter().map(|g| g.busy).fold(0.0f64, f64::max);
        let saturated: u64 = self.generator.iter().map(|g| g.saturated_secs).sum();
        let observed: u64 = self.generator.iter().map(|g| g.observed_secs).sum();
        row(
            &mut t,
            "generator",
            &format!(
                "{} thread{} · busiest {:.0}% busy · saturated {saturated} of {observed} thread-seconds",
                self.generator.len(),
                plural(self.generator.len() as u64),
                busiest * 100.0
            ),
        );
        t
    }
}

impl Report {
    /// When the server closed every connection during the window, the rate over the
    /// seconds up to then: the window's rate averages in the seconds without a server.
    fn while_the_server_was_up(&self) -> String {
        let c = &self.connections;
        if c.opened == 0 || c.closed_by_server < c.opened {
            return String::new();
        }
        let Some(gone) = self.timeline.iter().position(|p| p.server_closed > 0) else {
            return String::new();
        };
        let secs = gone as u64 + 1;
        let received: u64 = self.timeline[..=gone].iter().map(|p| p.received).sum();
        format!(
            " over the window; {} msg/s over its first {secs} s, until the server went away",
            group(received / secs)
        )
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn row(t: &mut String, label: &str, text: &str) {
    let _ = writeln!(t, "{label:<12} {text}");
}

fn us(v: f64) -> String {
    if v >= 1_000.0 { format!("{:.2} ms", v / 1000.0) } else { format!("{v:.1} µs") }
}

fn percentiles(s: &Summary) -> String {
    format!(
        "p50 {} · p90 {} · p99 {} · p99.9 {} · max {}  (n = {})",
        us(s.p50_us),
        us(s.p90_us),
        us(s.p99_us),
        us(s.p999_us),
        us(s.max_us),
        group(s.count)
    )
}

fn warnings(r: &Report, spec: &RunSpec) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(advice) = closed_loop_advice(r, spec) {
        // A closed loop with few messages in flight is bound by the round trip: the
        // thread's short waits for answers look busy, but more threads would not help.
        if r.generator.iter().any(|g| g.saturated_secs > 0 || g.busy >= 0.9) {
            w.push(advice);
        }
    } else {
        for g in &r.generator {
            if g.saturated_secs == 0 && g.busy >= 0.9 {
                w.push(format!(
                    "generator thread {}.{} was {:.0}% busy: close to its own limit; add --threads or --procs",
                    g.worker,
                    g.thread,
                    g.busy * 100.0
                ));
            }
            if g.saturated_secs > 0 {
                w.push(format!(
                    "generator thread {}.{} was saturated (never idle) for {} of {} s: the figures may \
                     show the generator's limit, not the server's; add --threads or --procs",
                    g.worker, g.thread, g.saturated_secs, g.observed_secs
                ));
            }
        }
    }
    let c = &r.counters;
    if c.failed > 0 {
        w.push(format!("{} connection(s) failed", group(c.failed)));
    }
    if c.skipped > 0 {
        w.push(format!(
            "{} send(s) skipped: a connection's queue was over --max-queue (the server is not reading)",
            group(c.skipped)
        ));
    }
    if c.unstamped > 0 {
        w.push(format!("{} message(s) arrived without a stamp of ours", group(c.unstamped)));
    }
    if c.out_of_order > 0 {
        w.push(format!("{} answer(s) out of order", group(c.out_of_order)));
    }
    if !r.messages.accounted {
        w.push("message accounting does not balance (a bug: please report)".into());
    }
    if spec.scenario.is_connection_scenario() || matches!(spec.scenario, ScenarioSpec::Hold { .. })
    {
        return w;
    }
    if c.opened > 0 && c.received_measured == 0 && !matches!(spec.scenario, ScenarioSpec::Send) {
        w.push("no answer was measured: does the server echo (or fan out) messages?".into());
    }
    w
}

/// Messages in flight per generator thread below which an echo run is called a small
/// closed loop: its pace is the round trip, whatever the generator's busy share.
pub const SMALL_CLOSED_LOOP: usize = 64;

/// For an `echo` run with few messages in flight per thread: what bounds it and how to
/// load the server harder (instead of the advice to add threads).
fn closed_loop_advice(r: &Report, spec: &RunSpec) -> Option<String> {
    let ScenarioSpec::Echo { window } = spec.scenario else {
        return None;
    };
    let in_flight = spec.connections.saturating_mul(window);
    let threads = (spec.threads * spec.procs).max(1);
    if in_flight / threads > SMALL_CLOSED_LOOP {
        return None;
    }
    let busiest = r.generator.iter().map(|g| g.busy).fold(0.0f64, f64::max);
    Some(format!(
        "closed loop with {in_flight} message{} in flight ({} connection{} × --window {window}): \
         each waits for its answer, so msg/s is set by the round trip (mean {:.1} µs), not by \
         the generator (its {:.0}% busy counts short waits for answers); to load the server \
         harder raise --window or --connections, more --threads will not help",
        plural(in_flight as u64),
        spec.connections,
        plural(spec.connections as u64),
        r.latency_us.mean_us,
        busiest * 100.0
    ))
}

/// Per-`--url` broadcast accounting: one entry per URL, subscribers or not.
fn node_figures(urls: &[String], nodes: &[NodeCounts], published: u64) -> Vec<NodeFigures> {
    urls.iter()
        .enumerate()
        .map(|(i, url)| {
            let n = nodes.get(i).cloned().unwrap_or_default();
            let expected = published * n.subscribers;
            NodeFigures {
                url: url.clone(),
                subscribers: n.subscribers,
                expected,
                delivered: n.delivered,
                missing: expected.saturating_sub(n.delivered),
                duplicates: n.duplicates,
            }
        })
        .collect()
}

/// Percentiles of the per-message "last delivery" latencies (messages nobody got are left
/// out: they are counted as missing).
fn last_delivery_summary(last: &[u64]) -> Summary {
    let mut hist = crate::stats::Hist::precise();
    for &ns in last.iter().filter(|&&ns| ns > 0) {
        hist.record(ns);
    }
    hist.summary()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Action, Cli};
    use clap::Parser;

    fn spec(args: &[&str]) -> RunSpec {
        let mut v = vec!["wsloop-loadtest"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).expect("clap accepts").command.into_action() {
            Ok(Action::Run(spec, _)) => *spec,
            _ => panic!("not a run"),
        }
    }

    fn busy_report(spec: &RunSpec) -> Report {
        let mut outcome = Outcome::default();
        outcome.stats.threads.push(ThreadLoad {
            worker: 0,
            thread: 0,
            busy: 0.95,
            saturated_secs: 0,
            observed_secs: 5,
        });
        Report::build(spec, &outcome)
    }

    #[test]
    fn a_small_closed_loop_is_not_told_to_add_threads() {
        let r = busy_report(&spec(&["echo", "-c", "10", "-w", "1"]));
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(r.warnings[0].starts_with("closed loop with 10 messages in flight"));
        assert!(r.warnings[0].contains("raise --window or --connections"));
        let r = busy_report(&spec(&["echo", "-c", "100", "-w", "16"]));
        assert!(r.warnings[0].contains("add --threads or --procs"), "{:?}", r.warnings);
        let r = busy_report(&spec(&["rate", "-c", "10"]));
        assert!(r.warnings[0].contains("add --threads or --procs"), "{:?}", r.warnings);
    }
}

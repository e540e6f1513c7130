//! The suite's Markdown: results per server, each subject's ratio to every other server,
//! what was skipped and why, how to read the figures, and every run's details.

use std::fmt::Write as _;

use super::measure::{Measured, Scenario};
use super::{Meta, Results, RunOutcome};

/// `32` → `32 B`, `1024` → `1 KiB`.
pub fn size_label(n: usize) -> String {
    if n >= 1024 && n.is_multiple_of(1024) { format!("{} KiB", n / 1024) } else { format!("{n} B") }
}

fn rate(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.2} M", v / 1e6))
}

fn int(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| crate::progress::group(v.max(0.0).round() as u64))
}

/// A ratio with three significant digits or so.
fn factor(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.1}")
    } else if r >= 0.1 {
        format!("{r:.2}")
    } else {
        format!("{r:.3}")
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{}×", factor(a / b)),
        _ => "–".into(),
    }
}

/// With two rounds or more that both servers measured: the median of the per-round ratios,
/// and in brackets the lowest and highest of them.
fn ratio_of_rounds(mut per_round: Vec<f64>) -> Option<String> {
    if per_round.len() < 2 {
        return None;
    }
    per_round.sort_by(f64::total_cmp);
    let n = per_round.len();
    let median = (per_round[(n - 1) / 2] + per_round[n / 2]) / 2.0;
    Some(format!("{}× ({}–{})", factor(median), factor(per_round[0]), factor(per_round[n - 1])))
}

/// The whole Markdown document; its two charts are `{charts}throughput.svg` and
/// `{charts}latency.svg`, beside it.
pub fn render(r: &Results, charts: &str) -> String {
    let mut t = String::new();
    header(&mut t, r);
    results(&mut t, r);
    ratios(&mut t, r);
    skipped(&mut t, r);
    how_to_read(&mut t, r, charts);
    details(&mut t, r);
    t
}

fn header(t: &mut String, r: &Results) {
    let (m, meta) = (&r.matrix, &r.meta);
    let (s, c) = (&m.settings, &m.scenarios);
    let _ = writeln!(t, "# wsloop benchmarks\n");
    let _ = writeln!(
        t,
        "Printed by `wsloop-loadtest suite`; rerun it rather than edit these figures.\n"
    );
    let Meta { date, machine, command, rev, load_before, load_after, elapsed_s, out_dir } = meta;
    let _ = writeln!(t, "- **date**: {date}");
    let _ = writeln!(
        t,
        "- **machine**: {machine}; load average {load_before} before the run, {load_after} after"
    );
    let _ = writeln!(t, "- **command**: `{command}` (wsloop at {rev}), {elapsed_s:.0} s in all");
    let sizes: Vec<String> = c.echo_sizes.iter().map(|&n| size_label(n)).collect();
    let _ = writeln!(
        t,
        "- **setup**: each server pinned to core {} (`taskset -c {}`), `wsloop-loadtest` pinned to core {}, \
         a fresh server process per scenario; {}, each running every scenario on every server in turn, \
         in reverse server order in even rounds (figures: the median round's, by msg/s for echo and by p50 for latency); echo ({}): {} connections × {} binary messages in flight, \
         {} s after {} s warmup; latency: `rate -c {} -i {}` ({} msg/s, 32 B), {} s after {} s warmup; \
         idle: `hold -c {} -d {} --server-pid PID`",
        s.server_core,
        s.server_core,
        s.client_core,
        if s.rounds == 1 { "1 round".to_string() } else { format!("{} rounds", s.rounds) },
        sizes.join(", "),
        c.echo_connections,
        c.echo_window,
        s.duration_s,
        s.warmup_s,
        c.rate_connections,
        c.rate_interval_ms,
        crate::progress::group(r.latency_rate().round() as u64),
        s.duration_s,
        s.warmup_s,
        c.hold_connections,
        s.hold_s
    );
    let _ = writeln!(
        t,
        "- **raw results**: `{out_dir}/` (every report, histogram, log; charts below)\n"
    );
}

fn results(t: &mut String, r: &Results) {
    let sizes = &r.matrix.scenarios.echo_sizes;
    let _ = writeln!(t, "## Results\n");
    let mut head = String::from("| server |");
    for &n in sizes {
        let _ = write!(head, " echo {} msg/s |", size_label(n));
    }
    for &n in sizes {
        let _ = write!(head, " server CPU ns/msg {} (user + sys) |", size_label(n));
    }
    let _ = write!(
        head,
        " p50 / p99 µs at {} msg/s | idle bytes/conn | generator busy |",
        crate::progress::group(r.latency_rate().round() as u64)
    );
    let _ = writeln!(t, "{head}");
    let cols = 2 * sizes.len() + 3;
    let _ = writeln!(t, "|---|{}", "--:|".repeat(cols));
    for sv in &r.matrix.servers {
        if let Some(why) = r.skipped_reason(&sv.key) {
            let _ = writeln!(t, "| {} | skipped: {why} |{}", sv.label, " |".repeat(cols - 1));
            continue;
        }
        let mut row = format!("| {} |", sv.label);
        for &n in sizes {
            let _ = write!(
                row,
                " {} |",
                cell(r.run(&sv.key, Scenario::Echo(n)), |m| rate(Some(m.msgs_per_sec())))
            );
        }
        for &n in sizes {
            let c = cell(r.run(&sv.key, Scenario::Echo(n)), |m| match m.cpu_split() {
                Some((u, s)) => format!("{} + {}", int(Some(u)), int(Some(s))),
                None => "–".into(),
            });
            let _ = write!(row, " {c} |");
        }
        let lat = cell(r.run(&sv.key, Scenario::Latency), |m| {
            format!(
                "{} / {}",
                int(Some(m.report.latency_us.p50_us)),
                int(Some(m.report.latency_us.p99_us))
            )
        });
        let idle = cell(r.run(&sv.key, Scenario::Idle), |m| {
            int(m.report.memory.as_ref().and_then(|mem| mem.bytes_per_connection))
        });
        let busy: Vec<String> = sizes
            .iter()
            .map(|&n| Scenario::Echo(n))
            .chain([Scenario::Latency])
            .map(|s| cell(r.run(&sv.key, s), |m| m.busy_cell()))
            .collect();
        let _ = writeln!(t, "{row} {lat} | {idle} | {} |", busy.join(" / "));
    }
    let _ = writeln!(t);
}

fn cell(run: Option<&RunOutcome>, f: impl Fn(&super::measure::Measured) -> String) -> String {
    match run.map(|o| &o.result) {
        None => "–".into(),
        Some(Ok(m)) => f(m),
        Some(Err(_)) => "failed".into(),
    }
}

fn ratios(t: &mut String, r: &Results) {
    let sizes = &r.matrix.scenarios.echo_sizes;
    let subjects: Vec<_> = r.matrix.servers.iter().filter(|s| s.subject).collect();
    let others: Vec<_> = r.matrix.servers.iter().filter(|s| !s.subject).collect();
    if subjects.is_empty() || others.is_empty() {
        return;
    }
    let _ = writeln!(t, "## Each subject ÷ each peer\n");
    let _ = writeln!(t, "msg/s: higher is better. ns/msg, p50 and p99: lower is better.\n");
    let mut head = String::from("| subject | ÷ peer |");
    for &n in sizes {
        let _ = write!(head, " msg/s {} |", size_label(n));
    }
    for &n in sizes {
        let _ = write!(head, " ns/msg {} |", size_label(n));
    }
    let rate = crate::progress::group(r.latency_rate().round() as u64);
    let _ = writeln!(t, "{head} p50 at {rate} msg/s | p99 at {rate} msg/s |");
    let _ = writeln!(t, "|---|---|{}", "--:|".repeat(2 * sizes.len() + 2));
    for a in &subjects {
        for b in &others {
            if r.skipped_reason(&a.key).is_some() || r.skipped_reason(&b.key).is_some() {
                let blanks = " |".repeat(2 * sizes.len() + 1);
                let _ = writeln!(t, "| {} | {} | skipped |{blanks}", a.label, b.label);
                continue;
            }
            let mut row = format!("| {} | {} |", a.label, b.label);
            // With one round (or one both measured): the ratio of the two runs.
            let cell = |s: Scenario, f: &Figure| {
                ratio_of_rounds(per_round_ratios(r, (&a.key, &b.key), s, f)).unwrap_or_else(|| {
                    ratio(median_figure(r, &a.key, s, f), median_figure(r, &b.key, s, f))
                })
            };
            let msgs = |m: &Measured| Some(m.msgs_per_sec());
            let cpu = |m: &Measured| m.cpu_split().map(|(u, s)| u + s);
            let p50 = |m: &Measured| Some(m.report.latency_us.p50_us);
            let p99 = |m: &Measured| Some(m.report.latency_us.p99_us);
            for f in [&msgs as &Figure, &cpu] {
                for &n in sizes {
                    let _ = write!(row, " {} |", cell(Scenario::Echo(n), f));
                }
            }
            let (p50, p99) = (cell(Scenario::Latency, &p50), cell(Scenario::Latency, &p99));
            let _ = writeln!(t, "{row} {p50} | {p99} |");
        }
    }
    let _ = writeln!(t);
}

/// A figure of a run, when it has one.
type Figure = dyn Fn(&Measured) -> Option<f64>;

/// `f` of `key`'s median round of `s`.
fn median_figure(r: &Results, key: &str, s: Scenario, f: &Figure) -> Option<f64> {
    r.run(key, s).and_then(|o| o.result.as_ref().ok()).and_then(f)
}

/// `f` of `a` ÷ `f` of `b`, per round where both have it.
fn per_round_ratios(r: &Results, (a, b): (&str, &str), s: Scenario, f: &Figure) -> Vec<f64> {
    let theirs = r.rounds_of(b, s);
    r.rounds_of(a, s)
        .into_iter()
        .filter_map(|ours| {
            let peer = theirs.iter().find(|o| o.round == ours.round)?;
            let (x, y) = (f(ours.result.as_ref().ok()?)?, f(peer.result.as_ref().ok()?)?);
            (y > 0.0).then(|| x / y)
        })
        .collect()
}

fn skipped(t: &mut String, r: &Results) {
    if r.skipped.is_empty() {
        return;
    }
    let _ = writeln!(t, "## Skipped\n");
    for (key, why) in &r.skipped {
        let _ = writeln!(t, "- {key}: {why}");
    }
    let _ = writeln!(t);
}

fn how_to_read(t: &mut String, r: &Results, charts: &str) {
    let c = &r.matrix.scenarios;
    let _ = writeln!(t, "## How to read it\n");
    let _ = writeln!(
        t,
        "- **msg/s**: messages echoed per second in the measurement window (the report's \
         `throughput.msgs_per_sec`: answers to messages sent in the window)."
    );
    let _ = writeln!(
        t,
        "- **server CPU ns/msg (user + sys)**: the server process's `utime` and `stime` \
         (`/proc/PID/stat`, all threads, 100 ticks/s) over a window inside the generator's \
         measurement window (from 0.25 s after the server holds all {} connections plus the \
         warmup, to 0.05 s before the window ends), ÷ the messages echoed in it. User is the \
         server's own code; system is the kernel on its behalf (syscalls, TCP). It stays \
         valid when the generator is the limit: compare servers on it then.",
        c.echo_connections
    );
    let _ = writeln!(
        t,
        "- **p50 / p99**: round trip at {} connections × one message every {} ms, measured from \
         each message's intended send time (coordinated omission corrected).",
        crate::progress::group(c.rate_connections as u64),
        c.rate_interval_ms
    );
    let _ = writeln!(
        t,
        "- **idle bytes/conn**: growth of the server's RSS from before the {} connections opened \
         to while all were held, ÷ connections; user-space memory only.",
        crate::progress::group(c.hold_connections as u64)
    );
    let _ = writeln!(
        t,
        "- **generator busy** (per echo size, then latency): share of the window the generator's \
         thread was not idle in `poll`; \\* marks a run where it was saturated or over 90% busy \
         with enough messages in flight to be the limit: msg/s then shows the generator's limit, \
         not the server's. The per-run details give the generator's own CPU per echoed message \
         (user + system, over the server's CPU window) and the steal on its core: when it is \
         the limit, msg/s is about its busy share ÷ that cost, so a round where its cost rose \
         (other work on the host) is slower for reasons that are not the server's."
    );
    let _ = writeln!(
        t,
        "- **ratios**: the median of the per-round ratios (a round's subject ÷ the same round's \
         peer, measured less than a minute apart), and in brackets the lowest and highest of \
         them; with one round, the ratio of the two runs. The machine may run other work: differences inside that spread, or \
         under ~10–15% with one round, are noise. The per-run details show how busy the server's core was in each \
         CPU window (`/proc/stat`); \"others\" is the part the server did not use: other \
         processes, interrupts; \"steal\" is the part the hypervisor gave to other work \
         while this virtual core had some (a server's own CPU time may count it). A server at \
         well under 100% CPU while the generator is not busy either was starved by them, and \
         its msg/s and latency say more about the machine than about the server.\n"
    );
    let _ = writeln!(t, "![throughput per server and size]({charts}throughput.svg)\n");
    let _ = writeln!(
        t,
        "![latency distribution at the latency scenario's load]({charts}latency.svg)\n"
    );
}

fn details(t: &mut String, r: &Results) {
    let _ = writeln!(t, "## Per-run details\n\nIn the order they ran.\n");
    let (core, client_core) = (r.matrix.settings.server_core, r.matrix.settings.client_core);
    let _ = writeln!(
        t,
        "| server | round | scenario | msg/s | CPU window s | server CPU % | core {core} busy % (others; steal) \
         | user ns/msg | sys ns/msg | generator busy | generator ns/msg, user + sys (core {client_core} steal) | notes |"
    );
    let _ = writeln!(t, "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|---|");
    for o in &r.runs {
        let mut notes = o.notes.clone();
        let (msgs, win, pct, core_pct, user, sys, busy, generator) = match &o.result {
            Ok(m) => {
                let split = m.cpu_split();
                let core_pct = m.cpu.and_then(|c| {
                    let (busy, steal) = (c.core_busy_pct?, c.core_steal_pct.unwrap_or(0.0));
                    let others = (busy - c.percent()).max(0.0);
                    Some(format!("{busy:.0}% ({others:.0}%; {steal:.0}%)"))
                });
                (
                    if o.scenario == Scenario::Idle {
                        "–".into()
                    } else {
                        int(Some(m.msgs_per_sec()))
                    },
                    m.cpu.map_or("–".into(), |c| format!("{:.2}", c.secs)),
                    m.cpu.map_or("–".into(), |c| format!("{:.0}%", c.percent())),
                    core_pct.unwrap_or_else(|| "–".into()),
                    int(split.map(|s| s.0)),
                    int(split.map(|s| s.1)),
                    m.busy_cell(),
                    generator_cell(m, o.scenario),
                )
            }
            Err(e) => {
                notes.insert(0, format!("FAILED: {e}"));
                let dash = || "–".to_string();
                (dash(), dash(), dash(), dash(), dash(), dash(), dash(), dash())
            }
        };
        let notes = notes.join("; ").replace('|', "/");
        let _ = writeln!(
            t,
            "| {} | {} | {} | {msgs} | {win} | {pct} | {core_pct} | {user} | {sys} | {busy} | {generator} | {notes} |",
            o.server,
            o.round,
            o.scenario.key()
        );
    }
}

/// The generator's user + system ns per message, and the steal on its core; echo only (at
/// a fixed rate its CPU goes to pacing the sends, not to the messages).
fn generator_cell(m: &Measured, scenario: Scenario) -> String {
    let split = m.generator_split().filter(|_| matches!(scenario, Scenario::Echo(_)));
    let Some((user, sys)) = split else {
        return "–".into();
    };
    let steal = m.cpu.and_then(|c| c.generator_core_steal_pct);
    let steal = steal.map_or(String::new(), |s| format!(" ({s:.0}%)"));
    format!("{} + {}{steal}", int(Some(user)), int(Some(sys)))
}

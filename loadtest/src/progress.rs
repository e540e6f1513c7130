//! Progress while a run goes, on stderr: a live line (indicatif, about four refreshes a
//! second) when stderr is a terminal; otherwise one plain line per second, so a CI log or
//! a file shows the run advancing. `--quiet` turns both off. Percentiles appear only once
//! the measurement window has samples.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::clock::now_ns;
use crate::shared::ProgressSnapshot;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Nothing (`--quiet`).
    Off,
    /// A live line redrawn in place (stderr is a terminal).
    Live,
    /// One plain line per second (stderr is a file or a pipe).
    Lines,
}

impl Mode {
    /// The mode for this process: [`Mode::Off`] unless `enabled`, then by whether stderr
    /// is a terminal.
    pub fn detect(enabled: bool) -> Mode {
        if !enabled {
            Mode::Off
        } else if std::io::stderr().is_terminal() {
            Mode::Live
        } else {
            Mode::Lines
        }
    }
}

/// Where a run is, for the progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// `--warmup`, ns.
    pub warmup_ns: u64,
    /// `--duration`, ns.
    pub duration_ns: u64,
}

/// The progress of one run.
pub struct Progress {
    mode: Mode,
    bar: Option<ProgressBar>,
    scenario: &'static str,
    connections: u64,
    timing: Timing,
    start: u64,
    last: Option<(u64, u64)>,
    rate: f64,
    next_line: u64,
}

const LINE_EVERY_NS: u64 = 1_000_000_000;

impl Progress {
    /// Progress for `scenario` over `connections`, shown as `mode` says.
    pub fn new(mode: Mode, scenario: &'static str, connections: u64, timing: Timing) -> Progress {
        let bar = (mode == Mode::Live).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
            let style = ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(250));
            bar.set_message(format!("{scenario}: opening connections"));
            bar
        });
        Progress {
            mode,
            bar,
            scenario,
            connections,
            timing,
            start: 0,
            last: None,
            rate: 0.0,
            next_line: 0,
        }
    }

    /// Progress that shows nothing.
    pub fn hidden() -> Progress {
        Progress::new(Mode::Off, "", 0, Timing { warmup_ns: 0, duration_ns: 0 })
    }

    /// The common start time is set.
    pub fn started(&mut self, start_ns: u64) {
        self.start = start_ns;
    }

    /// New counters.
    pub fn update(&mut self, snap: ProgressSnapshot) {
        self.update_at(now_ns(), snap);
    }

    fn update_at(&mut self, now: u64, snap: ProgressSnapshot) {
        let min_gap =
            if self.mode == Mode::Lines { LINE_EVERY_NS - 50_000_000 } else { 200_000_000 };
        match self.last {
            Some((t, received)) if now.saturating_sub(t) >= min_gap => {
                let dt = now - t;
                self.rate = snap.received.saturating_sub(received) as f64 * 1e9 / dt as f64;
                self.last = Some((now, snap.received));
            }
            Some(_) => {}
            None => self.last = Some((now, snap.received)),
        }
        match self.mode {
            Mode::Off => {}
            Mode::Live => {
                let msg = self.line(now, snap);
                if let Some(bar) = &self.bar {
                    bar.set_message(msg);
                }
            }
            Mode::Lines if now >= self.next_line => {
                let line = self.line(now, snap);
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{line}");
                let _ = err.flush();
                self.next_line = now + LINE_EVERY_NS;
            }
            Mode::Lines => {}
        }
    }

    /// The progress text at `now`.
    fn line(&self, now: u64, snap: ProgressSnapshot) -> String {
        let t = &self.timing;
        let stage = if self.start == 0 || now < self.start {
            "opening".to_string()
        } else {
            let run = now - self.start;
            let secs = |ns: u64| ns as f64 / 1e9;
            if run < t.warmup_ns {
                format!("warmup {:.1}/{:.1} s", secs(run), secs(t.warmup_ns))
            } else if run - t.warmup_ns <= t.duration_ns {
                format!("{:.1}/{:.1} s", secs(run - t.warmup_ns), secs(t.duration_ns))
            } else {
                "finishing".to_string()
            }
        };
        let mut msg = format!(
            "{}  {stage}  conns {}/{}",
            self.scenario,
            group(snap.open),
            group(self.connections)
        );
        if snap.failed > 0 {
            msg.push_str(&format!(" ({} failed)", group(snap.failed)));
        }
        if snap.sent > 0 || snap.received > 0 {
            msg.push_str(&format!("  {} msg/s", group(self.rate.round() as u64)));
        }
        // A p99 of nothing is not 0 µs: none is shown until the window has samples.
        if snap.p99_ns > 0 {
            msg.push_str(&format!("  p99 {}", micros(snap.p99_ns)));
        }
        msg
    }

    /// Clears the line.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `1234567` → `1,234,567`.
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Nanoseconds as a short human duration.
pub fn micros(ns: u64) -> String {
    if ns >= 1_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else {
        format!("{:.1} µs", ns as f64 / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
        assert_eq!(micros(12_345), "12.3 µs");
        assert_eq!(micros(25_000_000), "25.00 ms");
    }

    #[test]
    fn lines_name_the_stage_and_show_no_percentile_without_samples() {
        let timing = Timing { warmup_ns: 1_000_000_000, duration_ns: 5_000_000_000 };
        let mut p = Progress::new(Mode::Off, "echo", 10, timing);
        let snap = ProgressSnapshot { open: 4, ..ProgressSnapshot::default() };
        assert_eq!(p.line(100, snap), "echo  opening  conns 4/10");
        p.started(1_000);
        let warm = ProgressSnapshot { open: 10, sent: 500, received: 490, ..snap };
        p.update_at(1_000, warm);
        let later = ProgressSnapshot { sent: 1500, received: 1490, ..warm };
        p.update_at(1_000_001_000, later);
        // Warmup traffic: a rate, but no percentile (nothing measured yet).
        assert_eq!(p.line(500_001_000, later), "echo  warmup 0.5/1.0 s  conns 10/10  1,000 msg/s");
        let measured = ProgressSnapshot { p99_ns: 42_000, failed: 1, ..later };
        assert_eq!(
            p.line(3_000_001_000, measured),
            "echo  2.0/5.0 s  conns 10/10 (1 failed)  1,000 msg/s  p99 42.0 µs"
        );
        assert_eq!(p.line(7_000_001_000, measured).split("  ").nth(1), Some("finishing"));
    }
}

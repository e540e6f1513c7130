//! The live progress line on stderr (indicatif), refreshed about four times a second and
//! hidden when stderr is not a terminal or `--quiet` is given.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::clock::now_ns;
use crate::shared::ProgressSnapshot;

/// The progress line of one run.
pub struct Progress {
    bar: Option<ProgressBar>,
    scenario: &'static str,
    connections: u64,
    start: u64,
    last: Option<(u64, u64)>,
    rate: f64,
}

impl Progress {
    /// A progress line for `scenario` over `connections`; drawn only if `enabled` and
    /// stderr is a terminal.
    pub fn new(enabled: bool, scenario: &'static str, connections: u64) -> Progress {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
            let style = ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(250));
            bar.set_message(format!("{scenario}: opening connections"));
            bar
        });
        Progress { bar, scenario, connections, start: 0, last: None, rate: 0.0 }
    }

    /// A progress line that draws nothing.
    pub fn hidden() -> Progress {
        Progress::new(false, "", 0)
    }

    /// The common start time is set.
    pub fn started(&mut self, start_ns: u64) {
        self.start = start_ns;
    }

    /// New counters.
    pub fn update(&mut self, snap: ProgressSnapshot) {
        let now = now_ns();
        if let Some((t, received)) = self.last {
            let dt = now.saturating_sub(t);
            if dt >= 200_000_000 {
                self.rate = snap.received.saturating_sub(received) as f64 * 1e9 / dt as f64;
                self.last = Some((now, snap.received));
            }
        } else {
            self.last = Some((now, snap.received));
        }
        let Some(bar) = &self.bar else {
            return;
        };
        let elapsed = if self.start == 0 || now < self.start {
            "opening".to_string()
        } else {
            format!("{:.1} s", (now - self.start) as f64 / 1e9)
        };
        let mut msg =
            format!("{}  {elapsed}  conns {}/{}", self.scenario, snap.open, self.connections);
        if snap.failed > 0 {
            msg.push_str(&format!(" ({} failed)", snap.failed));
        }
        if snap.sent > 0 || snap.received > 0 {
            msg.push_str(&format!(
                "  {} msg/s  p99 {}",
                group(self.rate as u64),
                micros(snap.p99_ns)
            ));
        }
        bar.set_message(msg);
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
}

//! Whether a run passed, and the process's exit code: what a CI job reads.
//!
//! With `--threshold`s, each one is tested and listed as passed or failed. Whatever the
//! thresholds, a run is also checked for health: no connection failed, none was closed by
//! the server, no message was lost or left unanswered, no broadcast delivery is missing.
//! A threshold on the same figure replaces its health check (`--threshold
//! 'connect_failures<5'` tolerates four failures).
//!
//! Exit codes: [`EXIT_PASS`], [`EXIT_UNHEALTHY`], [`EXIT_THRESHOLDS`]; 1 is a run that could
//! not be done, 2 a command line that cannot run.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::progress::group;
use crate::report::Report;
use crate::threshold::{Checked, Count, Figure, Threshold};

/// Every threshold held and the run was healthy.
pub const EXIT_PASS: u8 = 0;
/// No threshold failed, but connections failed, messages were lost, or the server went
/// away.
pub const EXIT_UNHEALTHY: u8 = 3;
/// At least one `--threshold` failed (k6's code).
pub const EXIT_THRESHOLDS: u8 = 99;

/// The outcome of a run's checks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Every `--threshold`, tested.
    pub thresholds: Vec<Checked>,
    /// What made the run unhealthy, one sentence each.
    pub problems: Vec<String>,
}

impl Verdict {
    /// Tests `thresholds` and the health of `report`.
    pub fn judge(report: &Report, thresholds: &[Threshold]) -> Verdict {
        let checked = thresholds.iter().map(|t| t.check(report)).collect();
        let covered = |f: Figure| thresholds.iter().any(|t| t.figure == f);
        Verdict { thresholds: checked, problems: problems(report, &covered) }
    }

    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        if self.thresholds.iter().any(|c| !c.passed) {
            EXIT_THRESHOLDS
        } else if !self.problems.is_empty() {
            EXIT_UNHEALTHY
        } else {
            EXIT_PASS
        }
    }

    /// The thresholds section of the summary (empty without thresholds).
    pub fn table(&self) -> String {
        let mut t = String::new();
        for c in &self.thresholds {
            let mark = if c.passed { "passed" } else { "FAILED" };
            let _ = writeln!(t, "threshold    {mark}  {:<24} (value: {})", c.threshold, c.shown);
        }
        t
    }

    /// The summary's last line: PASS, or FAIL with the exit code and why.
    pub fn last_line(&self) -> String {
        let code = self.exit_code();
        let failed: Vec<&str> =
            self.thresholds.iter().filter(|c| !c.passed).map(|c| c.threshold.as_str()).collect();
        let mut why: Vec<String> = Vec::new();
        if !failed.is_empty() {
            why.push(format!(
                "{} of {} threshold{} failed: {}",
                failed.len(),
                self.thresholds.len(),
                if self.thresholds.len() == 1 { "" } else { "s" },
                failed.join(", ")
            ));
        }
        why.extend(self.problems.iter().cloned());
        if code == EXIT_PASS {
            let n = self.thresholds.len();
            if n > 0 {
                format!("PASS: {n} threshold{} passed, run healthy", if n == 1 { "" } else { "s" })
            } else {
                "PASS: every connection opened and stayed open, every message accounted for".into()
            }
        } else {
            format!("FAIL (exit {code}): {}", why.join("; "))
        }
    }
}

fn problems(r: &Report, covered: &dyn Fn(Figure) -> bool) -> Vec<String> {
    let mut p = Vec::new();
    let c = &r.connections;
    let check = |count: Count| !covered(Figure::Count(count));
    if c.opened == 0 && c.attempted > 0 && check(Count::ConnectFailures) {
        p.push(format!("no connection opened ({} attempted{})", group(c.attempted), causes(r)));
    } else if c.failed > 0 && check(Count::ConnectFailures) {
        p.push(format!(
            "{} of {} connections failed{}",
            group(c.failed),
            group(c.attempted),
            causes(r)
        ));
    }
    // Churn's --connections caps those alive at once; elsewhere every one is tried.
    let planned = r.settings.connections as u64;
    if r.scenario != "churn" && c.attempted < planned && check(Count::ConnectFailures) {
        p.push(format!(
            "only {} of {} connections were attempted: the opening stage's time ran out \
             with handshakes or --on-open-wait replies pending",
            group(c.attempted),
            group(planned)
        ));
    }
    if c.closed_by_server > 0 && check(Count::ClosedByServer) {
        let when = r
            .timeline
            .iter()
            .position(|pt| pt.server_closed > 0)
            .map(|s| format!(", the first in second {} of the window", s + 1))
            .unwrap_or_default();
        if c.closed_by_server >= c.opened {
            p.push(format!(
                "the server went away: all {} open connections were closed by the server{when}",
                group(c.opened)
            ));
        } else {
            p.push(format!(
                "{} of {} connections were closed by the server{when}",
                group(c.closed_by_server),
                group(c.opened)
            ));
        }
    }
    let m = &r.messages;
    if m.lost > 0 && check(Count::Lost) {
        p.push(format!("{} messages lost on connections that died", group(m.lost)));
    }
    if m.in_flight > 0 && check(Count::InFlight) {
        p.push(format!("{} messages never answered", group(m.in_flight)));
    }
    if let Some(b) = &r.broadcast
        && b.missing > 0
        && check(Count::Missing)
    {
        p.push(format!("{} of {} deliveries missing", group(b.missing), group(b.expected)));
    }
    if !m.accounted {
        p.push("message accounting does not balance (a bug: please report)".into());
    }
    p
}

fn causes(r: &Report) -> String {
    let list: Vec<String> =
        r.connections.failures.nonzero().iter().map(|(k, n)| format!("{k} {n}")).collect();
    if list.is_empty() { String::new() } else { format!(": {}", list.join(", ")) }
}

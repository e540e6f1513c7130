//! `--threshold 'p99<2ms'`: a pass/fail condition on one figure of the summary, as k6 has
//! them, so a run can gate a CI job.
//!
//! A threshold is `FIGURE OP VALUE`: `OP` is one of `<`, `<=`, `>`, `>=`, `==`, `!=`;
//! `VALUE` is a number with the figure's unit. Latencies need a time unit (`ns`, `us`/`µs`,
//! `ms`, `s`) so `p99<2` cannot mean two things; rates and counts take an optional `k` or
//! `M`; `generator_busy` takes a fraction or a percentage. [`Figure::ALL`] lists the names.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::progress::group;
use crate::report::Report;
use crate::stats::Summary;

/// A figure of the report a threshold can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    /// A percentile (or min, mean, max) of one latency histogram.
    Latency(Hist, Stat),
    /// Answered (delivered) messages per second.
    MsgsPerSec,
    /// Sent messages per second.
    SentPerSec,
    /// Payload megabytes per second.
    MbPerSec,
    /// Handshakes completed per second.
    ConnectsPerSec,
    /// Churn cycles per second.
    CyclesPerSec,
    /// A count of the run.
    Count(Count),
    /// Server bytes per connection (`hold --server-pid`).
    BytesPerConn,
    /// Busiest generator thread's busy share (0..=1).
    GeneratorBusy,
}

/// Which latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hist {
    /// The scenario's headline latency: round trip, delivery, or (connect, hold, churn)
    /// the handshake.
    Main,
    /// Connect start → 101.
    Handshake,
    /// TCP connect.
    Connect,
    /// Churn cycle.
    Cycle,
}

/// Which statistic of a histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    /// Smallest.
    Min,
    /// Mean.
    Mean,
    /// Median.
    P50,
    /// 90th percentile.
    P90,
    /// 99th percentile.
    P99,
    /// 99.9th percentile.
    P999,
    /// 99.99th percentile.
    P9999,
    /// Largest.
    Max,
}

/// A count of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Connections that failed to open.
    ConnectFailures,
    /// Connections opened.
    Opened,
    /// Connections the server closed first.
    ClosedByServer,
    /// Messages sent.
    Sent,
    /// Messages answered or delivered.
    Received,
    /// Messages sent on connections that died unanswered.
    Lost,
    /// Messages unanswered when the run stopped waiting.
    InFlight,
    /// Sends skipped (queue over `--max-queue`).
    Skipped,
    /// Broadcast deliveries that never came.
    Missing,
    /// Broadcast deliveries that came twice.
    Duplicates,
    /// Answers out of sequence.
    OutOfOrder,
    /// Messages without our stamp.
    Unstamped,
}

const STATS: [(&str, Stat); 10] = [
    ("min", Stat::Min),
    ("mean", Stat::Mean),
    ("p50", Stat::P50),
    ("median", Stat::P50),
    ("p90", Stat::P90),
    ("p99", Stat::P99),
    ("p99.9", Stat::P999),
    ("p999", Stat::P999),
    ("p99.99", Stat::P9999),
    ("max", Stat::Max),
];

const HISTS: [(&str, Hist); 5] = [
    ("", Hist::Main),
    ("latency_", Hist::Main),
    ("handshake_", Hist::Handshake),
    ("connect_", Hist::Connect),
    ("cycle_", Hist::Cycle),
];

const OTHERS: [(&str, Figure); 22] = [
    ("msgs_per_s", Figure::MsgsPerSec),
    ("msgs_per_sec", Figure::MsgsPerSec),
    ("sent_per_s", Figure::SentPerSec),
    ("sent_per_sec", Figure::SentPerSec),
    ("mb_per_s", Figure::MbPerSec),
    ("connects_per_s", Figure::ConnectsPerSec),
    ("cycles_per_s", Figure::CyclesPerSec),
    ("connect_failures", Figure::Count(Count::ConnectFailures)),
    ("failed", Figure::Count(Count::ConnectFailures)),
    ("opened", Figure::Count(Count::Opened)),
    ("closed_by_server", Figure::Count(Count::ClosedByServer)),
    ("sent", Figure::Count(Count::Sent)),
    ("received", Figure::Count(Count::Received)),
    ("lost", Figure::Count(Count::Lost)),
    ("in_flight", Figure::Count(Count::InFlight)),
    ("skipped", Figure::Count(Count::Skipped)),
    ("missing", Figure::Count(Count::Missing)),
    ("duplicates", Figure::Count(Count::Duplicates)),
    ("out_of_order", Figure::Count(Count::OutOfOrder)),
    ("unstamped", Figure::Count(Count::Unstamped)),
    ("bytes_per_conn", Figure::BytesPerConn),
    ("generator_busy", Figure::GeneratorBusy),
];

impl Figure {
    /// Every accepted name, for help and error messages.
    pub fn names() -> String {
        let mut names: Vec<String> = STATS.iter().map(|(s, _)| s.to_string()).collect();
        names.push("handshake_p99 (and connect_, cycle_, latency_ prefixes)".into());
        names.extend(OTHERS.iter().map(|(s, _)| s.to_string()));
        names.join(", ")
    }

    /// The figure called `name`.
    pub fn parse(name: &str) -> Option<Figure> {
        if let Some((_, f)) = OTHERS.iter().find(|(n, _)| *n == name) {
            return Some(*f);
        }
        // Longest prefix first: "" matches everything.
        for (prefix, hist) in HISTS.iter().rev() {
            if let Some(rest) = name.strip_prefix(prefix)
                && let Some((_, stat)) = STATS.iter().find(|(n, _)| *n == rest)
            {
                return Some(Figure::Latency(*hist, *stat));
            }
        }
        None
    }

    fn unit(self) -> Unit {
        match self {
            Figure::Latency(..) => Unit::Micros,
            Figure::GeneratorBusy => Unit::Fraction,
            _ => Unit::Plain,
        }
    }

    /// The figure's value in `report` (latencies in µs); `None` when the run has none
    /// (no latency sample, no memory reading).
    pub fn read(self, r: &Report) -> Option<f64> {
        let m = &r.messages;
        let b = r.broadcast.as_ref();
        let v = match self {
            Figure::Latency(h, s) => return stat(hist(r, h), s),
            Figure::MsgsPerSec => r.throughput.msgs_per_sec,
            Figure::SentPerSec => r.throughput.sent_per_sec,
            Figure::MbPerSec => r.throughput.mb_per_sec,
            Figure::ConnectsPerSec => r.throughput.connects_per_sec,
            Figure::CyclesPerSec => r.throughput.cycles_per_sec,
            Figure::Count(c) => {
                (match c {
                    Count::ConnectFailures => r.connections.failed,
                    Count::Opened => r.connections.opened,
                    Count::ClosedByServer => r.connections.closed_by_server,
                    Count::Sent => m.sent,
                    Count::Received => m.received,
                    Count::Lost => m.lost,
                    Count::InFlight => m.in_flight,
                    Count::Skipped => m.skipped,
                    Count::Missing => b.map_or(0, |b| b.missing),
                    Count::Duplicates => b.map_or(0, |b| b.duplicates),
                    Count::OutOfOrder => m.out_of_order,
                    Count::Unstamped => m.unstamped,
                }) as f64
            }
            Figure::BytesPerConn => r.memory.as_ref()?.bytes_per_connection?,
            Figure::GeneratorBusy => r.generator.iter().map(|g| g.busy).fold(0.0, f64::max),
        };
        Some(v)
    }
}

fn hist(r: &Report, h: Hist) -> &Summary {
    match h {
        Hist::Main if matches!(r.scenario.as_str(), "connect" | "hold") => &r.handshake_us,
        Hist::Main => &r.latency_us,
        Hist::Handshake => &r.handshake_us,
        Hist::Connect => &r.connect_us,
        Hist::Cycle => &r.cycle_us,
    }
}

fn stat(s: &Summary, which: Stat) -> Option<f64> {
    if s.count == 0 {
        return None;
    }
    Some(match which {
        Stat::Min => s.min_us,
        Stat::Mean => s.mean_us,
        Stat::P50 => s.p50_us,
        Stat::P90 => s.p90_us,
        Stat::P99 => s.p99_us,
        Stat::P999 => s.p999_us,
        Stat::P9999 => s.p9999_us,
        Stat::Max => s.max_us,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Micros,
    Fraction,
    Plain,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
}

/// One `--threshold`.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// As written on the command line.
    pub text: String,
    /// The figure it tests.
    pub figure: Figure,
    /// The comparison.
    pub op: Op,
    /// The bound, in the figure's unit (µs for latencies, 0..=1 for generator_busy).
    pub bound: f64,
}

/// A `--threshold` that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThresholdError {
    /// No comparison operator.
    NoOperator(String),
    /// The figure name is not known.
    UnknownFigure(String),
    /// The value is not a number with a unit the figure takes.
    BadValue {
        /// The threshold as written.
        text: String,
        /// What the value must look like.
        expected: &'static str,
    },
}

impl fmt::Display for ThresholdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThresholdError::NoOperator(t) => {
                write!(f, "threshold `{t}`: no comparison (use <, <=, >, >=, == or !=)")
            }
            ThresholdError::UnknownFigure(n) => {
                write!(f, "threshold figure `{n}` is not known; figures: {}", Figure::names())
            }
            ThresholdError::BadValue { text, expected } => {
                write!(f, "threshold `{text}`: the value must be {expected}")
            }
        }
    }
}

impl std::error::Error for ThresholdError {}

const OPS: [(&str, Op); 6] =
    [("<=", Op::Le), (">=", Op::Ge), ("==", Op::Eq), ("!=", Op::Ne), ("<", Op::Lt), (">", Op::Gt)];

impl Threshold {
    /// Reads `p99<2ms`, `msgs_per_s>100k`, `connect_failures==0`...
    ///
    /// # Errors
    /// [`ThresholdError`] naming what is wrong.
    pub fn parse(text: &str) -> Result<Threshold, ThresholdError> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let (at, token, op) = OPS
            .iter()
            .filter_map(|(tok, op)| compact.find(tok).map(|at| (at, *tok, *op)))
            .min_by_key(|(at, tok, _)| (*at, usize::MAX - tok.len()))
            .ok_or_else(|| ThresholdError::NoOperator(text.to_string()))?;
        let name = &compact[..at];
        let value = &compact[at + token.len()..];
        let figure =
            Figure::parse(name).ok_or_else(|| ThresholdError::UnknownFigure(name.to_string()))?;
        let bound = parse_value(value, figure.unit()).ok_or(ThresholdError::BadValue {
            text: text.to_string(),
            expected: match figure.unit() {
                Unit::Micros => "a duration with its unit: 500us, 2ms, 1.5s",
                Unit::Fraction => "a fraction or a percentage: 0.9 or 90%",
                Unit::Plain => "a number, optionally with k or M: 0, 250, 100k, 1.5M",
            },
        })?;
        Ok(Threshold { text: compact, figure, op, bound })
    }

    /// Tests the threshold against `report`.
    pub fn check(&self, report: &Report) -> Checked {
        let value = self.figure.read(report);
        let passed = value.is_some_and(|v| self.op.holds(v, self.bound));
        let shown = match value {
            None => "none in this run".to_string(),
            Some(v) => match self.figure.unit() {
                Unit::Micros if v >= 1000.0 => format!("{:.2} ms", v / 1000.0),
                Unit::Micros => format!("{v:.1} µs"),
                Unit::Fraction => format!("{:.1}%", v * 100.0),
                Unit::Plain if (100.0..1e15).contains(&v) => group(v.round() as u64),
                Unit::Plain if v.fract() == 0.0 && v >= 0.0 => format!("{v:.0}"),
                Unit::Plain => format!("{v:.2}"),
            },
        };
        Checked { threshold: self.text.clone(), value, shown, passed }
    }
}

fn parse_value(v: &str, unit: Unit) -> Option<f64> {
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
        .unwrap_or(v.len());
    let (num, suffix) = v.split_at(split);
    let n: f64 = num.parse().ok().filter(|n: &f64| n.is_finite())?;
    let scale = match (unit, suffix) {
        (Unit::Micros, "ns") => 1e-3,
        (Unit::Micros, "us" | "µs") => 1.0,
        (Unit::Micros, "ms") => 1e3,
        (Unit::Micros, "s") => 1e6,
        (Unit::Fraction, "") => 1.0,
        (Unit::Fraction, "%") => 0.01,
        (Unit::Plain, "") => 1.0,
        (Unit::Plain, "k") => 1e3,
        (Unit::Plain, "M") => 1e6,
        _ => return None,
    };
    Some(n * scale)
}

/// A threshold's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checked {
    /// The threshold as given.
    pub threshold: String,
    /// The figure's value (µs for latencies); `None` when the run has no such figure.
    pub value: Option<f64>,
    /// The value as the summary shows it, with its unit.
    pub shown: String,
    /// Whether it held.
    pub passed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_k6_style_thresholds() {
        let t = Threshold::parse("p99<2ms").expect("valid");
        assert_eq!(t.figure, Figure::Latency(Hist::Main, Stat::P99));
        assert_eq!(t.op, Op::Lt);
        assert_eq!(t.bound, 2000.0);
        let t = Threshold::parse("msgs_per_s > 100k").expect("valid");
        assert_eq!((t.figure, t.op, t.bound), (Figure::MsgsPerSec, Op::Gt, 100_000.0));
        let t = Threshold::parse("connect_failures==0").expect("valid");
        assert_eq!(t.figure, Figure::Count(Count::ConnectFailures));
        assert_eq!(t.op, Op::Eq);
        let t = Threshold::parse("handshake_p99.9<=500us").expect("valid");
        assert_eq!(t.figure, Figure::Latency(Hist::Handshake, Stat::P999));
        assert_eq!(t.op, Op::Le);
        let t = Threshold::parse("generator_busy<90%").expect("valid");
        assert!((t.bound - 0.9).abs() < 1e-12);
        assert_eq!(Threshold::parse("lost!=1.5M").expect("valid").bound, 1_500_000.0);
    }

    #[test]
    fn refuses_what_is_ambiguous_or_unknown() {
        assert!(matches!(Threshold::parse("p99 2ms"), Err(ThresholdError::NoOperator(_))));
        assert!(matches!(Threshold::parse("p98<2ms"), Err(ThresholdError::UnknownFigure(_))));
        // A latency without its unit could be µs or ms: refused.
        assert!(matches!(Threshold::parse("p99<2"), Err(ThresholdError::BadValue { .. })));
        assert!(matches!(Threshold::parse("lost==0ms"), Err(ThresholdError::BadValue { .. })));
        assert!(matches!(Threshold::parse("lost==x"), Err(ThresholdError::BadValue { .. })));
        assert!(matches!(Threshold::parse("lost==inf"), Err(ThresholdError::BadValue { .. })));
    }
}

//! `--hgrm FILE`: the latency histogram as HdrHistogram's percentile distribution text
//! (`outputPercentileDistribution`, as wrk2 prints it), in milliseconds, ready for
//! HdrHistogram's plotter or for comparing runs with other tools.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// Reporting steps per halving of the distance to 100% (HdrHistogram's default).
const TICKS_PER_HALF_DISTANCE: u32 = 5;
/// Recorded nanoseconds per reported millisecond.
const NS_PER_MS: f64 = 1e6;

/// The percentile distribution of `h` (values recorded in ns), in milliseconds.
pub fn percentile_distribution(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let digits = usize::from(h.sigfig());
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / NS_PER_MS;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:>12.digits$} {q:>2.12} {total:>10} {:>14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{value:>12.digits$} {q:>2.12} {total:>10}");
            }
        }
    }
    let (mean, stdev, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (h.mean() / NS_PER_MS, h.stdev() / NS_PER_MS, h.max() as f64 / NS_PER_MS)
    };
    let sub_buckets = 1u64 << (2.0 * 10f64.powi(digits as i32)).log2().ceil() as u32;
    let _ = writeln!(out, "#[Mean    = {mean:>12.digits$}, StdDeviation   = {stdev:>12.digits$}]");
    let _ = writeln!(out, "#[Max     = {max:>12.digits$}, Total count    = {:>12}]", h.len());
    let _ = writeln!(out, "#[Buckets = {:>12}, SubBuckets     = {sub_buckets:>12}]", h.buckets());
    out
}

/// A percentile distribution text that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HgrmError {
    /// The 1-based line.
    pub line: usize,
}

impl std::fmt::Display for HgrmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "percentile distribution: line {} is not `value percentile count ...`", self.line)
    }
}

impl std::error::Error for HgrmError {}

/// Reads [`percentile_distribution`]'s text back: (percentile 0..=1, milliseconds) per
/// data line, in order.
///
/// # Errors
/// [`HgrmError`] naming the first data line that is not numbers.
pub fn parse_percentiles(text: &str) -> Result<Vec<(f64, f64)>, HgrmError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if i == 0 || t.is_empty() || t.starts_with('#') {
            continue;
        }
        let mut cols = t.split_whitespace();
        let value = cols.next().and_then(|v| v.parse::<f64>().ok());
        let q = cols.next().and_then(|v| v.parse::<f64>().ok());
        match (value, q) {
            (Some(v), Some(q)) if (0.0..=1.0).contains(&q) && v.is_finite() => out.push((q, v)),
            _ => return Err(HgrmError { line: i + 1 }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_hdrhistograms_layout() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 100_000_000_000, 3).expect("bounds");
        for us in 1..=1000u64 {
            h.record(us * 1000).expect("in range");
        }
        let text = percentile_distribution(&h);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "       Value     Percentile TotalCount 1/(1-Percentile)");
        assert_eq!(lines[1], "");
        // First line: the smallest value, 0th percentile, one value counted.
        assert_eq!(lines[2], "       0.001 0.000000000000          1           1.00");
        // Last data line: the largest value at 100%, every value counted, no last column.
        let last = lines.iter().rev().find(|l| !l.starts_with('#')).expect("data");
        let cols: Vec<&str> = last.split_whitespace().collect();
        assert_eq!(cols, ["1.000", "1.000000000000", "1000"]);
        assert!(text.contains("#[Max     =        1.000, Total count    =         1000]"));
        assert!(text.contains("SubBuckets     =         2048]"));
        // Cumulative counts never fall.
        let counts: Vec<u64> = lines[2..]
            .iter()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().nth(2).and_then(|c| c.parse().ok()).expect("count"))
            .collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]));
        assert!(
            percentile_distribution(&Histogram::<u64>::new(3).expect("h"))
                .contains("Total count    =            0")
        );
    }
}

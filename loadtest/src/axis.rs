//! Tick labels that never repeat: the precision of an axis's labels is chosen from the very
//! tick values plotters will draw (`k`/`M` units, as few decimals as keep them distinct).
//! Log-scale latency axes are drawn as linear axes over log10 of the value, so their ticks
//! are plotters' nice linear steps in log space (1.0, 1.6, 2.5, 4.0, 6.3, 10...).

use std::ops::Range;

use plotters::coord::ranged1d::{BoldPoints, Ranged};
use plotters::coord::types::RangedCoordf64;

/// Labels drawn on a y axis (the hint given to plotters, which may draw fewer).
pub const Y_LABELS: usize = 8;

/// A label formatter for a linear axis over `range` with `labels` ticks.
pub fn linear(range: Range<f64>, labels: usize) -> impl Fn(&f64) -> String {
    let ticks = key_points(range.clone(), labels);
    let top = range.end.abs().max(range.start.abs());
    let unit = if top >= 1e6 {
        (1e6, "M")
    } else if top >= 1e4 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let decimals = distinct_decimals(&ticks, |v, d| scaled(v, unit, d));
    move |v: &f64| scaled(*v, unit, decimals)
}

/// A label formatter for an axis over log10 of the values in `log_range`: ticks show
/// `10^v` with at least two significant digits (a tick at 10^3.2 reads 1.6k, not 2k).
pub fn log10(log_range: Range<f64>, labels: usize) -> impl Fn(&f64) -> String {
    let ticks = key_points(log_range, labels);
    let digits = (2..=6)
        .find(|&d| {
            let mut seen: Vec<String> =
                ticks.iter().map(|&v| significant(10f64.powf(v), d)).collect();
            let n = seen.len();
            seen.sort();
            seen.dedup();
            seen.len() == n
        })
        .unwrap_or(6);
    move |v: &f64| significant(10f64.powf(*v), digits)
}

/// `v` with `digits` significant digits, in k or M from 10,000 up.
fn significant(v: f64, digits: usize) -> String {
    let (x, suffix) = if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e4 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let magnitude = if x > 0.0 { x.abs().log10().floor() as i64 + 1 } else { 1 };
    let decimals = (digits as i64 - magnitude).max(0) as usize;
    format!("{x:.decimals$}{suffix}")
}

/// The tick values plotters draws for `range` with `labels` bold labels.
pub fn key_points(range: Range<f64>, labels: usize) -> Vec<f64> {
    let coord: RangedCoordf64 = range.into();
    coord.key_points(BoldPoints(labels))
}

fn scaled(v: f64, (div, suffix): (f64, &str), decimals: usize) -> String {
    let x = v / div;
    if x == 0.0 {
        return "0".into();
    }
    format!("{x:.decimals$}{suffix}")
}

/// The fewest decimals (up to 6) that give every tick its own label.
fn distinct_decimals(ticks: &[f64], label: impl Fn(f64, usize) -> String) -> usize {
    (0..=6)
        .find(|&d| {
            let mut seen: Vec<String> = ticks.iter().map(|&v| label(v, d)).collect();
            let n = seen.len();
            seen.sort();
            seen.dedup();
            seen.len() == n
        })
        .unwrap_or(6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(ticks: &[f64], f: &impl Fn(&f64) -> String) -> Vec<String> {
        ticks.iter().map(f).collect()
    }

    fn distinct(v: &[String]) -> bool {
        let mut s = v.to_vec();
        s.sort();
        s.dedup();
        s.len() == v.len()
    }

    #[test]
    fn linear_labels_are_distinct_for_any_range() {
        // The echo plot once showed "10k" twice: 10,000 and 10,500 both rounded to 10k.
        let f = linear(9_800.0..11_200.0, Y_LABELS);
        let ticks = key_points(9_800.0..11_200.0, Y_LABELS);
        let l = labels(&ticks, &f);
        assert!(distinct(&l), "{l:?}");
        assert!(l.iter().any(|s| s == "10.0k" || s == "10.00k"), "{l:?}");
        let mut hi = 0.7;
        while hi < 5e7 {
            for lo in [0.0, hi * 0.5, hi * 0.93] {
                let f = linear(lo..hi, Y_LABELS);
                let l = labels(&key_points(lo..hi, Y_LABELS), &f);
                assert!(distinct(&l), "{lo}..{hi}: {l:?}");
            }
            hi *= 1.37;
        }
        assert_eq!(linear(0.0..100.0, 5)(&0.0), "0");
    }

    #[test]
    fn log_labels_are_distinct_and_readable() {
        let range = 3.0f64..4.3;
        let f = log10(range.clone(), Y_LABELS);
        let l = labels(&key_points(range, Y_LABELS), &f);
        assert!(distinct(&l), "{l:?}");
        assert_eq!(l[..3], ["1000", "1585", "2512"], "{l:?}");
        let mut lo = -1.0;
        while lo < 8.0 {
            for span in [0.05, 0.3, 1.0, 2.5] {
                let r = lo..lo + span;
                let l = labels(&key_points(r.clone(), Y_LABELS), &log10(r.clone(), Y_LABELS));
                assert!(distinct(&l), "{r:?}: {l:?}");
            }
            lo += 0.37;
        }
    }
}

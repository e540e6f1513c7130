//! The suite's SVG charts: echo throughput per server and message size (grouped bars),
//! and the latency distribution of each server at the latency scenario's load.

use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::Results;
use super::measure::Scenario;
use super::table::size_label;
use crate::axis;
use crate::plot::{COLORS, PlotError, draw_err};

/// Draws `throughput.svg` and `latency.svg` into `dir`.
///
/// # Errors
/// [`PlotError`] when plotters cannot draw or write a file.
pub fn write(r: &Results, dir: &Path) -> Result<(), PlotError> {
    throughput(r, &dir.join("throughput.svg"))?;
    latency(r, &dir.join("latency.svg"))
}

/// The servers that ran, with their labels.
fn ran(r: &Results) -> Vec<(&str, &str)> {
    r.matrix
        .servers
        .iter()
        .filter(|s| r.skipped_reason(&s.key).is_none())
        .map(|s| (s.key.as_str(), s.label.as_str()))
        .collect()
}

fn throughput(r: &Results, path: &Path) -> Result<(), PlotError> {
    let servers = ran(r);
    let sizes = &r.matrix.scenarios.echo_sizes;
    let value = |key: &str, n: usize| {
        r.run(key, Scenario::Echo(n)).and_then(|o| o.result.as_ref().ok()).map(|m| m.msgs_per_sec())
    };
    let hi = servers
        .iter()
        .flat_map(|(k, _)| sizes.iter().filter_map(move |&n| value(k, n)))
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.15;
    let root = SVGBackend::new(path, (1100, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let n = servers.len().max(1) as i32;
    // `(0..k).into_segmented()` has k + 1 segments: one per server.
    let mut chart = ChartBuilder::on(&root)
        .caption("echo throughput per server and message size (one core each)", ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(48 + LABEL_LINE * 2)
        .y_label_area_size(80)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0.0..hi)
        .map_err(draw_err)?;
    let y_label = axis::linear(0.0..hi, axis::Y_LABELS);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("server")
        .y_desc("messages echoed per second")
        // Drawn below, a line per comma-separated part: on one line they run into each other.
        .x_label_formatter(&|_| String::new())
        .y_labels(axis::Y_LABELS)
        .y_label_formatter(&y_label)
        .axis_desc_style(("sans-serif", 14))
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(draw_err)?;
    let width = chart.plotting_area().dim_in_pixel().0 as f64 / f64::from(n);
    let bar = (width * 0.8 / sizes.len() as f64).max(1.0);
    for (j, &size) in sizes.iter().enumerate() {
        let color = COLORS[j % COLORS.len()];
        let left = (width * 0.1 + bar * j as f64) as u32;
        let right = (width - width * 0.1 - bar * (j + 1) as f64).max(0.0) as u32;
        let bars: Vec<Rectangle<(SegmentValue<i32>, f64)>> = servers
            .iter()
            .enumerate()
            .filter_map(|(i, (k, _))| {
                let v = value(k, size)?;
                let i = i as i32;
                let mut rect = Rectangle::new(
                    [(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), v)],
                    color.filled(),
                );
                rect.set_margin(0, 0, left, right);
                Some(rect)
            })
            .collect();
        chart
            .draw_series(bars)
            .map_err(draw_err)?
            .label(format!("echo {}", size_label(size)))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(draw_err)?;
    let style = TextStyle::from(("sans-serif", 12)).pos(Pos::new(HPos::Center, VPos::Top));
    for (i, (_, label)) in servers.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(SegmentValue::CenterOf(i as i32), 0.0));
        for (k, line) in label.split(", ").enumerate() {
            let y = y + 8 + LABEL_LINE * k as i32;
            root.draw(&Text::new(line, (x, y), style.clone())).map_err(draw_err)?;
        }
    }
    root.present().map_err(draw_err)
}

/// Pixels from one line of a server's label to the next, under the throughput bars.
const LABEL_LINE: i32 = 15;

/// x: log10(1 / (1 − percentile)), so p90, p99, p99.9 are evenly spaced.
fn nines(q: f64) -> f64 {
    (1.0 / (1.0 - q)).log10()
}

fn latency(r: &Results, path: &Path) -> Result<(), PlotError> {
    let servers = ran(r);
    let curves: Vec<(&str, Vec<(f64, f64)>)> = servers
        .iter()
        .filter_map(|(k, label)| {
            let m = r.run(k, Scenario::Latency)?.result.as_ref().ok()?;
            // The 100% line has no finite x; the max is the last point before it.
            let pts: Vec<(f64, f64)> = m
                .percentiles
                .iter()
                .filter(|(q, ms)| *q < 1.0 && *ms > 0.0)
                .map(|(q, ms)| (nines(*q), ms * 1000.0))
                .collect();
            (!pts.is_empty()).then_some((*label, pts))
        })
        .collect();
    let x_hi = curves.iter().flat_map(|(_, p)| p.iter().map(|(x, _)| *x)).fold(2.0f64, f64::max);
    let (lo, hi) = curves
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, us)| *us))
        .fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if hi <= 0.0 { (1.0, 10.0) } else { (lo * 0.8, hi * 1.25) };
    // Milliseconds once the top of the axis passes one.
    let (scale, unit) = if hi >= 1000.0 { (1000.0, "ms") } else { (1.0, "µs") };
    let y = (lo / scale).log10()..(hi / scale).log10();
    let root = SVGBackend::new(path, (1000, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "round-trip latency distribution at {} msg/s ({unit}, log scale)",
                crate::progress::group(r.latency_rate().round() as u64)
            ),
            ("sans-serif", 20),
        )
        .margin(16)
        .margin_right(48)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..x_hi.ceil(), y.clone())
        .map_err(draw_err)?;
    let y_label = axis::log10(y, axis::Y_LABELS);
    let x_label = |v: &f64| {
        let q = 100.0 * (1.0 - 10f64.powf(-v));
        let text = format!("{q:.4}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        format!("p{text}")
    };
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc(format!("round trip, {unit}"))
        .x_labels(x_hi.ceil() as usize + 1)
        .x_label_formatter(&x_label)
        .y_labels(axis::Y_LABELS)
        .y_label_formatter(&y_label)
        .axis_desc_style(("sans-serif", 14))
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(draw_err)?;
    for (i, (label, pts)) in curves.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|(x, us)| (*x, (us / scale).log10())),
                color.stroke_width(2),
            ))
            .map_err(draw_err)?
            .label(*label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(draw_err)?;
    root.present().map_err(draw_err)
}

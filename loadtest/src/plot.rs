//! `--plot FILE.svg`: latency percentiles (top) and throughput (bottom) over the
//! measurement window, one point per second, drawn with plotters' SVG backend.

use std::fmt;
use std::path::Path;

use plotters::prelude::*;

use crate::report::{Point, Report};

/// Why the plot could not be drawn.
#[derive(Debug)]
pub enum PlotError {
    /// plotters failed to draw or to write the file.
    Draw(String),
}

impl fmt::Display for PlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlotError::Draw(e) => write!(f, "cannot draw the plot: {e}"),
        }
    }
}

impl std::error::Error for PlotError {}

fn draw_err<E: std::fmt::Debug>(e: E) -> PlotError {
    PlotError::Draw(format!("{e:?}"))
}

const COLORS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
];

/// Draws `report`'s timeline to `path`.
///
/// # Errors
/// [`PlotError::Draw`] when plotters cannot draw or write the file.
pub fn write_svg(report: &Report, path: &Path) -> Result<(), PlotError> {
    let root = SVGBackend::new(path, (1000, 760)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let title = format!(
        "wsloop-loadtest {} — {} · {} connections",
        report.scenario, report.url, report.settings.connections
    );
    let root = root.titled(&title, ("sans-serif", 20)).map_err(draw_err)?;
    let (top, bottom) = root.split_vertically(400);
    let points = &report.timeline;
    let connection_scenario = matches!(report.scenario.as_str(), "connect" | "hold" | "churn");
    let what = if connection_scenario {
        "handshake latency"
    } else if report.scenario == "broadcast" {
        "delivery latency"
    } else {
        "round-trip latency"
    };
    // Without per-second latencies (hold: every handshake happened before the window),
    // draw the run's percentiles as flat lines so the panel still says something.
    let fallback = if connection_scenario { &report.handshake_us } else { &report.latency_us };
    let what = if points.iter().all(|p| p.latency_us.count == 0) && fallback.count > 0 {
        format!("{what}, all {} before the window", fallback.count)
    } else {
        what.to_string()
    };
    draw_latency(&top, points, &what, fallback)?;
    if connection_scenario {
        draw_counts(
            &bottom,
            points,
            "connections",
            &[
                ("open", &|p: &Point| p.open as f64),
                ("opened /s", &|p: &Point| p.opened as f64),
                ("failed /s", &|p: &Point| p.failed as f64),
            ],
        )?;
    } else {
        draw_counts(
            &bottom,
            points,
            "messages per second",
            &[("received", &|p: &Point| p.received as f64), ("sent", &|p: &Point| p.sent as f64)],
        )?;
    }
    root.present().map_err(draw_err)?;
    Ok(())
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn x_range(points: &[Point]) -> std::ops::Range<f64> {
    0.0..(points.len().max(1) as f64)
}

fn draw_latency(
    area: &Area<'_>,
    points: &[Point],
    what: &str,
    fallback: &crate::stats::Summary,
) -> Result<(), PlotError> {
    type Pick = fn(&Point) -> f64;
    let flat: Vec<Point>;
    let points = if points.iter().all(|p| p.latency_us.count == 0) && fallback.count > 0 {
        flat = (0..points.len().max(1))
            .map(|t| Point {
                t: t as u64,
                sent: 0,
                received: 0,
                opened: 0,
                failed: 0,
                closed: 0,
                server_closed: 0,
                open: 0,
                latency_us: *fallback,
            })
            .collect();
        &flat[..]
    } else {
        points
    };
    let series: [(&str, Pick); 5] = [
        ("p50", |p| p.latency_us.p50_us),
        ("p90", |p| p.latency_us.p90_us),
        ("p99", |p| p.latency_us.p99_us),
        ("p99.9", |p| p.latency_us.p999_us),
        ("max", |p| p.latency_us.max_us),
    ];
    let values = points
        .iter()
        .filter(|p| p.latency_us.count > 0)
        .flat_map(|p| series.iter().map(move |(_, f)| f(p)));
    let (lo, hi) = values.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if hi <= 0.0 { (1.0, 10.0) } else { ((lo * 0.8).max(0.1), hi * 1.25) };
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{what} (µs, log scale)"), ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range(points), (lo..hi).log_scale())
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("seconds into the measurement window")
        .y_desc("µs")
        .y_label_formatter(&|v| short(*v))
        .draw()
        .map_err(draw_err)?;
    for (i, (name, pick)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let data: Vec<(f64, f64)> = points
            .iter()
            .enumerate()
            .filter(|(_, p)| p.latency_us.count > 0)
            .map(|(t, p)| (t as f64 + 0.5, pick(p).max(lo)))
            .collect();
        chart
            .draw_series(LineSeries::new(data, color.stroke_width(2)))
            .map_err(draw_err)?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(draw_err)?;
    Ok(())
}

type Pick<'a> = &'a dyn Fn(&Point) -> f64;

fn draw_counts(
    area: &Area<'_>,
    points: &[Point],
    what: &str,
    series: &[(&str, Pick<'_>)],
) -> Result<(), PlotError> {
    let hi =
        points.iter().flat_map(|p| series.iter().map(move |(_, f)| f(p))).fold(0.0f64, f64::max);
    let hi = if hi <= 0.0 { 1.0 } else { hi * 1.15 };
    let mut chart = ChartBuilder::on(area)
        .caption(what, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range(points), 0.0..hi)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("seconds into the measurement window")
        .y_label_formatter(&|v| short(*v))
        .draw()
        .map_err(draw_err)?;
    for (i, (name, pick)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let data: Vec<(f64, f64)> =
            points.iter().enumerate().map(|(t, p)| (t as f64 + 0.5, pick(p))).collect();
        chart
            .draw_series(LineSeries::new(data, color.stroke_width(2)))
            .map_err(draw_err)?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(draw_err)?;
    Ok(())
}

fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

//! `--plot FILE.svg`: latency percentiles (top) and throughput (bottom) over the
//! measurement window, one point per second, drawn with plotters' SVG backend; for `hold`
//! with `--server-pid`, the server's memory over the whole run above them. Every panel
//! labels both axes; tick labels never repeat (see [`crate::axis`]).

use std::fmt;
use std::path::Path;

use plotters::prelude::*;

use plotters::coord::CoordTranslate;

use crate::axis;
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

/// A plotters error as a [`PlotError`].
pub fn draw_err<E: std::fmt::Debug>(e: E) -> PlotError {
    PlotError::Draw(format!("{e:?}"))
}

/// The series colours, in order: ten that can be told apart, so that each of the suite's
/// servers gets its own line in the latency chart.
pub const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Draws `report`'s timeline to `path`: latency percentiles, then messages or connections
/// per second; for `hold` with `--server-pid`, the server's memory over the whole run on
/// top.
///
/// # Errors
/// [`PlotError::Draw`] when plotters cannot draw or write the file.
pub fn write_svg(report: &Report, path: &Path) -> Result<(), PlotError> {
    let memory = !report.memory_timeline.is_empty();
    let height = if memory { 1120 } else { 760 };
    let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let title = format!(
        "wsloop-loadtest {} — {} · {} connections",
        report.scenario, report.url, report.settings.connections
    );
    let root = root.titled(&title, ("sans-serif", 20)).map_err(draw_err)?;
    let root = if memory {
        let (top, rest) = root.split_vertically(360);
        draw_memory(&top, report)?;
        rest
    } else {
        root
    };
    let (top, bottom) = root.split_vertically(380);
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
            "connections",
            &[
                ("open", &|p: &Point| p.open as f64),
                ("opened /s", &|p: &Point| p.opened as f64),
                ("failed /s", &|p: &Point| p.failed as f64),
            ],
        )?;
    } else {
        let (got, sent) = if report.scenario == "broadcast" {
            ("delivered", "published")
        } else {
            ("received", "sent")
        };
        draw_counts(
            &bottom,
            points,
            "messages per second",
            "messages / s",
            &[(got, &|p: &Point| p.received as f64), (sent, &|p: &Point| p.sent as f64)],
        )?;
    }
    root.present().map_err(draw_err)?;
    Ok(())
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

const X_WINDOW: &str = "seconds into the measurement window";

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
    // Milliseconds once the top of the axis passes one.
    let (scale, unit) = if hi >= 1000.0 { (1000.0, "ms") } else { (1.0, "µs") };
    let y = (lo / scale).log10()..(hi / scale).log10();
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{what} ({unit}, log scale)"), ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range(points), y.clone())
        .map_err(draw_err)?;
    let y_label = axis::log10(y, axis::Y_LABELS);
    chart
        .configure_mesh()
        .x_desc(X_WINDOW)
        .y_desc(format!("latency, {unit}"))
        .y_labels(axis::Y_LABELS)
        .y_label_formatter(&y_label)
        .axis_desc_style(("sans-serif", 14))
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(draw_err)?;
    for (i, (name, pick)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let data: Vec<(f64, f64)> = points
            .iter()
            .enumerate()
            .filter(|(_, p)| p.latency_us.count > 0)
            .map(|(t, p)| (t as f64 + 0.5, (pick(p).max(lo) / scale).log10()))
            .collect();
        chart
            .draw_series(LineSeries::new(data, color.stroke_width(2)))
            .map_err(draw_err)?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    legend(&mut chart)
}

type Pick<'a> = &'a dyn Fn(&Point) -> f64;

fn draw_counts(
    area: &Area<'_>,
    points: &[Point],
    what: &str,
    y_desc: &str,
    series: &[(&str, Pick<'_>)],
) -> Result<(), PlotError> {
    let hi =
        points.iter().flat_map(|p| series.iter().map(move |(_, f)| f(p))).fold(0.0f64, f64::max);
    let hi = if hi <= 0.0 { 1.0 } else { hi * 1.15 };
    let mut chart = ChartBuilder::on(area)
        .caption(what, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range(points), 0.0..hi)
        .map_err(draw_err)?;
    let y_label = axis::linear(0.0..hi, axis::Y_LABELS);
    chart
        .configure_mesh()
        .x_desc(X_WINDOW)
        .y_desc(y_desc)
        .y_labels(axis::Y_LABELS)
        .y_label_formatter(&y_label)
        .axis_desc_style(("sans-serif", 14))
        .label_style(("sans-serif", 12))
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
    legend(&mut chart)
}

/// The server's RSS (left axis) and the connections held (right axis) over the whole run,
/// from before the first connection opened.
fn draw_memory(area: &Area<'_>, report: &Report) -> Result<(), PlotError> {
    let samples = &report.memory_timeline;
    let mib = |b: u64| b as f64 / 1048576.0;
    let t_end = samples.last().map_or(1.0, |s| s.t_s).max(0.5);
    // The axis spans the readings (labelled), so the growth per connection is visible.
    let rss_lo = samples.iter().map(|s| mib(s.rss_bytes)).fold(f64::MAX, f64::min);
    let rss_top = samples.iter().map(|s| mib(s.rss_bytes)).fold(0.0f64, f64::max);
    let pad = ((rss_top - rss_lo) * 0.15).max(0.1);
    let (rss_lo, rss_hi) = ((rss_lo - pad).max(0.0), rss_top + pad);
    let open_hi = samples.iter().map(|s| s.open as f64).fold(0.0f64, f64::max).max(1.0) * 1.15;
    let caption = match report.memory.as_ref().and_then(|m| m.bytes_per_connection) {
        Some(per) => format!("server memory over the run · {per:.0} bytes per connection held"),
        None => "server memory over the run".to_string(),
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .right_y_label_area_size(70)
        .build_cartesian_2d(0.0..t_end, rss_lo..rss_hi)
        .map_err(draw_err)?
        .set_secondary_coord(0.0..t_end, 0.0..open_hi);
    let rss_label = axis::linear(rss_lo..rss_hi, axis::Y_LABELS);
    let open_label = axis::linear(0.0..open_hi, axis::Y_LABELS);
    chart
        .configure_mesh()
        .x_desc("seconds since the run began (connections opening included)")
        .y_desc("server RSS, MiB")
        .y_labels(axis::Y_LABELS)
        .y_label_formatter(&rss_label)
        .axis_desc_style(("sans-serif", 14))
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(draw_err)?;
    chart
        .configure_secondary_axes()
        .y_desc("connections open")
        .y_labels(axis::Y_LABELS)
        .y_label_formatter(&open_label)
        .axis_desc_style(("sans-serif", 14))
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(draw_err)?;
    let rss_color = COLORS[3];
    let open_color = COLORS[0];
    chart
        .draw_series(LineSeries::new(
            samples.iter().map(|s| (s.t_s, mib(s.rss_bytes))),
            rss_color.stroke_width(2),
        ))
        .map_err(draw_err)?
        .label("server RSS (left)")
        .legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 18, y)], rss_color.stroke_width(2))
        });
    chart
        .draw_secondary_series(LineSeries::new(
            samples.iter().map(|s| (s.t_s, s.open as f64)),
            open_color.stroke_width(2),
        ))
        .map_err(draw_err)?
        .label("connections open (right)")
        .legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 18, y)], open_color.stroke_width(2))
        });
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(draw_err)
}

fn legend<'a, DB, CT>(chart: &mut ChartContext<'a, DB, CT>) -> Result<(), PlotError>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(draw_err)
}

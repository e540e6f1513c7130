//! `--csv FILE`: the measurement window second by second, one row per second, for a
//! spreadsheet or a CI chart. Latency cells are empty in seconds without samples.

use std::fmt::Write as _;

use crate::report::Report;

/// The header row.
pub const HEADER: &str = "t_s,sent,received,opened,failed,closed,server_closed,open,\
                          latency_count,p50_us,p90_us,p99_us,p999_us,max_us";

/// The CSV text of `report`'s timeline.
pub fn timeline(report: &Report) -> String {
    let mut out = String::with_capacity(64 * (report.timeline.len() + 1));
    out.push_str(HEADER);
    out.push('\n');
    for p in &report.timeline {
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{},{}",
            p.t,
            p.sent,
            p.received,
            p.opened,
            p.failed,
            p.closed,
            p.server_closed,
            p.open,
            p.latency_us.count
        );
        let l = &p.latency_us;
        if l.count > 0 {
            let _ = writeln!(
                out,
                ",{:.1},{:.1},{:.1},{:.1},{:.1}",
                l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us
            );
        } else {
            out.push_str(",,,,,\n");
        }
    }
    out
}

//! A process's resident memory, from `/proc/PID/status` (`VmRSS`).

use std::fmt;

/// Why the RSS could not be read.
#[derive(Debug)]
pub enum RssError {
    /// `/proc/PID/status` could not be read (no such process, no permission).
    Read(u32, std::io::Error),
    /// The file has no parseable `VmRSS:` line (a kernel thread, or not Linux).
    Missing(u32),
}

impl fmt::Display for RssError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RssError::Read(pid, e) => write!(f, "cannot read /proc/{pid}/status: {e}"),
            RssError::Missing(pid) => write!(f, "/proc/{pid}/status has no VmRSS line"),
        }
    }
}

impl std::error::Error for RssError {}

/// Resident set size of `pid`, bytes.
///
/// # Errors
/// [`RssError`] when the process is gone or the file has no `VmRSS`.
pub fn vm_rss_bytes(pid: u32) -> Result<u64, RssError> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| RssError::Read(pid, e))?;
    parse_vm_rss(&text).ok_or(RssError::Missing(pid))
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => Some(n * 1024),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status() {
        let s = "Name:\tx\nVmPeak:\t  100 kB\nVmRSS:\t    2048 kB\nThreads: 1\n";
        assert_eq!(parse_vm_rss(s), Some(2048 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn reads_own_rss() {
        let rss = vm_rss_bytes(std::process::id()).expect("own status");
        assert!(rss > 0);
    }
}

/// One reading of the server's memory while a run goes (`hold --server-pid`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RssSample {
    /// Seconds since the run began (before any connection opened).
    pub t_s: f64,
    /// The server's RSS, bytes.
    pub rss_bytes: u64,
    /// Connections the generator had open.
    pub open: u64,
}

/// Reads the server's RSS every [`RssSampler::PERIOD_NS`] while a run goes.
#[derive(Debug)]
pub struct RssSampler {
    pid: Option<u32>,
    start_ns: u64,
    next_ns: u64,
    /// What was read so far (at most one per period: bounded by the run's length).
    pub samples: Vec<RssSample>,
}

impl RssSampler {
    /// Readings four times a second.
    pub const PERIOD_NS: u64 = 250_000_000;

    /// A sampler for `pid` (none: it reads nothing), the run beginning at `start_ns`.
    pub fn new(pid: Option<u32>, start_ns: u64) -> RssSampler {
        RssSampler { pid, start_ns, next_ns: start_ns, samples: Vec::new() }
    }

    /// Reads the RSS if a period has passed; a failed read is skipped (the before/after
    /// readings report failures).
    pub fn tick(&mut self, now_ns: u64, open: u64) {
        let Some(pid) = self.pid else {
            return;
        };
        if now_ns < self.next_ns {
            return;
        }
        self.next_ns = now_ns + Self::PERIOD_NS;
        if let Ok(rss_bytes) = vm_rss_bytes(pid) {
            let t_s = now_ns.saturating_sub(self.start_ns) as f64 / 1e9;
            self.samples.push(RssSample { t_s, rss_bytes, open });
        }
    }
}

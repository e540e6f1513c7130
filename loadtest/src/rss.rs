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

//! The machine-wide monotonic clock, in nanoseconds.
//!
//! Timestamps embedded in payloads come from here. `CLOCK_MONOTONIC` is one clock for every
//! process on the machine, so a timestamp written by one worker process (`--procs`) can be
//! read by another (the broadcast sender and its subscribers) and the start time the parent
//! hands to its workers means the same instant to all of them.

/// Nanoseconds on `CLOCK_MONOTONIC`.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable `timespec` that outlives the call, and
    // CLOCK_MONOTONIC is supported by every Linux kernel, so the call only writes `ts`.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) cannot fail");
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Seconds (as given on the command line) to nanoseconds, saturating.
pub fn secs_to_ns(secs: f64) -> u64 {
    if secs.is_finite() && secs > 0.0 { (secs * 1e9).min(u64::MAX as f64) as u64 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_and_matches_instant_pace() {
        let a = now_ns();
        let i = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = now_ns();
        let elapsed = i.elapsed().as_nanos() as u64;
        assert!(b > a);
        let diff = (b - a).abs_diff(elapsed);
        assert!(diff < 5_000_000, "clocks drifted by {diff} ns");
    }

    #[test]
    fn seconds() {
        assert_eq!(secs_to_ns(1.5), 1_500_000_000);
        assert_eq!(secs_to_ns(-1.0), 0);
        assert_eq!(secs_to_ns(f64::NAN), 0);
    }
}

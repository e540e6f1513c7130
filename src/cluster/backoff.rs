//! How long the link waits before its next connection attempt.

use std::time::Duration;

/// The wait before attempt `failures + 1`: `min · 2^(failures-1)` capped at `max`, then a
/// random point of its upper half (`random` is any random number), so nodes that lost
/// Redis together do not come back in step.
pub(crate) fn backoff(min: Duration, max: Duration, failures: u32, random: u64) -> Duration {
    let doubled = min.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    let wait = doubled.min(max);
    let half = wait / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(random % nanos.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(5));
        for (failures, cap) in [(1, 100), (2, 200), (3, 400), (7, 5000), (40, 5000)] {
            let cap = Duration::from_millis(cap);
            for random in [0, 1, 12345, u64::MAX] {
                let wait = backoff(min, max, failures, random);
                assert!(wait >= cap / 2 && wait <= cap, "{failures}: {wait:?} in {cap:?}");
            }
        }
        assert_ne!(backoff(min, max, 5, 1), backoff(min, max, 5, 987_654_321));
    }
}

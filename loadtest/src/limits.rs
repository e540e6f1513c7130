//! The per-process open-file limit, raised to its hard maximum when a run needs more.

/// Soft and hard `RLIMIT_NOFILE`.
fn nofile() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (rc == 0).then_some((lim.rlim_cur, lim.rlim_max))
}

/// Makes sure this process may hold `needed` descriptors, raising the soft limit up to the
/// hard one if needed. Returns the limit now in force (0 if unknown).
pub fn ensure_open_files(needed: u64) -> u64 {
    let Some((soft, hard)) = nofile() else {
        return 0;
    };
    if soft >= needed || soft >= hard {
        return soft;
    }
    let lim =
        libc::rlimit { rlim_cur: needed.min(hard) as libc::rlim_t, rlim_max: hard as libc::rlim_t };
    // SAFETY: `lim` is a valid rlimit read by the call; raising the soft limit up to the
    // hard limit needs no privilege and affects only this process.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    if rc == 0 { needed.min(hard) } else { soft }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_known_and_not_lowered() {
        let (soft, _) = nofile().expect("getrlimit works");
        assert!(ensure_open_files(16) >= soft.min(16));
    }
}

//! The open-file limit: a server of many sockets raises its soft limit to the hard one.
#![allow(unsafe_code)]

/// Soft and hard `RLIMIT_NOFILE`.
pub fn open_files() -> std::io::Result<(libc::rlim_t, libc::rlim_t)> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit through a pointer to a live, aligned local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}

/// Raises the soft open-file limit to the hard limit; returns (before, after).
pub fn raise_open_files() -> std::io::Result<(libc::rlim_t, libc::rlim_t)> {
    let (soft, hard) = open_files()?;
    if soft >= hard {
        return Ok((soft, soft));
    }
    let limit = libc::rlimit { rlim_cur: hard, rlim_max: hard };
    // SAFETY: setrlimit reads one rlimit through a pointer to a live, aligned local.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((soft, open_files()?.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_reaches_the_hard_limit() {
        let (_, hard) = open_files().unwrap();
        let (before, after) = raise_open_files().unwrap();
        assert!(before <= after);
        assert_eq!(after, hard);
        assert_eq!(open_files().unwrap(), (hard, hard));
    }
}

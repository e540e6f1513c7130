//! What the suite reads of a server process in `/proc`: CPU time split into user and
//! system, and the number of open descriptors (to see when it holds every connection).

/// `/proc` reports CPU times in USER_HZ ticks, 100 per second on Linux whatever the
/// kernel's own tick rate (`sysconf(_SC_CLK_TCK)`).
pub const TICKS_PER_SEC: f64 = 100.0;

/// A process's CPU time so far, in ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTicks {
    /// `utime`: in user space.
    pub user: u64,
    /// `stime`: in the kernel on its behalf (syscalls, TCP work done in them).
    pub system: u64,
}

impl CpuTicks {
    /// The process's CPU time, all its threads; `None` when it is gone.
    pub fn of(pid: u32) -> Option<CpuTicks> {
        parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// `self - earlier`, saturating.
    pub fn since(self, earlier: CpuTicks) -> CpuTicks {
        CpuTicks {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// Reads `utime` and `stime` (fields 14 and 15 of proc(5)) from a `/proc/PID/stat` line.
/// The command name (field 2) may hold spaces and parentheses: fields are counted after
/// its last `)`.
pub fn parse_stat(line: &str) -> Option<CpuTicks> {
    let rest = &line[line.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let user = fields.next()?.parse().ok()?;
    let system = fields.next()?.parse().ok()?;
    Some(CpuTicks { user, system })
}

/// One core's ticks so far, from `/proc/stat`: how much of the core anything used, to tell
/// the server's share from other work competing for it.
pub fn core_ticks(core: usize) -> Option<CoreTicks> {
    parse_core(&std::fs::read_to_string("/proc/stat").ok()?, core)
}

/// A core's ticks, as `/proc/stat` counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreTicks {
    /// Not idle: total − idle − iowait (steal included: the core was not ours then).
    pub busy: u64,
    /// Stolen: the hypervisor ran something else while this virtual core had work.
    pub steal: u64,
    /// Every tick of the first eight fields (user to steal).
    pub total: u64,
}

/// Reads the `cpuN` line of `/proc/stat` text.
pub fn parse_core(stat: &str, core: usize) -> Option<CoreTicks> {
    let name = format!("cpu{core}");
    let line = stat.lines().find(|l| l.split_whitespace().next() == Some(name.as_str()))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    let steal = v.get(7).copied().unwrap_or(0);
    Some(CoreTicks { busy: total.saturating_sub(idle), steal, total })
}

/// Open descriptors of `pid`; `None` when they cannot be listed.
pub fn fd_count(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_user_and_system_ticks() {
        let line = "4242 (tokio (x) 1) S 1 4242 4242 0 -1 4194560 120 0 0 0 1234 567 0 0 20 0 1 0";
        assert_eq!(parse_stat(line), Some(CpuTicks { user: 1234, system: 567 }));
        assert_eq!(parse_stat("4242 (short) S 1"), None);
        assert_eq!(parse_stat("garbage"), None);
        let own = CpuTicks::of(std::process::id()).expect("this process");
        let later = CpuTicks { user: own.user + 3, system: own.system };
        assert_eq!(later.since(own), CpuTicks { user: 3, system: 0 });
        assert!(fd_count(std::process::id()).is_some_and(|n| n > 0));
        let stat = "cpu  9 9 9 9 9 0 0 0\ncpu0 10 2 8 60 10 0 0 10 0 0\ncpu1 1 1 1 1 1 0 0 0\n";
        assert_eq!(parse_core(stat, 0), Some(CoreTicks { busy: 30, steal: 10, total: 100 }));
        assert_eq!(parse_core(stat, 2), None);
        assert!(core_ticks(0).is_some());
    }
}

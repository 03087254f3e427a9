//! Process figures from Linux's `/proc`: resident memory, CPU time, the open-file limit.
//!
//! Raising `RLIMIT_NOFILE` needs `setrlimit`, which only `unsafe` FFI reaches from std, and the
//! workspace forbids `unsafe`; the generator reads the limit and asks for `ulimit -n` instead.

/// Clock ticks per second of `/proc/<pid>/stat` times: `USER_HZ`, which Linux fixes at 100 for
/// user space on every architecture it supports.
const USER_HZ: f64 = 100.0;

/// VmRSS of `pid`, in KiB.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_rss_kib(&status)
}

fn parse_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time of a process (every thread), in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CpuTimes {
    /// In user space.
    pub(crate) user: f64,
    /// In the kernel on the process's behalf (system calls, and the network stack's work
    /// done in its context).
    pub(crate) system: f64,
}

/// The CPU time of `pid` so far.
pub(crate) fn cpu_times(pid: u32) -> Option<CpuTimes> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (utime, stime) = parse_cpu_ticks(&stat)?;
    Some(CpuTimes {
        user: utime as f64 / USER_HZ,
        system: stime as f64 / USER_HZ,
    })
}

/// User and system ticks from `/proc/<pid>/stat`.
fn parse_cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    // After the name: state (field 3) … utime (field 14), stime (field 15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// The soft limit on open files of this process.
pub(crate) fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_file_limit(&limits)
}

fn parse_open_file_limit(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        assert_eq!(
            parse_rss_kib("Name:\tx\nVmPeak:\t  9 kB\nVmRSS:\t   12345 kB\n"),
            Some(12345)
        );
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_cpu_ticks(stat), Some((250, 30)));
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            20000                20000                files     \n";
        assert_eq!(parse_open_file_limit(limits), Some(20000));
        assert!(rss_kib(std::process::id()).is_some());
        assert!(cpu_times(std::process::id()).is_some());
    }
}

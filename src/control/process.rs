//! The process's own figures: memory, file descriptors and their limits.
//!
//! Read from `/proc` and `/sys/fs/cgroup` by the control task (`sys.rs`) on
//! a blocking thread of its shard (listing `/proc/self/fd` with 20K sockets
//! open takes milliseconds). Nothing here panics: a file that cannot be read
//! gives 0 (unknown), and the alarm on it then stays quiet.

use serde::Serialize;

/// What the process uses and may use.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Process {
    /// Resident memory, bytes.
    pub memory_bytes: u64,
    /// The memory it may use: the configured limit, the cgroup's, or the machine's.
    pub memory_limit: u64,
    pub fds: u64,
    pub fd_limit: u64,
}

impl Process {
    /// Read the figures now; `memory_limit` 0 means "find it". The open
    /// descriptors are counted only with `count_fds` (listing
    /// `/proc/self/fd` costs about a millisecond per thousand sockets), else
    /// `fds` is 0 for the caller to fill in.
    pub fn read(memory_limit: u64, count_fds: bool) -> Process {
        Process {
            memory_bytes: rss(),
            memory_limit: if memory_limit > 0 {
                memory_limit
            } else {
                cgroup_limit().unwrap_or_else(machine_memory)
            },
            fds: match count_fds {
                true => std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64),
                false => 0,
            },
            fd_limit: fd_limit(),
        }
    }
}

/// Resident set size from `/proc/self/statm` (pages).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

/// The cgroup v2 memory limit, if one is set.
fn cgroup_limit() -> Option<u64> {
    let max = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok()?;
    max.trim().parse().ok()
}

/// MemTotal from `/proc/meminfo`, bytes.
fn machine_memory() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The soft RLIMIT_NOFILE.
fn fd_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return 0;
    }
    r.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let p = Process::read(0, true);
        assert!(p.memory_bytes > 1 << 20, "{p:?}");
        assert!(p.memory_limit >= p.memory_bytes, "{p:?}");
        assert!(p.fds >= 3 && p.fd_limit >= p.fds, "{p:?}");
        assert_eq!(Process::read(12345, false).memory_limit, 12345);
        assert_eq!(Process::read(0, false).fds, 0);
    }
}

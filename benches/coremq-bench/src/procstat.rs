//! Process figures from /proc and getrusage: the broker's RSS and CPU time
//! (`--broker-pid`) and the tool's own CPU time.
//!
//! Owns nothing. Called by `workers.rs` (broker samples during the run) and
//! `engine.rs` (a worker's own CPU seconds for its final line).

/// One sample of a process.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    /// Resident set size, KiB.
    pub rss_kb: u64,
    /// User + system CPU seconds since the process started.
    pub cpu_secs: f64,
}

/// Sample process `pid`; None if it is gone or /proc is unreadable.
pub fn sample(pid: u32) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(Sample {
        rss_kb: parse_rss_kb(&status)?,
        cpu_secs: parse_cpu_secs(&stat, clock_ticks())?,
    })
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// `VmRSS:   1234 kB` from /proc/PID/status.
fn parse_rss_kb(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime (fields 14 and 15) from /proc/PID/stat; the command name
/// (field 2) may hold spaces, so count from the last ')'.
fn parse_cpu_secs(stat: &str, ticks: f64) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): field n is f[n - 3].
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

/// CPU seconds (user + system) used by this process so far.
pub fn self_cpu_secs() -> f64 {
    // SAFETY: getrusage fills a local struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        assert_eq!(parse_rss_kb("Name:\tx\nVmRSS:\t   5120 kB\n"), Some(5120));
        assert_eq!(parse_rss_kb("Name:\tx\n"), None);
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 5 1000 200";
        assert_eq!(parse_cpu_secs(stat, 100.0), Some(3.0));
    }

    #[test]
    fn samples_this_process() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss_kb > 0);
        // Spend some CPU so that the reading has something to show.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(self_cpu_secs() > 0.0);
        assert_eq!(sample(u32::MAX), None);
    }
}

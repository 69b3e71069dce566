//! Host checks done once before the shards start: io_uring availability,
//! RLIMIT_MEMLOCK, RLIMIT_NOFILE, CPU placement, and signal handling for the
//! binary. Each failure is a clear message saying what to do, never glommio's
//! panic.

use crate::config::Cores;
use std::fmt;

/// Why the host cannot run the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError(pub String);

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HostError {}

/// glommio needs this much locked memory per executor for its rings.
const MIN_MEMLOCK: u64 = 512 * 1024;

/// Raise a resource's soft limit to its hard limit; returns the soft limit
/// now in force, or None if it cannot be read.
fn raise_soft_limit(resource: libc::__rlimit_resource_t) -> Option<libc::rlim_t> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write a plain struct we own.
    unsafe {
        if libc::getrlimit(resource, &mut rl) != 0 {
            return None;
        }
        if rl.rlim_cur < rl.rlim_max {
            let want = libc::rlimit {
                rlim_cur: rl.rlim_max,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(resource, &want) == 0 {
                rl = want;
            }
        }
    }
    Some(rl.rlim_cur)
}

/// Raise the soft fd limit to the hard limit; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    raise_soft_limit(libc::RLIMIT_NOFILE).unwrap_or(0)
}

/// RLIMIT_MEMLOCK must allow io_uring's rings: raise the soft limit, else explain.
pub fn check_memlock() -> Result<(), HostError> {
    let Some(cur) = raise_soft_limit(libc::RLIMIT_MEMLOCK) else {
        return Ok(());
    };
    if cur != libc::RLIM_INFINITY && cur < MIN_MEMLOCK {
        return Err(HostError(format!(
            "RLIMIT_MEMLOCK is {} KiB; io_uring needs at least {} KiB. Raise it: `ulimit -l 1024` in the shell, \
             LimitMEMLOCK=infinity in a systemd unit, or `--ulimit memlock=-1` for docker",
            cur / 1024,
            MIN_MEMLOCK / 1024
        )));
    }
    Ok(())
}

/// Create and close a tiny io_uring to learn whether the kernel allows it.
pub fn probe_io_uring() -> Result<(), HostError> {
    // struct io_uring_params is 120 bytes; zeroed asks for defaults.
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup(2) with a valid params buffer; the fd is closed at once.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    if fd >= 0 {
        // SAFETY: closing the fd we just got.
        unsafe { libc::close(fd as i32) };
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    let why = match err.raw_os_error() {
        Some(libc::ENOSYS) => "this kernel has no io_uring (Linux 5.8+ is needed)",
        Some(libc::EPERM) | Some(libc::EACCES) => {
            "io_uring is blocked: a container seccomp profile (Docker >= 25 and containerd block it by default; \
             run with a profile that allows io_uring_setup/io_uring_enter/io_uring_register) or the sysctl \
             kernel.io_uring_disabled"
        }
        Some(libc::ENOMEM) => "io_uring could not lock memory: raise RLIMIT_MEMLOCK (ulimit -l)",
        _ => "io_uring_setup failed",
    };
    Err(HostError(format!("cannot start: {why} ({err})")))
}

/// The CPUs this process may run on (its affinity mask).
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills a cpu_set_t we own.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return (0..std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1))
                .collect();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// One CPU per shard, from the config's `cores`.
pub fn resolve_cpus(cores: &Cores) -> Result<Vec<usize>, HostError> {
    let allowed = allowed_cpus();
    if allowed.is_empty() {
        return Err(HostError("no CPU in the process's affinity mask".into()));
    }
    match cores {
        Cores::All(_) => Ok(allowed),
        Cores::Count(n) => Ok((0..*n).map(|i| allowed[i % allowed.len()]).collect()),
        Cores::List(list) => match list.iter().find(|c| !allowed.contains(c)) {
            Some(c) => Err(HostError(format!(
                "runtime.cores: CPU {c} is not in this process's affinity mask {allowed:?}"
            ))),
            None => Ok(list.clone()),
        },
    }
}

/// The signals the binary takes synchronously: SIGINT and SIGTERM (stop),
/// SIGHUP (reload).
fn stop_signals() -> libc::sigset_t {
    // SAFETY: initialising and filling a sigset_t we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        set
    }
}

/// Block SIGINT, SIGTERM and SIGHUP in this thread (and the threads it
/// starts), so [`wait_for_stop_signal`] can take them synchronously.
pub fn block_stop_signals() {
    let set = stop_signals();
    // SAFETY: changes this thread's mask from a set we own.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Wait for SIGINT, SIGTERM or SIGHUP (blocked beforehand); returns its number.
pub fn wait_for_stop_signal() -> i32 {
    let set = stop_signals();
    let mut sig = 0;
    // SAFETY: sigwait on a set we own, into a local.
    unsafe {
        libc::sigwait(&set, &mut sig);
    }
    sig
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_resolve() {
        let all = resolve_cpus(&Cores::All("all".into())).unwrap();
        assert!(!all.is_empty());
        let three = resolve_cpus(&Cores::Count(3)).unwrap();
        assert_eq!(three.len(), 3);
        assert!(resolve_cpus(&Cores::List(vec![100_000])).is_err());
    }
}

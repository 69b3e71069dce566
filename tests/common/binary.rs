//! The `coremq` binary as a child process, and bounded child processes for
//! third-party clients (mosquitto_pub/sub, python3 + paho-mqtt).
//!
//! Everything here is bounded in time: the broker must report its port
//! within [`START_WAIT`], a stop waits at most [`STOP_WAIT`] before SIGKILL,
//! and [`Proc`] kills its child when dropped.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the broker binary has to start listening.
pub const START_WAIT: Duration = Duration::from_secs(10);
/// How long a SIGTERM'd broker has to exit before it is killed.
pub const STOP_WAIT: Duration = Duration::from_secs(5);

/// Send `sig` to a child we started (by its pid, never by name).
pub fn signal(child: &Child, sig: libc::c_int) {
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Wait for `child` to exit, at most `within`. None if it is still running.
pub fn wait_timeout(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + within;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(10)),
            _ => return None,
        }
    }
}

/// Fail (not skip) when a third-party program the test needs is missing:
/// CI installs them, so a missing one is a broken CI, not a reason to pass.
pub fn require_program(program: &str, install_hint: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "interop test needs `{program}` on PATH but it is missing; install it with: {install_hint}"
    );
}

/// Runs tests/paho/transports.py against `port` on localhost with `args`
/// (`--cafile`, `--cert`, `--key`, `--transport websockets`, `--path`):
/// paho-mqtt subscribes and publishes over that transport. Panics with
/// the script's output when it fails.
pub fn paho_over(port: u16, args: &[&str]) {
    require_program("python3", "apt-get install -y python3");
    let script = format!("{}/tests/paho/transports.py", env!("CARGO_MANIFEST_DIR"));
    let port = port.to_string();
    let out = std::process::Command::new("timeout")
        .args([
            "30",
            "python3",
            &script,
            "--host",
            "localhost",
            "--port",
            &port,
        ])
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "paho {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `coremq` binary, started on 127.0.0.1 with a free port.
pub struct BrokerProcess {
    child: Option<Child>,
    pub port: u16,
    pub cores: usize,
    log: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
    _config: Option<TempFile>,
    /// The storage directory (`--data-dir`).
    data_dir: PathBuf,
    /// A fresh directory of [`start_on`](Self::start_on), removed after the
    /// broker stopped (fields drop after `Drop::drop`).
    _owned_dir: Option<TempDir>,
}

impl BrokerProcess {
    /// `coremq --listen 127.0.0.1:0 --cores N`.
    pub fn start(cores: usize) -> BrokerProcess {
        BrokerProcess::start_with_config(cores, None)
    }

    /// As [`start`](Self::start), with a TOML configuration file made from `toml`.
    pub fn start_with_config(cores: usize, toml: Option<&str>) -> BrokerProcess {
        BrokerProcess::start_on("127.0.0.1:0", cores, toml)
    }

    /// `coremq --listen LISTEN --cores N --data-dir <fresh temp dir>` (with
    /// `toml` as its configuration file); returns once it logged its port.
    /// The directory is removed when the broker is dropped.
    pub fn start_on(listen: &str, cores: usize, toml: Option<&str>) -> BrokerProcess {
        let dir = TempDir::new("coremq-data");
        let mut b = BrokerProcess::spawn(listen, cores, toml, &dir.path, &[]);
        b._owned_dir = Some(dir);
        b
    }

    /// The broker on 127.0.0.1:0 with its storage in `dir`, which is kept
    /// (not removed) when the broker stops: restart on it to check recovery.
    pub fn start_in(dir: &Path, cores: usize, toml: Option<&str>) -> BrokerProcess {
        BrokerProcess::spawn("127.0.0.1:0", cores, toml, dir, &[])
    }

    /// As [`start_in`](Self::start_in) with extra flags (`--recover`).
    pub fn start_in_with(
        dir: &Path,
        cores: usize,
        toml: Option<&str>,
        extra_args: &[&str],
    ) -> BrokerProcess {
        BrokerProcess::spawn("127.0.0.1:0", cores, toml, dir, extra_args)
    }

    /// `coremq --data-dir DIR --listen 127.0.0.1:0 --cores N [extra_args]`
    /// expected to exit at start. Waits at most [`START_WAIT`]; returns the
    /// exit code (None if it started listening instead, and was killed, or
    /// died of a signal) and everything it wrote on stdout and stderr.
    pub fn run_expect_exit(
        dir: &Path,
        cores: usize,
        extra_args: &[&str],
        toml: Option<&str>,
    ) -> (Option<i32>, String) {
        match BrokerProcess::try_start_in(dir, cores, toml, extra_args) {
            Ok(b) => {
                let log = b.log();
                b.kill9();
                (None, log)
            }
            Err(failed) => failed,
        }
    }

    /// As [`start_in_with`](Self::start_in_with), but a broker that exits
    /// before it reports its port is an `Err` of its exit code and output.
    /// Panics only if it neither listens nor exits within [`START_WAIT`].
    pub fn try_start_in(
        dir: &Path,
        cores: usize,
        toml: Option<&str>,
        extra_args: &[&str],
    ) -> Result<BrokerProcess, (Option<i32>, String)> {
        BrokerProcess::try_spawn(
            "127.0.0.1:0",
            cores,
            toml,
            dir,
            extra_args,
            &Tuning::default(),
        )
    }

    /// As [`start_with_config`](Self::start_with_config), with environment
    /// variables and (if given) a file descriptor limit (soft and hard) for
    /// the broker process: an alarm test provokes what it watches.
    pub fn start_tuned(cores: usize, toml: Option<&str>, tuning: &Tuning) -> BrokerProcess {
        let dir = TempDir::new("coremq-data");
        let started = BrokerProcess::try_spawn("127.0.0.1:0", cores, toml, &dir.path, &[], tuning);
        let mut b = started.unwrap_or_else(|(code, log)| {
            panic!("coremq exited at start (code {code:?}); its output:\n{log}")
        });
        b._owned_dir = Some(dir);
        b
    }

    /// Spawn `coremq --data-dir DIR --listen LISTEN --cores N [extra]` and
    /// wait for its port; panics with its log if it does not listen.
    fn spawn(
        listen: &str,
        cores: usize,
        toml: Option<&str>,
        data_dir: &Path,
        extra_args: &[&str],
    ) -> BrokerProcess {
        match BrokerProcess::try_spawn(
            listen,
            cores,
            toml,
            data_dir,
            extra_args,
            &Tuning::default(),
        ) {
            Ok(b) => b,
            Err((code, log)) => panic!(
                "coremq --cores {cores} --data-dir {} {extra_args:?} exited at start \
                 (code {code:?}); its output:\n{log}",
                data_dir.display()
            ),
        }
    }

    fn try_spawn(
        listen: &str,
        cores: usize,
        toml: Option<&str>,
        data_dir: &Path,
        extra_args: &[&str],
        tuning: &Tuning,
    ) -> Result<BrokerProcess, (Option<i32>, String)> {
        let config = toml.map(|t| TempFile::new("coremq-interop", ".toml", t));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_coremq"));
        if let Some(c) = &config {
            cmd.arg("--config").arg(&c.path);
        }
        cmd.arg("--data-dir").arg(data_dir);
        cmd.args(["--listen", listen, "--cores", &cores.to_string()])
            .args(extra_args)
            .env(
                "RUST_LOG",
                std::env::var("COREMQ_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &tuning.env {
            cmd.env(k, v);
        }
        if let Some(n) = tuning.nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: only setrlimit, async-signal-safe, between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let r = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().expect("spawn the coremq binary");
        let stderr = child.stderr.take().expect("piped stderr");
        let stdout = child.stdout.take().expect("piped stdout");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let log2 = log.clone();
        // The readers keep draining stderr and stdout for the broker's whole
        // life, so its output can never block on a full pipe.
        let reader = std::thread::spawn(move || {
            let log3 = log2.clone();
            let out = std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let mut l = log3.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = parse_port(&line) {
                    let _ = tx.send(port);
                }
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
            let _ = out.join();
        });
        let mut b = BrokerProcess {
            child: Some(child),
            port: 0,
            cores,
            log,
            reader: Some(reader),
            _config: config,
            data_dir: data_dir.to_path_buf(),
            _owned_dir: None,
        };
        let end = Instant::now() + START_WAIT;
        loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(port) => {
                    b.port = port;
                    return Ok(b);
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {}
            }
            let exited = b.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                b.child = None;
                // The pipes close with the process: the readers end.
                if let Some(r) = b.reader.take() {
                    let _ = r.join();
                }
                return Err((status.code(), b.log()));
            }
            if Instant::now() > end {
                panic!(
                    "coremq --cores {cores} --data-dir {} neither reported its port nor \
                     exited within {START_WAIT:?}; its log:\n{}",
                    data_dir.display(),
                    b.log()
                );
            }
        }
    }

    /// The management listener's address, from `http listening on ADDR`.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        let log = self.log();
        let at = log.find("http listening on ")? + "http listening on ".len();
        log[at..].split_whitespace().next()?.parse().ok()
    }

    /// The storage directory this broker runs on.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Wait (at most `within`) until the log satisfies `f`; returns whether it did.
    pub fn wait_log(&self, within: Duration, f: impl Fn(&str) -> bool) -> bool {
        let end = Instant::now() + within;
        loop {
            if f(&self.log()) {
                return true;
            }
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The broker's process id (for `coremq-bench --broker-pid`).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The broker's resident memory (VmRSS from /proc), in bytes. Panics if
    /// it cannot be read: a memory check must never pass on a missing figure.
    pub fn rss(&self) -> u64 {
        let pid = self.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("broker /proc");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS");
        kb * 1024
    }

    /// Send `sig` to the broker (SIGHUP: reload).
    pub fn signal(&self, sig: libc::c_int) {
        if let Some(c) = &self.child {
            signal(c, sig);
        }
    }

    /// Everything the broker logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM and wait; the broker must exit 0 within [`STOP_WAIT`].
    pub fn stop(mut self) {
        let status = self.terminate();
        assert!(
            status.is_some_and(|s| s.success()),
            "coremq --cores {} did not stop cleanly on SIGTERM (exit: {status:?}); its log:\n{}",
            self.cores,
            self.log()
        );
    }

    /// SIGKILL (no clean stop) and reap it; returns once the process is gone.
    pub fn kill9(mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, libc::SIGKILL);
            let _ = child.wait();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }

    /// SIGTERM, wait up to STOP_WAIT, then SIGKILL. None if it had to be killed.
    fn terminate(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        signal(&child, libc::SIGTERM);
        let status = wait_timeout(&mut child, STOP_WAIT);
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        status
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// What [`BrokerProcess::start_tuned`] changes in the broker's process.
#[derive(Debug, Default, Clone)]
pub struct Tuning {
    pub env: Vec<(String, String)>,
    /// RLIMIT_NOFILE, soft and hard.
    pub nofile: Option<u64>,
}

/// The port from `coremq listening on 127.0.0.1:PORT with N shards ...`.
fn parse_port(line: &str) -> Option<u16> {
    let rest = &line[line.find("coremq listening on ")? + "coremq listening on ".len()..];
    let addr = rest.split_whitespace().next()?;
    addr.parse::<SocketAddr>().ok().map(|a| a.port())
}

/// A directory (with everything in it) removed when dropped:
/// `$TMPDIR/PREFIX-PID-N`.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Run `cmd` (stdin closed, stdout and stderr collected) for at most
/// `within`, in a process group of its own which is killed once it exited
/// or ran out of time (helpers it started too). Returns its exit code (None
/// if it had to be killed or died of a signal), stdout and stderr.
pub fn run_bounded(mut cmd: Command, within: Duration) -> (Option<i32>, String, String) {
    use std::os::unix::process::CommandExt;
    let name = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {name}: {e}"));
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let r1 = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let r2 = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let status = wait_timeout(&mut child, within);
    // SAFETY: plain syscall; a negative pid names the group made for it.
    unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
    if status.is_none() {
        let _ = child.wait();
    }
    let out = r1.join().unwrap_or_default();
    let err = r2.join().unwrap_or_default();
    (status.and_then(|s| s.code()), out, err)
}

/// `coremq storage ARGS...`, bounded to 30 s: (exit code, stdout, stderr).
pub fn storage_cli(args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coremq"));
    cmd.arg("storage").args(args);
    run_bounded(cmd, Duration::from_secs(30))
}

/// A file removed when dropped.
pub struct TempFile {
    pub path: PathBuf,
}

impl TempFile {
    pub fn new(prefix: &str, suffix: &str, contents: &str) -> TempFile {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("{prefix}-{}-{n}{suffix}", std::process::id()));
        std::fs::write(&path, contents).expect("write temp file");
        TempFile { path }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A third-party client process: stdout lines arrive on a channel as they
/// are printed, stderr is collected, and the child is killed when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    lines: Receiver<String>,
    /// Every stdout line seen so far (also those taken by `wait_line`).
    seen: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

/// What a finished [`Proc`] left.
#[derive(Debug)]
pub struct Finished {
    pub status: Option<ExitStatus>,
    pub stdout: Vec<String>,
    pub stderr: String,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

impl Proc {
    /// Spawn `cmd` with piped stdout/stderr (and stdin if `stdin` is set).
    pub fn spawn(mut cmd: Command, stdin: bool) -> Proc {
        let name = format!("{cmd:?}");
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() });
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {name}: {e} (is it installed?)"));
        let (tx, lines) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        let seen2 = seen.clone();
        let r1 = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                seen2.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let stderr2 = stderr.clone();
        let r2 = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = BufReader::new(err).read_to_string(&mut s);
            stderr2.lock().unwrap().push_str(&s);
        });
        Proc {
            name,
            child,
            lines,
            seen,
            stderr,
            readers: vec![r1, r2],
        }
    }

    pub fn stdin(&mut self) -> &mut ChildStdin {
        self.child.stdin.as_mut().expect("spawned with stdin")
    }

    /// Close stdin (end of input for `mosquitto_pub -l`).
    pub fn close_stdin(&mut self) {
        self.child.stdin.take();
    }

    /// Wait (at most `within`) for a stdout line satisfying `f`; lines before it are consumed.
    pub fn wait_line(&mut self, within: Duration, f: impl Fn(&str) -> bool) -> Option<String> {
        let end = Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if f(&l) => return Some(l),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return None
                }
            }
        }
    }

    /// Like [`wait_line`](Self::wait_line), panicking with the output so far on timeout.
    pub fn expect_line(
        &mut self,
        within: Duration,
        what: &str,
        f: impl Fn(&str) -> bool,
    ) -> String {
        match self.wait_line(within, f) {
            Some(l) => l,
            None => {
                let (stdout, stderr) = self.output_so_far();
                panic!(
                    "{}: no {what} within {within:?}\nstdout: {stdout:?}\nstderr: {stderr}",
                    self.name
                )
            }
        }
    }

    /// The stdout lines and stderr seen so far.
    pub fn output_so_far(&self) -> (Vec<String>, String) {
        let stdout = self.seen.lock().unwrap().clone();
        let stderr = self.stderr.lock().unwrap().clone();
        (stdout, stderr)
    }

    pub fn signal(&self, sig: libc::c_int) {
        signal(&self.child, sig);
    }

    /// Wait for the process to exit (at most `within`, then kill it) and collect its output.
    pub fn finish(mut self, within: Duration) -> Finished {
        self.close_stdin();
        let status = wait_timeout(&mut self.child, within);
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Finished {
            status,
            stdout: std::mem::take(&mut *self.seen.lock().unwrap()),
            stderr: std::mem::take(&mut *self.stderr.lock().unwrap()),
        }
    }

    /// Kill now and collect the output.
    pub fn kill(self) -> Finished {
        self.finish(Duration::ZERO)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The broker named by `COREMQ_INTEROP_BROKER=host:port`, if set: the
/// interop tests then run against it (for instance a mosquitto started by
/// hand, to prove a scenario right) instead of starting `coremq` themselves.
pub fn external_broker() -> Option<(String, u16)> {
    let v = std::env::var("COREMQ_INTEROP_BROKER").ok()?;
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    let (host, port) = v
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("COREMQ_INTEROP_BROKER={v:?}: expected host:port"));
    let port = port
        .parse()
        .unwrap_or_else(|_| panic!("COREMQ_INTEROP_BROKER={v:?}: bad port"));
    Some((host.to_string(), port))
}

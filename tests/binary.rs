//! The `coremq` binary: flags, configuration errors and exit codes, clean stop.
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_coremq");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

mod tempfile_path {
    use std::path::PathBuf;
    pub struct TempPath(pub PathBuf);
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    pub fn write(text: &str) -> TempPath {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "coremq-test-{}-{}.toml",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&p, text).expect("write temp config");
        TempPath(p)
    }

    /// A storage directory for one broker, removed when dropped.
    pub struct DataDir(pub PathBuf);
    impl Drop for DataDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    pub fn data_dir() -> DataDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        DataDir(std::env::temp_dir().join(format!(
            "coremq-test-data-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        )))
    }
}

#[test]
fn prints_default_config_that_parses() {
    let (code, out, _) = run(&["--print-default-config"]);
    assert_eq!(code, 0);
    assert!(out.contains("[session]") && out.contains("inflight_window"));
    let cfg = tempfile_path::write(&out);
    let (code, _, err) = run(&[
        "--config",
        cfg.0.to_str().unwrap(),
        "--listen",
        "not-an-address",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("listener.bind"), "{err}");
}

#[test]
fn unknown_key_and_bad_value_exit_2_naming_the_key() {
    let cfg = tempfile_path::write("[session]\ninflight_windw = 5\n");
    let (code, _, err) = run(&["--config", cfg.0.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("inflight_windw"), "{err}");
    let cfg = tempfile_path::write("[mqtt]\nmax_packet_size = 1\n");
    let (code, _, err) = run(&["--config", cfg.0.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("mqtt.max_packet_size"), "{err}");
    let cfg = tempfile_path::write("[runtime\ncores = 1\n");
    let (code, _, err) = run(&["--config", cfg.0.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(&["--config", "/nonexistent/coremq.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/coremq.toml"), "{err}");
    let (code, _, err) = run(&["--cores", "zero"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = run(&["--bogus"]);
    assert_eq!(code, 2);
}

#[test]
fn help_version_short_config_and_the_run_command() {
    for flag in ["--help", "-h"] {
        let (code, out, _) = run(&[flag]);
        assert_eq!(code, 0);
        assert!(
            out.contains("--config") && out.contains("--print-default-config"),
            "{out}"
        );
    }
    for flag in ["--version", "-V"] {
        let (code, out, _) = run(&[flag]);
        assert_eq!(code, 0);
        assert_eq!(out.trim(), concat!("coremq ", env!("CARGO_PKG_VERSION")));
    }
    let (code, _, err) = run(&["-c", "/nonexistent/coremq.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/coremq.toml"), "{err}");
    // `run` takes the same flags; flags before it are a usage error.
    let (code, _, err) = run(&["run", "--cores", "zero"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("configuration error"), "{err}");
    let (code, _, _) = run(&["--cores", "1", "run"]);
    assert_eq!(code, 2);
}

#[test]
fn bind_failure_exits_1_with_a_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    // SO_REUSEPORT only shares with sockets that set it too: ours did not.
    let (code, _, err) = run(&["--listen", &addr, "--cores", "1"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot listen"), "{err}");
    assert!(err.contains("address in use"), "{err}");
}

#[test]
fn serves_and_stops_cleanly_on_sigterm() {
    for cores in ["1", "2"] {
        let data = tempfile_path::data_dir();
        let mut child = Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--cores", cores, "--data-dir"])
            .arg(&data.0)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let line = lines.next().expect("a log line").expect("utf8");
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .expect("address in log")
            .to_string();
        let mut s = std::net::TcpStream::connect(&addr).expect("connects");
        // CONNECT (3.1.1, clean, keepalive 60, id "b") then read CONNACK.
        s.write_all(&[
            0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'b',
        ])
        .unwrap();
        let mut ack = [0u8; 4];
        std::io::Read::read_exact(&mut s, &mut ack).unwrap();
        assert_eq!(ack, [0x20, 2, 0, 0]);
        // SAFETY: signalling the child we spawned.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            assert!(
                Instant::now() < end,
                "coremq did not stop within 10 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(status.code(), Some(0));
    }
}

#[test]
fn too_little_locked_memory_is_a_clear_error_not_a_panic() {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(BIN);
    cmd.args(["--listen", "127.0.0.1:0", "--cores", "1"]);
    // SAFETY: only async-signal-safe setrlimit between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let rl = libc::rlimit {
                rlim_cur: 64 * 1024,
                rlim_max: 64 * 1024,
            };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &rl) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("RLIMIT_MEMLOCK") && err.contains("ulimit -l"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// SIGKILLs a child if the test fails before it stops the child itself (a
/// leaked broker would hold the test's stdout open).
struct KillOnPanic(u32);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // SAFETY: signalling the child we spawned, by its pid.
            unsafe { libc::kill(self.0 as i32, libc::SIGKILL) };
        }
    }
}

#[test]
fn out_of_file_descriptors_pauses_accepting_and_recovers() {
    use std::os::unix::process::CommandExt;
    let data = tempfile_path::data_dir();
    let mut cmd = Command::new(BIN);
    cmd.args(["--listen", "127.0.0.1:0", "--cores", "1", "--data-dir"])
        .arg(&data.0)
        .env("RUST_LOG", "warn,coremq::broker=info")
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe setrlimit between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let rl = libc::rlimit {
                rlim_cur: 128,
                rlim_max: 128,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn");
    let _reap = KillOnPanic(child.id());
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10)).expect("log line");
    let addr = first
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .expect("address")
        .to_string();
    let conns: Vec<_> = (0..200)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    let end = Instant::now() + Duration::from_secs(5);
    let mut saw_warning = false;
    while Instant::now() < end && !saw_warning {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            saw_warning = line.contains("out of file descriptors");
        }
    }
    assert!(saw_warning, "no fd-exhaustion warning logged");
    // Still out of fds (the rest of the 200 wait in the backlog) and
    // retrying every 100 ms: the warning is rate-limited to one line a
    // second, and says how many it held back.
    let mut warnings = Vec::new();
    let end = Instant::now() + Duration::from_millis(2500);
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        if let Ok(line) = rx.recv_timeout(left) {
            if line.contains("out of file descriptors") {
                warnings.push(line);
            }
        }
    }
    assert!(
        (1..=4).contains(&warnings.len()),
        "{} fd warnings in 2.5 s: {warnings:#?}",
        warnings.len()
    );
    assert!(
        warnings.iter().any(|l| l.contains("similar suppressed")),
        "{warnings:#?}"
    );
    assert!(child.try_wait().unwrap().is_none(), "broker died");
    drop(conns);
    // Once sockets close, the broker serves again.
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        s.write_all(&[
            0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'r',
        ])
        .unwrap();
        let mut ack = [0u8; 4];
        if std::io::Read::read_exact(&mut s, &mut ack).is_ok() {
            assert_eq!(ack, [0x20, 2, 0, 0]);
            break;
        }
        assert!(
            Instant::now() < end,
            "broker did not recover after fds were freed"
        );
    }
    // SAFETY: signalling the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

//! End-to-end: `coremq-bench` against the `coremq` binary and against a real
//! Mosquitto, each on a free loopback port. Fails, not skips, where
//! /usr/sbin/mosquitto is not installed (`scripts/test.sh` installs it), and
//! where the workspace's `coremq-bench` binary has not been built
//! (`scripts/test.sh` builds it with `cargo build -p coremq-bench` first).

mod common;
use common::binary::BrokerProcess;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A Mosquitto we started; stopped by its PID, and its directory removed, on drop.
struct Broker {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_mosquitto() -> Broker {
    assert!(
        std::path::Path::new(MOSQUITTO).exists(),
        "{MOSQUITTO} is missing: apt-get install -y mosquitto (scripts/test.sh does)"
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("coremq-bench-test-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("mosquitto.conf");
    let text = format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_connections -1\nset_tcp_nodelay true\n");
    std::fs::write(&conf, text).unwrap();
    let child = Command::new(MOSQUITTO)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "mosquitto did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Broker { child, port, dir }
}

/// The workspace's `coremq-bench`, built for the same profile as this test:
/// `target/<profile>/deps/bench_tool-*` → `target/<profile>/coremq-bench`.
/// It is another package's binary, so cargo does not build it for this test
/// (no `CARGO_BIN_EXE_coremq-bench`): a missing one fails the test.
fn bench_exe() -> PathBuf {
    let test_exe = std::env::current_exe().expect("path of the test executable");
    let profile_dir = test_exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lies in target/<profile>/deps");
    let exe = profile_dir.join("coremq-bench");
    assert!(
        exe.is_file(),
        "{} is missing: run `cargo build -p coremq-bench` (with the same profile) first; \
         scripts/test.sh does",
        exe.display()
    );
    exe
}

/// Run the tool; return its exit code, stdout and stderr.
fn run_tool(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(bench_exe()).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run the tool; return the JSON line (the last line of stdout).
fn run_bench(args: &[&str]) -> String {
    let (code, stdout, stderr) = run_tool(args);
    assert_eq!(code, Some(0), "coremq-bench failed: {stderr}");
    stdout.lines().last().unwrap_or("").to_string()
}

/// The integer value of `"key":N` in a flat JSON line.
fn int_field(json: &str, key: &str) -> i64 {
    let pat = format!("\"{key}\":");
    let at = json
        .find(&pat)
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + pat.len();
    let digits: String = json[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not an integer in {json}"))
}

fn check_sane(json: &str, clients: i64) {
    assert!(
        json.starts_with('{') && json.ends_with('}'),
        "not JSON: {json}"
    );
    assert_eq!(int_field(json, "connected"), clients, "{json}");
    assert_eq!(int_field(json, "connect_failed"), 0, "{json}");
    assert_eq!(int_field(json, "lost"), 0, "{json}");
    assert_eq!(int_field(json, "duplicates"), 0, "{json}");
    assert!(int_field(json, "sent") > 0, "{json}");
    assert!(int_field(json, "received") > 0, "{json}");
    assert!(
        json.contains("\"delivered_per_s\":") && json.contains("\"p99\":"),
        "{json}"
    );
    assert!(json.contains("\"problems\":[]"), "{json}");
}

/// QoS 1 pairs at a fixed rate, with broker sampling: every message arrives once.
fn p2p(port: u16, pid: u32) {
    let port = port.to_string();
    let pid = pid.to_string();
    let p2p = run_bench(&[
        "scenario",
        "p2p",
        "-c",
        "20",
        "-r",
        "400",
        "-q",
        "1",
        "--port",
        &port,
        "-d",
        "2",
        "--drain",
        "1",
        "--json",
        "--quiet",
        "--broker-pid",
        &pid,
    ]);
    check_sane(&p2p, 20);
    assert_eq!(int_field(&p2p, "expected"), int_field(&p2p, "unique"));
    assert!(p2p.contains("\"bytes_per_conn\":"), "{p2p}");
}

#[test]
fn p2p_against_coremq() {
    let b = BrokerProcess::start(2);
    p2p(b.port, b.pid());
    b.stop();
}

#[test]
fn p2p_and_fanout_against_mosquitto() {
    let b = start_mosquitto();
    p2p(b.port, b.child.id());
    // Two workers, QoS 1 at a fixed rate: every subscriber gets every message.
    let fan = fanout(b.port, &["--workers", "2"]);
    assert_eq!(int_field(&fan, "workers"), 2);
}

/// Ten subscribers of one publisher at QoS 1, 200 msg/s for 2 s, with
/// `extra` flags: checked sane, and counted at the subscribers, ten copies
/// of every acknowledged publish. The JSON line.
fn fanout(port: u16, extra: &[&str]) -> String {
    let port = port.to_string();
    let args = [
        "scenario", "fanout", "-c", "10", "-r", "200", "-q", "1", "--port", &port, "-d", "2",
        "--drain", "1", "--json", "--quiet",
    ];
    let fan = run_bench(&[&args[..], extra].concat());
    check_sane(&fan, 11);
    assert_eq!(int_field(&fan, "received"), 10 * int_field(&fan, "acked"));
    fan
}

/// `--protocol 5` (and 3) against an in-process coremq whose
/// `client.connected` hook counts the connections of that version: a
/// fan-out at QoS 1 (acks with reason codes under MQTT 5) loses nothing,
/// and every client really spoke the level asked for.
#[test]
fn fanout_at_protocol_5_and_3_against_coremq() {
    use coremq::codec::ProtocolVersion;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    for (level, version) in [("5", ProtocolVersion::V5), ("3", ProtocolVersion::V31)] {
        let seen = Arc::new(AtomicU64::new(0));
        let mut hooks = coremq::Hooks::new();
        let counter = seen.clone();
        hooks.on_client_connected(move |c| {
            if c.version == version {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
        let b = common::start_with(common::config(2), hooks);
        let fan = fanout(b.addr.port(), &["--protocol", level]);
        assert_eq!(seen.load(Ordering::Relaxed), 11, "level {level}: {fan}");
    }
}

/// A rate-paced QoS 1 publisher whose window is full when its next message
/// is due (a window of 1 at 2000 msg/s: nearly every slot) waits for the
/// ack and catches up; it used to spin on the due slot without yielding, so
/// the acks were never read and the worker hung until the parent killed it
/// ("worker 0 gave no result").
#[test]
fn rate_paced_publisher_with_a_full_window_does_not_hang() {
    let b = BrokerProcess::start(1);
    let t0 = Instant::now();
    let fan = fanout(b.port, &["-r", "2000", "--inflight", "1"]);
    assert!(int_field(&fan, "acked") > 0, "{fan}");
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "took {:?}: {fan}",
        t0.elapsed()
    );
    b.stop();
}

#[test]
fn help_and_bad_arguments_exit_codes() {
    for help in [
        &[][..],
        &["--help"],
        &["-h"],
        &["help"],
        &["scenario", "--help"],
    ] {
        let (code, out, err) = run_tool(help);
        assert_eq!(code, Some(0), "{help:?}: {err}");
        assert!(out.contains("scenario"), "{help:?}: {out}");
    }
    let (code, out, _) = run_tool(&["pub", "--help"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("--broker-pid") && !out.contains("--worker-index"),
        "{out}"
    );
    for bad in [
        &["bogus"][..],
        &["scenario", "nope"],
        &["pub", "-q", "3"],
        &["pub", "--protocol", "6"],
        &["pub", "--whatever", "1"],
        &["--json"],
    ] {
        let (code, _, err) = run_tool(bad);
        assert_eq!(code, Some(2), "{bad:?}: {err}");
        assert!(!err.is_empty(), "{bad:?}: no message");
    }
}

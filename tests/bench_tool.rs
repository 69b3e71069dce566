//! End-to-end: `coremq-bench` against the `coremq` binary and against a real
//! Mosquitto, each on a free loopback port. Fails, not skips, where
//! /usr/sbin/mosquitto is not installed (`scripts/test.sh` installs it), and
//! where the workspace's `coremq-bench` binary has not been built
//! (`scripts/test.sh` builds it with `cargo build -p coremq-bench` first).

mod common;
use common::bench::{check_sane, int_field, run_bench, run_tool};
use common::binary::BrokerProcess;
use common::mosquitto_server::Mosquitto;
use std::time::{Duration, Instant};

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
    let b = Mosquitto::start();
    p2p(b.port, b.pid());
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

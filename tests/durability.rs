//! Durable storage, end to end: the `coremq` binary over real sockets is
//! killed (SIGKILL) or stopped (SIGTERM) and restarted on the same
//! `--data-dir`; persistent sessions (subscriptions, queued messages, the
//! unacknowledged window, QoS 2 ids awaiting PUBREL) and retained messages
//! must come back. With `storage.fsync = "always"` (the default) every ack
//! the broker sent before the kill promises the state it acknowledged.
//!
//! Also: the storage directory is locked against a second broker, sessions
//! move shards when `--cores` changes, MQTT 5 session expiry counts the
//! time the broker was down, and `coremq storage inspect|compact`.

mod common;
use common::binary::{storage_cli, BrokerProcess, TempDir};
use common::*;
use coremq::codec::{self, Ack, Packet, Properties, Publish, QoS, SubAckCode};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Quiet time after which a drain decides nothing more is coming.
const SETTLE: Duration = Duration::from_millis(400);

/// Connect clean_session=0, subscribe `filters` (each must be granted the
/// QoS asked for), and disconnect: an offline persistent session.
fn offline_session(addr: SocketAddr, id: &str, filters: &[(&str, QoS)]) {
    let (mut c, _) = Client::connect(addr, id, false);
    let codes = c.subscribe_many(filters);
    let want: Vec<SubAckCode> = filters
        .iter()
        .map(|(_, q)| SubAckCode::Granted(*q))
        .collect();
    assert_eq!(codes, want, "SUBACK of {id}");
    c.disconnect_wait();
}

/// Receive PUBLISHes, acknowledging each, until at least `expect` arrived
/// and then nothing for [`SETTLE`], or until `deadline` passes.
fn drain(c: &mut Client, expect: usize, deadline: Duration) -> Vec<Publish> {
    let end = Instant::now() + deadline;
    let mut got = Vec::new();
    while Instant::now() < end {
        let wait = if got.len() >= expect {
            SETTLE
        } else {
            end.saturating_duration_since(Instant::now())
        };
        match c.recv_within(wait) {
            Some(Packet::Publish(p)) => {
                c.ack(&p);
                got.push(p);
            }
            Some(_) => {}
            None => break,
        }
    }
    got
}

/// How many times each payload arrived.
fn counts(ps: &[Publish]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for p in ps {
        *m.entry(text(p)).or_insert(0) += 1;
    }
    m
}

/// A fresh connection with a new clean session subscribing `filter` gets
/// exactly the retained messages `want` (topic, payload), with RETAIN set.
fn assert_retained(addr: SocketAddr, filter: &str, want: &[(String, String)]) {
    let (mut c, _) = Client::connect(addr, "retained-reader", true);
    c.subscribe(filter, QoS::AtLeastOnce);
    let got = drain(&mut c, want.len(), WAIT);
    let mut got: Vec<(String, String)> = got
        .iter()
        .map(|p| {
            assert!(
                p.retain,
                "retained message {p:?} has RETAIN set [MQTT-3.3.1-8]"
            );
            (p.topic.to_string(), text(p))
        })
        .collect();
    got.sort();
    let mut want = want.to_vec();
    want.sort();
    assert_eq!(got, want, "retained messages for {filter}");
    c.disconnect();
}

// After SIGKILL every message the broker acknowledged to its publisher
// (PUBACK for QoS 1, PUBREC/PUBCOMP for QoS 2) for an offline persistent
// session is still there: the session comes back [MQTT-3.1.2-4] with
// session present [MQTT-3.2.2-2], the messages stored for it while it was
// disconnected [MQTT-3.1.2-5] are delivered, in order per topic
// [MQTT-4.6.0-6], and none twice: a QoS 2 message is delivered exactly once
// [MQTT-4.3.3-2] (and a subscriber that was offline all along has no reason
// to see a QoS 1 one twice either). Retained messages come back [MQTT-3.3.1-5]
// and are sent to a new subscription [MQTT-3.3.1-6].
#[test]
fn qos1_and_qos2_survive_sigkill() {
    const N: usize = 50;
    for cores in [1, 2] {
        let dir = TempDir::new("coremq-dur-qos");
        let b = BrokerProcess::start_in(&dir.path, cores, None);
        offline_session(b.addr(), "dur-sub", &[("t/#", QoS::ExactlyOnce)]);

        let (mut publisher, _) = Client::connect(b.addr(), "dur-pub", true);
        for i in 0..N {
            publisher.publish("t/a", format!("q1-{i}").as_bytes(), QoS::AtLeastOnce, false);
        }
        for i in 0..N {
            // Client::publish completes PUBREC / PUBREL / PUBCOMP.
            publisher.publish("t/b", format!("q2-{i}").as_bytes(), QoS::ExactlyOnce, false);
        }
        let retained: Vec<(String, String)> = (0..3)
            .map(|i| (format!("r/{i}"), format!("retained-{i}")))
            .collect();
        for (topic, payload) in &retained {
            publisher.publish(topic, payload.as_bytes(), QoS::AtLeastOnce, true);
        }
        // Every ack is in: kill without a clean stop.
        b.kill9();

        let b = BrokerProcess::start_in(&dir.path, cores, None);
        let (mut sub, present) = Client::connect(b.addr(), "dur-sub", false);
        assert!(
            present,
            "cores {cores}: session present after SIGKILL [MQTT-3.2.2-2]"
        );
        let got = drain(&mut sub, 2 * N, Duration::from_secs(20));
        let c = counts(&got);
        for i in 0..N {
            for k in [format!("q1-{i}"), format!("q2-{i}")] {
                assert_eq!(
                    c.get(&k).copied().unwrap_or(0),
                    1,
                    "cores {cores}: {k} delivered exactly once after SIGKILL; got {c:?}\nlog:\n{}",
                    b.log()
                );
            }
        }
        assert_eq!(got.len(), 2 * N, "cores {cores}: nothing else: {c:?}");
        for p in &got {
            let want = if text(p).starts_with("q1") {
                QoS::AtLeastOnce
            } else {
                QoS::ExactlyOnce
            };
            assert_eq!(p.qos, want, "cores {cores}: QoS of {p:?}");
        }
        // Ordered topics [MQTT-4.6.0-6]: each topic's messages in publish order.
        for (topic, prefix) in [("t/a", "q1-"), ("t/b", "q2-")] {
            let seq: Vec<String> = got
                .iter()
                .filter(|p| &*p.topic == topic)
                .map(text)
                .collect();
            let want: Vec<String> = (0..N).map(|i| format!("{prefix}{i}")).collect();
            assert_eq!(seq, want, "cores {cores}: order on {topic}");
        }
        // The subscription itself survived: a new message is routed to it.
        let (mut publisher, _) = Client::connect(b.addr(), "dur-pub", true);
        publisher.publish("t/c", b"after-restart", QoS::AtLeastOnce, false);
        let p = sub
            .recv_publish()
            .expect("subscription survived the restart");
        assert_eq!(text(&p), "after-restart");
        sub.ack(&p);

        assert_retained(b.addr(), "r/#", &retained);
        b.stop();
    }
}

// A message sent to a connected subscriber but not yet acknowledged is still
// owed after SIGKILL: on reconnect with clean_session=0 it is re-sent with
// its original packet identifier [MQTT-4.4.0-1] and DUP=1 [MQTT-3.3.1-1].
#[test]
fn window_mid_flight_resent_with_dup() {
    const N: usize = 10;
    const ACKED: usize = 4;
    let dir = TempDir::new("coremq-dur-window");
    let b = BrokerProcess::start_in(&dir.path, 1, None);
    let (mut sub, _) = Client::connect(b.addr(), "win-sub", false);
    assert_eq!(
        sub.subscribe("w/#", QoS::AtLeastOnce),
        SubAckCode::Granted(QoS::AtLeastOnce)
    );
    let (mut publisher, _) = Client::connect(b.addr(), "win-pub", true);
    for i in 0..N {
        publisher.publish("w/x", format!("w-{i}").as_bytes(), QoS::AtLeastOnce, false);
    }
    // N fits the inflight window (32 by default): all are on the wire.
    let sent: Vec<Publish> = (0..N)
        .map(|i| sub.recv_publish().unwrap_or_else(|| panic!("PUBLISH {i}")))
        .collect();
    for (i, p) in sent.iter().enumerate() {
        assert_eq!(text(p), format!("w-{i}"));
        assert!(!p.dup, "first delivery has DUP=0 [MQTT-3.3.1-2]");
    }
    for p in &sent[..ACKED] {
        sub.ack(p);
    }
    // The broker has read the PUBACKs once it answers a later PINGREQ.
    sub.ping();
    std::thread::sleep(Duration::from_millis(200));
    b.kill9();
    drop(sub);

    let b = BrokerProcess::start_in(&dir.path, 1, None);
    let (mut sub, present) = Client::connect(b.addr(), "win-sub", false);
    assert!(present, "session present after SIGKILL [MQTT-3.2.2-2]");
    let got = drain(&mut sub, N - ACKED, Duration::from_secs(10));
    let unacked = &sent[ACKED..];
    let resent: Vec<&Publish> = got
        .iter()
        .filter(|p| unacked.iter().any(|u| u.payload == p.payload))
        .collect();
    let resent_payloads: Vec<String> = resent.iter().map(|p| text(p)).collect();
    let want: Vec<String> = unacked.iter().map(text).collect();
    assert_eq!(
        resent_payloads,
        want,
        "each unacknowledged message re-sent once, in order [MQTT-4.4.0-1], got {got:?}\nlog:\n{}",
        b.log()
    );
    for (p, orig) in resent.iter().zip(unacked) {
        assert!(p.dup, "re-sent {p:?} has DUP=1 [MQTT-3.3.1-1]");
        assert_eq!(
            p.pkid, orig.pkid,
            "re-sent with its original packet identifier [MQTT-4.4.0-1]"
        );
        assert_eq!(p.qos, QoS::AtLeastOnce);
    }
    // A subscriber's PUBACK need not be on disk before the kill: a message
    // acknowledged just before it may come again (QoS 1 allows that).
    let again = got.len() - resent.len();
    eprintln!("window_mid_flight_resent_with_dup: {again} acknowledged message(s) re-sent");
    for p in got
        .iter()
        .filter(|p| !unacked.iter().any(|u| u.payload == p.payload))
    {
        assert!(
            sent[..ACKED].iter().any(|a| a.payload == p.payload),
            "unexpected message {p:?}"
        );
    }
    b.stop();
}

// A QoS 2 PUBLISH the broker answered with PUBREC is owned by the broker
// [MQTT-4.3.3-2]: after SIGKILL the publisher's session remembers the packet
// id awaiting PUBREL. A PUBREL then gets PUBCOMP [MQTT-4.3.3-2], a repeated
// PUBLISH with that id (DUP=1, as a client that never saw the PUBREC sends
// it) gets PUBREC again and is not delivered twice [MQTT-4.3.3-2]; each
// message reaches the subscriber exactly once.
#[test]
fn awaiting_pubrel_survives() {
    for cores in [1, 2] {
        let dir = TempDir::new("coremq-dur-rel");
        let b = BrokerProcess::start_in(&dir.path, cores, None);
        offline_session(b.addr(), "rel-sub", &[("rel/#", QoS::ExactlyOnce)]);

        // Two publishers, each with one QoS 2 message past PUBREC.
        let mut pubs = Vec::new();
        for (id, pkid) in [("rel-pub-a", 7u16), ("rel-pub-b", 9u16)] {
            let (mut c, _) = Client::connect(b.addr(), id, false);
            let payload = format!("once-{id}");
            c.send(&Packet::Publish(publish_packet(
                &format!("rel/{id}"),
                payload.as_bytes(),
                QoS::ExactlyOnce,
                pkid,
                false,
                false,
            )));
            let rec = c.recv_match(|p| matches!(p, Packet::PubRec(a) if a.pkid == pkid));
            assert!(rec.is_some(), "PUBREC {pkid} for {id}");
            pubs.push(c);
        }
        b.kill9();
        drop(pubs);

        let b = BrokerProcess::start_in(&dir.path, cores, None);
        let owed = [("rel-pub-a", 7u16), ("rel-pub-b", 9u16)];
        for (id, pkid) in owed {
            let (mut c, present) = Client::connect(b.addr(), id, false);
            assert!(
                present,
                "cores {cores}: {id}'s session present [MQTT-3.2.2-2]"
            );
            if id == "rel-pub-b" {
                // As if the PUBREC had been lost: the same PUBLISH again, DUP=1.
                c.send(&Packet::Publish(publish_packet(
                    &format!("rel/{id}"),
                    format!("once-{id}").as_bytes(),
                    QoS::ExactlyOnce,
                    pkid,
                    true,
                    false,
                )));
                let rec = c.recv_match(|p| matches!(p, Packet::PubRec(a) if a.pkid == pkid));
                assert!(rec.is_some(), "cores {cores}: PUBREC again for {pkid}");
            }
            c.send(&Packet::PubRel(Ack::new(pkid)));
            let comp = c.recv_match(|p| matches!(p, Packet::PubComp(a) if a.pkid == pkid));
            match comp {
                Some(Packet::PubComp(a)) => {
                    assert_eq!(
                        a.reason,
                        codec::Reason::SUCCESS,
                        "cores {cores}: PUBCOMP {pkid}"
                    )
                }
                other => panic!("cores {cores}: expected PUBCOMP {pkid}, got {other:?}"),
            }
            c.disconnect_wait();
        }

        let (mut sub, present) = Client::connect(b.addr(), "rel-sub", false);
        assert!(present, "cores {cores}: subscriber session present");
        let got = drain(&mut sub, 2, Duration::from_secs(10));
        let c = counts(&got);
        let want: BTreeMap<String, usize> = owed
            .iter()
            .map(|(id, _)| (format!("once-{id}"), 1))
            .collect();
        assert_eq!(
            c,
            want,
            "cores {cores}: each QoS 2 message delivered exactly once\nlog:\n{}",
            b.log()
        );
        b.stop();
    }
}

// Persistent sessions are homed by client id over the shards; restarting with
// another `--cores` moves each to its new home with its subscriptions and
// queued messages [MQTT-3.1.2-4], both ways (1 -> 2 after SIGTERM, 2 -> 1
// after SIGKILL).
#[test]
fn cores_change_moves_sessions() {
    const CLIENTS: usize = 20;
    let dir = TempDir::new("coremq-dur-cores");
    let ids: Vec<String> = (0..CLIENTS).map(|i| format!("mv-{i}")).collect();

    let queue = |addr: SocketAddr, round: &str| {
        let (mut p, _) = Client::connect(addr, "mv-pub", true);
        for i in 0..CLIENTS {
            p.publish(
                &format!("mv/{i}"),
                format!("{round}-{i}").as_bytes(),
                QoS::AtLeastOnce,
                false,
            );
        }
        p.publish(
            "mv/all",
            format!("{round}-all").as_bytes(),
            QoS::AtLeastOnce,
            false,
        );
        p.disconnect();
    };
    // `earlier`: the round before, whose messages were acknowledged before
    // the SIGKILL; a subscriber's PUBACK need not be on disk before it is
    // read, so those may come again (allowed at QoS 1), and are counted.
    let check = |b: &BrokerProcess, round: &str, earlier: Option<&str>, from: usize| {
        let mut again = 0;
        for (i, id) in ids.iter().enumerate() {
            let (mut c, present) = Client::connect(b.addr(), id, false);
            assert!(
                present,
                "{id}: session present after --cores {from} -> {} [MQTT-3.2.2-2]\nlog:\n{}",
                b.cores,
                b.log()
            );
            let got = drain(&mut c, 2, Duration::from_secs(10));
            let mut got: BTreeSet<String> = got.iter().map(text).collect();
            if let Some(e) = earlier {
                let old = [format!("{e}-{i}"), format!("{e}-all")];
                again += old.iter().filter(|o| got.remove(*o)).count();
            }
            let want: BTreeSet<String> = [format!("{round}-{i}"), format!("{round}-all")].into();
            assert_eq!(got, want, "{id} after --cores {from} -> {}", b.cores);
            c.disconnect_wait();
        }
        eprintln!(
            "--cores {from} -> {}: {again} acknowledged message(s) delivered again",
            b.cores
        );
    };

    let b = BrokerProcess::start_in(&dir.path, 1, None);
    for (i, id) in ids.iter().enumerate() {
        offline_session(
            b.addr(),
            id,
            &[
                (&format!("mv/{i}"), QoS::AtLeastOnce),
                ("mv/all", QoS::AtLeastOnce),
            ],
        );
    }
    queue(b.addr(), "a");
    b.stop();

    let b = BrokerProcess::start_in(&dir.path, 2, None);
    check(&b, "a", None, 1);
    queue(b.addr(), "b");
    b.kill9();

    let b = BrokerProcess::start_in(&dir.path, 1, None);
    check(&b, "b", Some("a"), 2);
    b.stop();
}

// SIGTERM is a clean stop (exit 0) that keeps everything; the broker says at
// start what it replayed; replaying twice (stop, start, stop, start) does not
// duplicate anything; what a reconnected session acknowledged stays
// acknowledged after a clean stop [MQTT-3.1.2-4], [MQTT-3.1.2-5].
#[test]
fn clean_stop_and_restart() {
    for cores in [1, 2] {
        let dir = TempDir::new("coremq-dur-clean");
        let b = BrokerProcess::start_in(&dir.path, cores, None);
        offline_session(b.addr(), "cs-sub", &[("cs/#", QoS::AtLeastOnce)]);
        let (mut p, _) = Client::connect(b.addr(), "cs-pub", true);
        for i in 0..10 {
            p.publish(
                "cs/q",
                format!("cs-{i}").as_bytes(),
                QoS::AtLeastOnce,
                false,
            );
        }
        p.publish("cs/ret", b"kept", QoS::AtLeastOnce, true);
        p.disconnect();
        b.stop();

        let b = BrokerProcess::start_in(&dir.path, cores, None);
        assert!(
            b.wait_log(WAIT, |l| l
                .lines()
                .any(|l| l.contains("storage") && l.contains("replayed"))),
            "cores {cores}: a 'storage: ... replayed ...' line at start; log:\n{}",
            b.log()
        );
        b.stop();

        let b = BrokerProcess::start_in(&dir.path, cores, None);
        let (mut sub, present) = Client::connect(b.addr(), "cs-sub", false);
        assert!(
            present,
            "cores {cores}: session present after two clean restarts"
        );
        let got = drain(&mut sub, 11, Duration::from_secs(10));
        let mut want: Vec<String> = (0..10).map(|i| format!("cs-{i}")).collect();
        want.push("kept".into());
        assert_eq!(
            got.iter().map(text).collect::<Vec<_>>(),
            want,
            "cores {cores}: each queued message once, in order, after two replays"
        );
        sub.disconnect_wait();
        assert_retained(b.addr(), "cs/ret", &[("cs/ret".into(), "kept".into())]);
        b.stop();

        // Acknowledged before the clean stop: not delivered again.
        let b = BrokerProcess::start_in(&dir.path, cores, None);
        let (mut sub, present) = Client::connect(b.addr(), "cs-sub", false);
        assert!(present, "cores {cores}: session still present");
        if let Some(p) = sub.recv_within(Duration::from_millis(500)) {
            panic!("cores {cores}: acknowledged messages are gone; got {p:?}");
        }
        sub.disconnect_wait();
        b.stop();
    }
}

fn expiry(secs: u32) -> Properties {
    Properties {
        session_expiry_interval: Some(secs),
        ..Default::default()
    }
}

// MQTT 5 Session Expiry Interval (§3.1.2.11.2): the session is kept for that
// long after the network connection closes [MQTT-3.1.2-23], and the time the
// broker was stopped counts: a 2 s session is gone after 3 s of downtime
// (session present 0 [MQTT-3.2.2-2] / v5 §3.2.2.1.1), a 3600 s one is not.
#[test]
fn session_expiry_counts_downtime() {
    let dir = TempDir::new("coremq-dur-expiry");
    let b = BrokerProcess::start_in(&dir.path, 1, None);
    for (id, secs) in [("se-short", 2), ("se-long", 3600)] {
        let (mut c, _) = Client::connect5(b.addr(), id, true, expiry(secs));
        assert_eq!(
            c.subscribe("se/#", QoS::AtLeastOnce),
            SubAckCode::Granted(QoS::AtLeastOnce)
        );
        c.disconnect_wait();
    }
    b.stop();
    std::thread::sleep(Duration::from_secs(3));

    let b = BrokerProcess::start_in(&dir.path, 1, None);
    let (c, ack) = Client::connect5(b.addr(), "se-long", false, expiry(3600));
    assert!(
        ack.session_present,
        "a 3600 s session survives 3 s of downtime; log:\n{}",
        b.log()
    );
    c.disconnect_wait();
    let (c, ack) = Client::connect5(b.addr(), "se-short", false, expiry(2));
    assert!(
        !ack.session_present,
        "a 2 s session expired while the broker was down (3 s)"
    );
    c.disconnect_wait();
    b.stop();
}

// The storage directory is locked: a second broker on it exits 1 saying it
// is in use, and the first keeps serving; once the first stopped, a new
// broker starts on it.
#[test]
fn second_broker_on_same_dir_refused() {
    let dir = TempDir::new("coremq-dur-lock");
    let b = BrokerProcess::start_in(&dir.path, 1, None);
    assert!(
        dir.path.join("LOCK").exists(),
        "DIR/LOCK exists while a broker runs"
    );
    let (code, log) = BrokerProcess::run_expect_exit(&dir.path, 1, &[], None);
    assert_eq!(
        code,
        Some(1),
        "a second broker on the same dir exits 1; its output:\n{log}"
    );
    assert!(
        log.contains("in use"),
        "the error says the dir is in use:\n{log}"
    );
    let (mut c, _) = Client::connect(b.addr(), "lock-check", true);
    c.ping();
    c.disconnect();
    b.stop();
    let b = BrokerProcess::start_in(&dir.path, 1, None);
    b.kill9();
    // A SIGKILLed broker's lock dies with it.
    let b = BrokerProcess::start_in(&dir.path, 1, None);
    b.stop();
}

/// (client id, sorted subscriptions, queued, inflight, awaiting_rel)
type SessionRow = (String, Vec<String>, u64, u64, u64);

/// The sessions and retained messages of `storage inspect DIR --json`.
fn inspect(dir: &std::path::Path) -> (serde_json::Value, Vec<SessionRow>, Vec<(String, u64)>) {
    let d = dir.to_str().unwrap();
    let (code, out, err) = storage_cli(&["inspect", d, "--json"]);
    assert_eq!(
        code,
        Some(0),
        "storage inspect --json exits 0; stderr:\n{err}"
    );
    let v: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("storage inspect --json prints JSON ({e}):\n{out}"));
    let num = |x: &serde_json::Value, k: &str| {
        x[k].as_u64()
            .unwrap_or_else(|| panic!("{k} is a number in {x}"))
    };
    assert!(v["generation"].is_u64(), "generation in {v}");
    assert!(v["shards"].is_u64(), "shards in {v}");
    let segments = v["segments"].as_array().expect("segments array");
    for s in segments {
        num(s, "shard");
        num(s, "bytes");
        assert!(s["file"].is_string(), "segment file in {s}");
    }
    let mut sessions: Vec<SessionRow> = v["sessions"]
        .as_array()
        .expect("sessions array")
        .iter()
        .map(|s| {
            let mut subs: Vec<String> = s["subscriptions"]
                .as_array()
                .expect("subscriptions array")
                .iter()
                .map(|f| f.as_str().expect("filter string").to_string())
                .collect();
            subs.sort();
            (
                s["client_id"].as_str().expect("client_id").to_string(),
                subs,
                num(s, "queued"),
                num(s, "inflight"),
                num(s, "awaiting_rel"),
            )
        })
        .collect();
    sessions.sort();
    let mut retained: Vec<(String, u64)> = v["retained"]
        .as_array()
        .expect("retained array")
        .iter()
        .map(|r| {
            (
                r["topic"].as_str().expect("topic").to_string(),
                num(r, "bytes"),
            )
        })
        .collect();
    retained.sort();
    (v, sessions, retained)
}

// `coremq storage inspect DIR [--json]` shows the sessions and retained
// messages of a stopped broker's directory; `coremq storage compact DIR`
// rewrites the log keeping them; both refuse ("in use", exit 1) while a
// broker runs on DIR; the broker starts on the compacted log with its state.
#[test]
fn inspect_and_compact_cli() {
    let dir = TempDir::new("coremq-dur-cli");
    let d = dir.path.to_str().unwrap().to_string();
    let b = BrokerProcess::start_in(&dir.path, 2, None);
    offline_session(
        b.addr(),
        "insp-a",
        &[("i/a", QoS::AtLeastOnce), ("i/all", QoS::AtLeastOnce)],
    );
    offline_session(b.addr(), "insp-b", &[("i/b/#", QoS::ExactlyOnce)]);
    let (mut p, _) = Client::connect(b.addr(), "insp-pub", true);
    for i in 0..5 {
        p.publish("i/a", format!("a-{i}").as_bytes(), QoS::AtLeastOnce, false);
    }
    p.publish("i/all", b"to-a", QoS::AtLeastOnce, false);
    for i in 0..3 {
        p.publish(
            "i/b/x",
            format!("b-{i}").as_bytes(),
            QoS::ExactlyOnce,
            false,
        );
    }
    p.publish("ret/one", b"12345", QoS::AtLeastOnce, true);
    p.publish("ret/two", b"1234567890", QoS::AtLeastOnce, true);
    p.disconnect();
    // A persistent publisher with a QoS 2 message awaiting PUBREL, on a topic
    // nobody subscribed.
    let (mut q, _) = Client::connect(b.addr(), "insp-q2", false);
    q.send(&Packet::Publish(publish_packet(
        "none/x",
        b"q2",
        QoS::ExactlyOnce,
        3,
        false,
        false,
    )));
    assert!(q
        .recv_match(|p| matches!(p, Packet::PubRec(a) if a.pkid == 3))
        .is_some());
    q.disconnect_wait();

    // While the broker runs, both commands refuse.
    for args in [
        vec!["inspect", d.as_str(), "--json"],
        vec!["compact", d.as_str()],
    ] {
        let (code, out, err) = storage_cli(&args);
        assert_eq!(
            code,
            Some(1),
            "storage {args:?} refuses while a broker runs:\n{out}{err}"
        );
        assert!(
            format!("{out}{err}").contains("in use"),
            "storage {args:?} says the dir is in use:\n{out}{err}"
        );
    }
    b.stop();

    let (v, sessions, retained) = inspect(&dir.path);
    eprintln!("inspect before compact: {v}");
    assert_eq!(v["shards"].as_u64(), Some(2), "shards: {v}");
    let want_sessions: Vec<SessionRow> = vec![
        ("insp-a".into(), vec!["i/a".into(), "i/all".into()], 6, 0, 0),
        ("insp-b".into(), vec!["i/b/#".into()], 3, 0, 0),
        ("insp-q2".into(), vec![], 0, 0, 1),
    ];
    // Offline messages may be counted as queued or (the window the session
    // gets first on reconnect) as inflight: compare their sum.
    let norm = |rows: &[SessionRow]| -> Vec<(String, Vec<String>, u64, u64)> {
        rows.iter()
            .map(|(id, subs, q, i, r)| (id.clone(), subs.clone(), q + i, *r))
            .collect()
    };
    assert_eq!(norm(&sessions), norm(&want_sessions), "sessions in {v}");
    // "bytes": taken to be at least the payload's size (5 and 10).
    let topics: Vec<&str> = retained.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(topics, ["ret/one", "ret/two"], "retained in {v}");
    assert!(
        retained[0].1 >= 5 && retained[1].1 >= 10,
        "retained bytes in {v}"
    );

    let (code, out, err) = storage_cli(&["inspect", &d]);
    assert_eq!(code, Some(0), "storage inspect (table) exits 0:\n{err}");
    for id in ["insp-a", "insp-b", "insp-q2", "ret/one", "ret/two"] {
        assert!(out.contains(id), "the table names {id}:\n{out}");
    }

    let (code, out, err) = storage_cli(&["compact", &d]);
    assert_eq!(code, Some(0), "storage compact exits 0:\n{out}{err}");
    let (v2, sessions2, retained2) = inspect(&dir.path);
    eprintln!("inspect after compact: {v2}");
    assert_eq!(sessions2, sessions, "compact keeps the sessions: {v2}");
    assert_eq!(
        retained2, retained,
        "compact keeps the retained messages: {v2}"
    );

    let b = BrokerProcess::start_in(&dir.path, 2, None);
    let (mut a, present) = Client::connect(b.addr(), "insp-a", false);
    assert!(present, "insp-a present after compact");
    let got: Vec<String> = drain(&mut a, 6, Duration::from_secs(10))
        .iter()
        .map(text)
        .collect();
    let mut want: Vec<String> = (0..5).map(|i| format!("a-{i}")).collect();
    want.push("to-a".into());
    assert_eq!(got, want, "insp-a's queue after compact");
    let (mut bb, present) = Client::connect(b.addr(), "insp-b", false);
    assert!(present, "insp-b present after compact");
    let got: Vec<String> = drain(&mut bb, 3, Duration::from_secs(10))
        .iter()
        .map(text)
        .collect();
    assert_eq!(
        got,
        vec!["b-0", "b-1", "b-2"],
        "insp-b's queue after compact"
    );
    let (mut q, present) = Client::connect(b.addr(), "insp-q2", false);
    assert!(present, "insp-q2 present after compact");
    q.send(&Packet::PubRel(Ack::new(3)));
    assert!(
        q.recv_match(|p| *p == Packet::PubComp(Ack::new(3)))
            .is_some(),
        "PUBCOMP for the id awaiting PUBREL [MQTT-4.3.3-2]"
    );
    assert_retained(
        b.addr(),
        "ret/#",
        &[
            ("ret/one".into(), "12345".into()),
            ("ret/two".into(), "1234567890".into()),
        ],
    );
    b.stop();
}

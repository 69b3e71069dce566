//! Sessions: offline queueing, clean session, expiry, takeover, the inflight
//! window, queue overflow, retry and resend on reconnect, ordering. Each test
//! runs with 1 and 2 shards; with 2 the publisher is homed on shard 0 and the
//! subscriber on shard 1.

mod common;
use common::*;
use coremq::codec::Ack;
use coremq::codec::{Packet, QoS};
use coremq::config::QueueDropPolicy;
use coremq::{Config, Hooks};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const SHORT: Duration = Duration::from_millis(300);

fn broker(cores: usize, edit: impl FnOnce(&mut Config)) -> TestBroker {
    let mut cfg = config(cores);
    edit(&mut cfg);
    start_with(cfg, Hooks::new())
}

/// A clean-session subscriber homed with the subscriber under test: once it
/// has received a publisher's messages, so has that shard (mailboxes are FIFO
/// and a shard fans a message out to all its sessions at once).
fn witness(b: &TestBroker, cores: usize, filter: &str) -> Client {
    let (mut w, _) = Client::connect(b.addr, &b.id_on("witness", cores - 1), true);
    w.subscribe(filter, QoS::AtMostOnce);
    w
}

// [MQTT-3.1.2-4]/[MQTT-3.1.2-5]: a clean-session-0 session survives the
// disconnect; QoS 1/2 messages published meanwhile are kept and delivered in
// order on reconnect, with session present [MQTT-3.2.2-2].
#[test]
fn persistent_session_offline_delivery() {
    each_cores(|cores| {
        let b = start(cores);
        let id = b.id_on("sub", cores - 1);
        let (mut sub, present) = Client::connect(b.addr, &id, false);
        assert!(!present);
        sub.subscribe("off/t", QoS::AtLeastOnce);
        sub.disconnect_wait();

        let mut w = witness(&b, cores, "off/t");
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        let sent = [
            ("m1", QoS::AtLeastOnce),
            ("m2", QoS::ExactlyOnce),
            ("m3", QoS::AtLeastOnce),
            ("m4", QoS::ExactlyOnce),
        ];
        for (payload, qos) in sent {
            publ.publish("off/t", payload.as_bytes(), qos, false);
        }
        w.recv_acked(sent.len());

        let (mut sub, present) = Client::connect(b.addr, &id, false);
        assert!(present, "cores {cores}: session present");
        let got = sub.recv_acked(sent.len());
        let payloads: Vec<String> = got.iter().map(text).collect();
        assert_eq!(payloads, ["m1", "m2", "m3", "m4"], "cores {cores}");
        // Subscription QoS 1 caps them all at QoS 1; queued, never sent: DUP=0.
        assert!(
            got.iter().all(|p| p.qos == QoS::AtLeastOnce && !p.dup),
            "{got:?}"
        );
        sub.expect_silence(SHORT);
    });
}

// session.store_qos0 decides whether QoS 0 messages are queued for an
// offline persistent session (counter dropped_qos0_offline when not).
#[test]
fn store_qos0_true_queues_offline_qos0_false_drops() {
    each_cores(|cores| {
        for store in [true, false] {
            let b = broker(cores, |c| c.session.store_qos0 = store);
            let id = b.id_on("sub", cores - 1);
            let (mut sub, _) = Client::connect(b.addr, &id, false);
            sub.subscribe("q0/t", QoS::AtLeastOnce);
            sub.disconnect_wait();

            let mut w = witness(&b, cores, "q0/t");
            let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
            publ.publish("q0/t", b"zero-a", QoS::AtMostOnce, false);
            publ.publish("q0/t", b"zero-b", QoS::AtMostOnce, false);
            publ.publish("q0/t", b"one", QoS::AtLeastOnce, false);
            w.recv_acked(3);

            let (mut sub, present) = Client::connect(b.addr, &id, false);
            assert!(present);
            let want: &[&str] = if store {
                &["zero-a", "zero-b", "one"]
            } else {
                &["one"]
            };
            let got = sub.recv_acked(want.len());
            let payloads: Vec<String> = got.iter().map(text).collect();
            assert_eq!(payloads, want, "cores {cores}, store_qos0 {store}");
            sub.expect_silence(SHORT);
            let dropped = if store { 0 } else { 2 };
            let m = b.wait_metrics(|m| m.dropped_qos0_offline >= dropped);
            assert_eq!(
                m.dropped_qos0_offline, dropped,
                "cores {cores}, store_qos0 {store}"
            );
        }
    });
}

// [MQTT-3.1.2-6]: clean session 1 discards the previous session (subscriptions
// and queued messages) and its own session ends with the connection; a later
// clean-session-0 connect finds no session [MQTT-3.2.2-1].
#[test]
fn clean_session_discards_state() {
    each_cores(|cores| {
        let b = start(cores);
        let id = b.id_on("sub", cores - 1);
        let (mut sub, _) = Client::connect(b.addr, &id, false);
        sub.subscribe("cs/t", QoS::AtLeastOnce);
        sub.disconnect_wait();
        let mut w = witness(&b, cores, "cs/t");
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        publ.publish("cs/t", b"queued", QoS::AtLeastOnce, false);
        w.recv_acked(1);
        assert_eq!(b.metrics().dropped_session_discarded, 0);

        let (mut sub, present) = Client::connect(b.addr, &id, true);
        assert!(
            !present,
            "clean session 1 never has a session present [MQTT-3.2.2-1]"
        );
        publ.publish("cs/t", b"after", QoS::AtLeastOnce, false);
        sub.expect_silence(SHORT);
        let m = b.wait_metrics(|m| m.dropped_session_discarded >= 1);
        assert_eq!(m.dropped_session_discarded, 1, "cores {cores}");
        sub.subscribe("cs/t", QoS::AtLeastOnce);
        sub.disconnect_wait();

        // The clean session (and its subscription) ended with its connection.
        let (mut sub, present) = Client::connect(b.addr, &id, false);
        assert!(
            !present,
            "cores {cores}: clean 0 after clean 1 is a new session"
        );
        publ.publish("cs/t", b"later", QoS::AtLeastOnce, false);
        sub.expect_silence(SHORT);
    });
}

// session.expiry_s: an offline persistent session is discarded after it
// (counter sessions_expired); a reconnect within it resumes and re-arms.
#[test]
fn session_expiry() {
    each_cores(|cores| {
        let b = broker(cores, |c| c.session.expiry_s = 1);
        let id = b.id_on("sub", cores - 1);
        let (mut sub, _) = Client::connect(b.addr, &id, false);
        sub.subscribe("ex/t", QoS::AtLeastOnce);
        sub.disconnect_wait();
        let (sub, present) = Client::connect(b.addr, &id, false);
        assert!(present, "resumed within expiry");
        let disconnected = Instant::now();
        sub.disconnect_wait();

        std::thread::sleep(Duration::from_millis(1500));
        let m = b.wait_metrics(|m| m.sessions_expired >= 1);
        assert_eq!(m.sessions_expired, 1, "cores {cores}");
        assert!(disconnected.elapsed() >= Duration::from_secs(1));
        let (mut sub, present) = Client::connect(b.addr, &id, false);
        assert!(!present, "cores {cores}: expired session is gone");
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        publ.publish("ex/t", b"x", QoS::AtLeastOnce, false);
        sub.expect_silence(SHORT);
    });
}

// [MQTT-3.1.4-2]: a second connection with the same client id closes the
// first; the session, with its subscriptions and unacknowledged messages,
// passes on. QoS 1 messages published throughout the takeover are all
// delivered to one connection or the other.
#[test]
fn takeover_keeps_session_and_loses_nothing() {
    const N: usize = 40;
    each_cores(|cores| {
        let b = start(cores);
        let id = b.id_on("sub", cores - 1);
        let (mut a, _) = Client::connect(b.addr, &id, false);
        a.subscribe("tk/t", QoS::AtLeastOnce);
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);

        let mut seen = BTreeSet::new();
        std::thread::scope(|s| {
            s.spawn(move || {
                for n in 0..N {
                    publ.publish("tk/t", format!("{n}").as_bytes(), QoS::AtLeastOnce, false);
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
            for p in a.recv_acked(10) {
                seen.insert(text(&p));
            }
            let (mut bc, present) = Client::connect(b.addr, &id, false);
            assert!(present, "cores {cores}: session passes on");
            // The first connection is closed; what it still had is read (not acked).
            let end = Instant::now() + WAIT;
            while let Some(p) = a.recv_within(Duration::from_millis(100)) {
                if let Packet::Publish(p) = p {
                    seen.insert(text(&p));
                }
                assert!(Instant::now() < end, "first connection not closed");
            }
            assert!(a.closed(), "first connection closed [MQTT-3.1.4-2]");
            let end = Instant::now() + WAIT;
            while seen.len() < N && Instant::now() < end {
                let Some(p) = bc.recv_publish() else { break };
                bc.ack(&p);
                seen.insert(text(&p));
            }
            bc.expect_silence(Duration::from_millis(100));
        });
        let want: BTreeSet<String> = (0..N).map(|n| n.to_string()).collect();
        assert_eq!(
            seen, want,
            "cores {cores}: messages lost around the takeover"
        );
        assert_eq!(b.wait_metrics(|m| m.takeovers >= 1).takeovers, 1);
    });
}

// session.inflight_window = 2: a client that does not acknowledge gets two
// messages; each PUBACK releases the next, in order [MQTT-4.6.0-2].
#[test]
fn inflight_window_limits_unacked() {
    each_cores(|cores| {
        let b = broker(cores, |c| c.session.inflight_window = 2);
        let (mut sub, _) = Client::connect(b.addr, &b.id_on("sub", cores - 1), true);
        sub.subscribe("w/t", QoS::AtLeastOnce);
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        for n in 0..5 {
            publ.publish("w/t", format!("{n}").as_bytes(), QoS::AtLeastOnce, false);
        }
        let mut unacked: Vec<_> = (0..2)
            .map(|_| sub.recv_publish().expect("window"))
            .collect();
        assert_eq!(unacked.iter().map(text).collect::<Vec<_>>(), ["0", "1"]);
        sub.expect_silence(SHORT);
        for next in 2..5 {
            let oldest = unacked.remove(0);
            sub.ack(&oldest);
            let p = sub.recv_publish().expect("released by PUBACK");
            assert_eq!(text(&p), next.to_string(), "cores {cores}");
            unacked.push(p);
            sub.expect_silence(Duration::from_millis(100));
        }
        for p in unacked {
            sub.ack(&p);
        }
        sub.expect_silence(SHORT);
    });
}

// session.max_mqueue_len = 3 and mqueue_drop: "oldest" keeps the newest
// three, "newest" keeps the first three; each drop is counted.
#[test]
fn mqueue_overflow_drop_policies() {
    each_cores(|cores| {
        for (policy, want) in [
            (QueueDropPolicy::Oldest, ["m3", "m4", "m5"]),
            (QueueDropPolicy::Newest, ["m1", "m2", "m3"]),
        ] {
            let b = broker(cores, |c| {
                c.session.max_mqueue_len = 3;
                c.session.mqueue_drop = policy;
            });
            let id = b.id_on("sub", cores - 1);
            let (mut sub, _) = Client::connect(b.addr, &id, false);
            sub.subscribe("mq/t", QoS::AtLeastOnce);
            sub.disconnect_wait();
            let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
            for n in 1..=5 {
                publ.publish("mq/t", format!("m{n}").as_bytes(), QoS::AtLeastOnce, false);
            }
            let m = b.wait_metrics(|m| m.dropped_queue_full >= 2);
            assert_eq!(m.dropped_queue_full, 2, "cores {cores}, {policy:?}");
            let (mut sub, present) = Client::connect(b.addr, &id, false);
            assert!(present);
            let got: Vec<String> = sub.recv_acked(3).iter().map(text).collect();
            assert_eq!(got, want, "cores {cores}, {policy:?}");
            sub.expect_silence(SHORT);
        }
    });
}

// [MQTT-4.4.0-1] / §4.4 with session.retry_interval_s = 1: an unacknowledged
// PUBLISH is re-sent with DUP=1 [MQTT-3.3.1-1] and the same packet id; an
// unanswered PUBREL is re-sent too; acknowledged ones are not.
#[test]
fn retry_resends_unacked_with_dup() {
    each_cores(|cores| {
        let b = broker(cores, |c| c.session.retry_interval_s = 1);
        let (mut sub, _) = Client::connect(b.addr, &b.id_on("sub", cores - 1), true);
        sub.subscribe_many(&[("r/1", QoS::AtLeastOnce), ("r/2", QoS::ExactlyOnce)]);
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);

        publ.publish("r/1", b"one", QoS::AtLeastOnce, false);
        let first = sub.recv_publish().expect("PUBLISH");
        assert!(!first.dup);
        let sent = Instant::now();
        let again = sub
            .recv_publish()
            .expect("re-sent after the retry interval");
        assert!(
            sent.elapsed() >= Duration::from_millis(700),
            "re-sent too early: {:?}",
            sent.elapsed()
        );
        assert!(again.dup, "DUP=1 on re-send [MQTT-3.3.1-1]");
        assert_eq!(
            (again.pkid, again.qos, text(&again)),
            (first.pkid, QoS::AtLeastOnce, "one".into())
        );
        sub.ack(&again);
        let m = b.wait_metrics(|m| m.publish_resent >= 1);
        assert!(m.publish_resent >= 1);

        // QoS 2: PUBREC answered with PUBREL; without PUBCOMP the PUBREL is re-sent.
        publ.publish("r/2", b"two", QoS::ExactlyOnce, false);
        let p = sub.recv_publish().expect("PUBLISH");
        sub.send(&Packet::PubRec(Ack::new(p.pkid)));
        assert_eq!(sub.recv(), Some(Packet::PubRel(Ack::new(p.pkid))));
        assert_eq!(
            sub.recv(),
            Some(Packet::PubRel(Ack::new(p.pkid))),
            "PUBREL re-sent"
        );
        sub.send(&Packet::PubComp(Ack::new(p.pkid)));
        // Everything acknowledged: no more re-sends.
        sub.expect_silence(Duration::from_millis(1300));
    });
}

// [MQTT-4.4.0-1]: when a persistent session reconnects, unacknowledged
// PUBLISH packets are re-sent with DUP=1 and their original packet ids, and
// unanswered PUBRELs are re-sent (the QoS 2 PUBLISH past PUBREC is not).
#[test]
fn reconnect_resends_unacked_publish_and_pubrel() {
    each_cores(|cores| {
        let b = broker(cores, |c| c.session.retry_interval_s = 0);
        let id = b.id_on("sub", cores - 1);
        let (mut sub, _) = Client::connect(b.addr, &id, false);
        sub.subscribe("rc/+", QoS::ExactlyOnce);
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        publ.publish("rc/1", b"one", QoS::AtLeastOnce, false);
        publ.publish("rc/2", b"two", QoS::ExactlyOnce, false);
        let p1 = sub.recv_publish().expect("QoS 1");
        let p2 = sub.recv_publish().expect("QoS 2");
        assert_eq!((text(&p1).as_str(), p1.qos), ("one", QoS::AtLeastOnce));
        assert_eq!((text(&p2).as_str(), p2.qos), ("two", QoS::ExactlyOnce));
        sub.send(&Packet::PubRec(Ack::new(p2.pkid)));
        assert_eq!(sub.recv(), Some(Packet::PubRel(Ack::new(p2.pkid))));
        sub.disconnect_wait(); // no PUBACK for p1, no PUBCOMP for p2

        let (mut sub, present) = Client::connect(b.addr, &id, false);
        assert!(present);
        match sub.recv() {
            Some(Packet::Publish(p)) => {
                assert!(p.dup, "DUP=1 on re-send");
                assert_eq!(
                    (p.pkid, p.qos, text(&p)),
                    (p1.pkid, QoS::AtLeastOnce, "one".into())
                );
                sub.ack(&p);
            }
            other => panic!("cores {cores}: expected the re-sent PUBLISH, got {other:?}"),
        }
        assert_eq!(
            sub.recv(),
            Some(Packet::PubRel(Ack::new(p2.pkid))),
            "PUBREL re-sent"
        );
        sub.send(&Packet::PubComp(Ack::new(p2.pkid)));
        sub.expect_silence(SHORT);
        // Completed: a further reconnect re-sends nothing.
        sub.disconnect_wait();
        let (mut sub, present) = Client::connect(b.addr, &id, false);
        assert!(present);
        sub.expect_silence(SHORT);
    });
}

// [MQTT-4.6.0-2]/§4.6: 200 QoS 1 messages from one publisher reach a
// subscriber on another shard in the order they were published.
#[test]
fn ordering_200_qos1_across_shards() {
    const N: usize = 200;
    each_cores(|cores| {
        let b = start(cores);
        let (mut sub, _) = Client::connect(b.addr, &b.id_on("sub", cores - 1), true);
        sub.subscribe("ord/t", QoS::AtLeastOnce);
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        std::thread::scope(|s| {
            s.spawn(move || {
                for n in 0..N {
                    publ.publish("ord/t", format!("{n}").as_bytes(), QoS::AtLeastOnce, false);
                }
            });
            for n in 0..N {
                let p = sub.recv_publish().unwrap_or_else(|| panic!("message {n}"));
                assert_eq!(text(&p), n.to_string(), "cores {cores}: out of order");
                sub.ack(&p);
            }
        });
        sub.expect_silence(Duration::from_millis(100));
    });
}

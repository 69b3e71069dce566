//! QoS: the downgrade table, QoS 2 exactly-once in both directions,
//! overlapping subscriptions, `$` topics, SUBACK failures, unsubscribe and
//! cross-shard fan-out. Each test runs with 1 and 2 shards; with 2 the
//! publisher is homed on shard 0 and the subscriber on shard 1.

mod common;
use common::*;
use coremq::codec::Ack;
use coremq::codec::{Packet, QoS, SubAckCode};
use std::collections::BTreeSet;
use std::time::Duration;

const QOS: [QoS; 3] = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];
const SHORT: Duration = Duration::from_millis(300);

// [MQTT-3.8.4-6] / §4.3: the delivered QoS is the minimum of the PUBLISH QoS
// and the granted subscription QoS, for all nine pairs.
#[test]
fn downgrade_table_all_nine_pairs() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut sub, _) = Client::connect(b.addr, &b.id_on("sub", cores - 1), true);
        for sq in QOS {
            let f = format!("dg/{}", sq as u8);
            assert_eq!(sub.subscribe(&f, sq), SubAckCode::Granted(sq));
        }
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        for pq in QOS {
            for sq in QOS {
                let payload = format!("p{}s{}", pq as u8, sq as u8);
                publ.publish(&format!("dg/{}", sq as u8), payload.as_bytes(), pq, false);
                let p = sub.recv_publish().expect("delivered");
                assert_eq!(text(&p), payload, "cores {cores}");
                assert_eq!(p.qos, pq.min(sq), "{payload}, cores {cores}");
                assert_eq!(p.pkid == 0, p.qos == QoS::AtMostOnce, "{payload}");
                assert!(!p.dup && !p.retain, "{payload}");
                sub.ack(&p);
            }
        }
        sub.expect_silence(SHORT);
    });
}

// [MQTT-4.3.3-2]: a re-sent QoS 2 PUBLISH (DUP=1, same packet id) before
// PUBREL is acknowledged with PUBREC again but not delivered again; after
// PUBREL/PUBCOMP the packet id is free and names a new message.
#[test]
fn qos2_inbound_exactly_once() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut sub, _) = Client::connect(b.addr, &b.id_on("sub", cores - 1), true);
        sub.subscribe("x2/t", QoS::ExactlyOnce);
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);

        let first = publish_packet("x2/t", b"first", QoS::ExactlyOnce, 7, false, false);
        publ.send(&Packet::Publish(first));
        assert_eq!(publ.recv(), Some(Packet::PubRec(Ack::new(7))));
        let again = publish_packet("x2/t", b"first", QoS::ExactlyOnce, 7, true, false);
        publ.send(&Packet::Publish(again.clone()));
        assert_eq!(publ.recv(), Some(Packet::PubRec(Ack::new(7))));
        publ.send(&Packet::Publish(again));
        assert_eq!(publ.recv(), Some(Packet::PubRec(Ack::new(7))));

        let p = sub.recv_publish().expect("delivered once");
        assert_eq!(text(&p), "first");
        assert_eq!(p.qos, QoS::ExactlyOnce);
        sub.ack(&p);
        sub.expect_silence(SHORT);
        let m = b.wait_metrics(|m| m.qos2_duplicates >= 2);
        assert_eq!(m.qos2_duplicates, 2, "cores {cores}");

        publ.send(&Packet::PubRel(Ack::new(7)));
        assert_eq!(publ.recv(), Some(Packet::PubComp(Ack::new(7))));

        // The id is released: the same id is a new message now.
        let second = publish_packet("x2/t", b"second", QoS::ExactlyOnce, 7, false, false);
        publ.send(&Packet::Publish(second));
        assert_eq!(publ.recv(), Some(Packet::PubRec(Ack::new(7))));
        let p = sub.recv_publish().expect("new message with a reused id");
        assert_eq!(text(&p), "second");
        sub.ack(&p);
        publ.send(&Packet::PubRel(Ack::new(7)));
        assert_eq!(publ.recv(), Some(Packet::PubComp(Ack::new(7))));
        sub.expect_silence(SHORT);
        assert_eq!(b.metrics().qos2_duplicates, 2);
    });
}

// §4.3.3 outbound: PUBLISH → PUBREC → PUBREL → PUBCOMP. With a window of one
// the next message waits until PUBCOMP completes the flow [MQTT-4.3.3-1].
#[test]
fn qos2_outbound_flow() {
    each_cores(|cores| {
        let mut cfg = config(cores);
        cfg.session.inflight_window = 1;
        let b = start_with(cfg, coremq::Hooks::new());
        let (mut sub, _) = Client::connect(b.addr, &b.id_on("sub", cores - 1), true);
        sub.subscribe("o2/t", QoS::ExactlyOnce);
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        publ.publish("o2/t", b"one", QoS::ExactlyOnce, false);
        publ.publish("o2/t", b"two", QoS::ExactlyOnce, false);

        let p = sub.recv_publish().expect("PUBLISH");
        assert_eq!(
            (text(&p).as_str(), p.qos, p.dup),
            ("one", QoS::ExactlyOnce, false)
        );
        assert_ne!(p.pkid, 0);
        sub.send(&Packet::PubRec(Ack::new(p.pkid)));
        assert_eq!(
            sub.recv(),
            Some(Packet::PubRel(Ack::new(p.pkid))),
            "PUBREL [MQTT-4.3.3-1]"
        );
        // Still in flight (awaiting PUBCOMP): the window of one holds "two" back.
        sub.expect_silence(SHORT);
        sub.send(&Packet::PubComp(Ack::new(p.pkid)));

        let q = sub.recv_publish().expect("next after PUBCOMP");
        assert_eq!(text(&q), "two");
        sub.send(&Packet::PubRec(Ack::new(q.pkid)));
        assert_eq!(sub.recv(), Some(Packet::PubRel(Ack::new(q.pkid))));
        sub.send(&Packet::PubComp(Ack::new(q.pkid)));
        sub.expect_silence(SHORT);
    });
}

// [MQTT-3.3.5-1]: overlapping subscriptions of one client give one copy, at
// the highest QoS of the matching subscriptions.
#[test]
fn overlapping_subscriptions_one_copy_at_max_qos() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut sub, _) = Client::connect(b.addr, &b.id_on("sub", cores - 1), true);
        let codes = sub.subscribe_many(&[("a/#", QoS::AtMostOnce), ("a/+", QoS::ExactlyOnce)]);
        assert_eq!(
            codes,
            vec![
                SubAckCode::Granted(QoS::AtMostOnce),
                SubAckCode::Granted(QoS::ExactlyOnce)
            ]
        );
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        publ.publish("a/b", b"x", QoS::ExactlyOnce, false);
        let p = sub.recv_publish().expect("delivered");
        assert_eq!(p.qos, QoS::ExactlyOnce, "cores {cores}");
        sub.ack(&p);
        publ.publish("a/b", b"y", QoS::AtLeastOnce, false);
        let p = sub.recv_publish().expect("delivered");
        assert_eq!((text(&p).as_str(), p.qos), ("y", QoS::AtLeastOnce));
        sub.ack(&p);
        // Only "a/#" matches "a/b/c": QoS 0.
        publ.publish("a/b/c", b"z", QoS::ExactlyOnce, false);
        let p = sub.recv_publish().expect("delivered");
        assert_eq!((text(&p).as_str(), p.qos), ("z", QoS::AtMostOnce));
        sub.expect_silence(SHORT);
    });
}

// [MQTT-4.7.2-1]: '#' and '+' as the first level do not match topics that
// start with '$'; "$SYS/#" does.
#[test]
fn dollar_topics_not_matched_by_leading_wildcards() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut wild, _) = Client::connect(b.addr, &b.id_on("wild", cores - 1), true);
        wild.subscribe_many(&[("#", QoS::AtLeastOnce), ("+/x", QoS::AtLeastOnce)]);
        let (mut sys, _) = Client::connect(b.addr, &b.id_on("sys", cores - 1), true);
        sys.subscribe("$SYS/#", QoS::AtLeastOnce);
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        publ.publish("$SYS/x", b"dollar", QoS::AtLeastOnce, false);
        publ.publish("plain/x", b"plain", QoS::AtLeastOnce, false);

        let p = sys.recv_publish().expect("$SYS/# matches $SYS/x");
        assert_eq!((&*p.topic, text(&p).as_str()), ("$SYS/x", "dollar"));
        sys.ack(&p);
        // Same publisher, in order: the first thing "#" sees must be plain/x.
        let p = wild.recv_publish().expect("plain/x delivered");
        assert_eq!(
            &*p.topic, "plain/x",
            "cores {cores}: '#'/'+/x' matched $SYS/x"
        );
        wild.ack(&p);
        wild.expect_silence(SHORT);
        sys.expect_silence(SHORT);
    });
}

// [MQTT-3.8.4-5] / §3.9.3: one SUBACK code per filter in order, 0x80 for the
// invalid ones ("a/#/b": '#' not last [MQTT-4.7.1-2]; "a+": '+' not a whole
// level [MQTT-4.7.1-3]); the valid ones work.
#[test]
fn suback_failure_for_invalid_filters_mixed_with_valid() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut sub, _) = Client::connect(b.addr, &b.id_on("sub", cores - 1), true);
        let codes = sub.subscribe_many(&[
            ("a/#/b", QoS::AtLeastOnce),
            ("ok/+", QoS::AtLeastOnce),
            ("a+", QoS::AtMostOnce),
            ("ok2/#", QoS::ExactlyOnce),
        ]);
        assert_eq!(
            codes,
            vec![
                SubAckCode::Failure,
                SubAckCode::Granted(QoS::AtLeastOnce),
                SubAckCode::Failure,
                SubAckCode::Granted(QoS::ExactlyOnce),
            ]
        );
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        publ.publish("ok/1", b"1", QoS::AtLeastOnce, false);
        publ.publish("ok2/a/b", b"2", QoS::AtLeastOnce, false);
        let got: Vec<String> = sub.recv_acked(2).iter().map(text).collect();
        assert_eq!(got, ["1", "2"]);
        sub.ping(); // still connected
    });
}

// [MQTT-3.10.4-1]/[MQTT-3.10.4-2]: after UNSUBACK, no new messages for the
// removed filter.
#[test]
fn unsubscribe_stops_delivery() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut sub, _) = Client::connect(b.addr, &b.id_on("sub", cores - 1), true);
        sub.subscribe_many(&[("u/t", QoS::AtLeastOnce), ("u/marker", QoS::AtLeastOnce)]);
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        publ.publish("u/t", b"before", QoS::AtLeastOnce, false);
        assert_eq!(text(&sub.recv_acked(1)[0]), "before");
        sub.unsubscribe("u/t");
        publ.publish("u/t", b"after", QoS::AtLeastOnce, false);
        publ.publish("u/marker", b"marker", QoS::AtLeastOnce, false);
        let p = sub.recv_acked(1).remove(0);
        assert_eq!(
            text(&p),
            "marker",
            "cores {cores}: delivered after UNSUBACK"
        );
        sub.expect_silence(SHORT);
    });
}

// A subscriber on the last shard receives from publishers homed on every shard.
#[test]
fn subscriber_receives_from_every_shard() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut sub, _) = Client::connect(b.addr, &b.id_on("sub", cores - 1), true);
        sub.subscribe("m/+", QoS::AtLeastOnce);
        let mut pubs: Vec<Client> = (0..cores)
            .map(|s| Client::connect(b.addr, &b.id_on(&format!("pub{s}"), s), true).0)
            .collect();
        for (s, p) in pubs.iter_mut().enumerate() {
            p.publish(
                &format!("m/{s}"),
                format!("from {s}").as_bytes(),
                QoS::AtLeastOnce,
                false,
            );
        }
        let got: BTreeSet<String> = sub.recv_acked(cores).iter().map(text).collect();
        let want: BTreeSet<String> = (0..cores).map(|s| format!("from {s}")).collect();
        assert_eq!(got, want);
        sub.expect_silence(SHORT);
    });
}

// Fan-out: 20 subscribers spread over the shards each get exactly one copy of
// every message, in order; a message crosses to a remote shard once, not once
// per remote subscriber (counter mailbox_msgs_sent).
#[test]
fn fan_out_one_copy_each_and_one_mailbox_message_per_shard() {
    const SUBS: usize = 20;
    const MSGS: usize = 10;
    each_cores(|cores| {
        let b = start(cores);
        let mut subs: Vec<Client> = (0..SUBS)
            .map(|i| {
                let (mut c, _) =
                    Client::connect(b.addr, &b.id_on(&format!("fan{i}"), i % cores), true);
                c.subscribe("fan/t", QoS::AtLeastOnce);
                c
            })
            .collect();
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        publ.ping();
        // Let the counters settle (posted every 100 ms) before the baseline.
        std::thread::sleep(Duration::from_millis(300));
        let before = b.metrics().mailbox_msgs_sent;

        for n in 0..MSGS {
            publ.publish("fan/t", format!("{n}").as_bytes(), QoS::AtLeastOnce, false);
        }
        let want: Vec<String> = (0..MSGS).map(|n| n.to_string()).collect();
        for (i, s) in subs.iter_mut().enumerate() {
            let got: Vec<String> = s.recv_acked(MSGS).iter().map(text).collect();
            assert_eq!(got, want, "subscriber {i}, cores {cores}");
        }
        for s in subs.iter_mut() {
            s.expect_silence(Duration::from_millis(50));
        }

        let remote = (MSGS * (cores - 1)) as u64;
        b.wait_metrics(|m| m.mailbox_msgs_sent >= before + remote);
        std::thread::sleep(Duration::from_millis(300));
        let sent = b.metrics().mailbox_msgs_sent - before;
        let remote_subs = (0..SUBS).filter(|i| i % cores != 0).count() as u64;
        assert!(
            sent >= remote && sent <= remote + 2,
            "cores {cores}: {sent} mailbox messages for {MSGS} publishes, expected ~{remote}"
        );
        if remote_subs > 1 {
            assert!(
                sent < MSGS as u64 * remote_subs,
                "sent per subscriber: {sent}"
            );
        }
    });
}

//! Retained messages: stored, replaced, deleted, RETAIN flag on subscribe vs
//! live delivery, wildcards, cross-shard replicas, delivered QoS. Each test
//! runs with 1 and 2 shards; with 2 the publisher is homed on shard 0 and the
//! subscriber on shard 1.
//!
//! Every shard keeps a replica of the retained store, updated over the mesh
//! (eventually consistent by design, see `router::retained`). Before a new
//! subscriber on another shard looks, the tests wait until every replica holds
//! the expected number of retained messages (gauge `retained`, summed over
//! shards).

mod common;
use common::*;
use coremq::codec::Ack;
use coremq::codec::QoS;
use std::collections::BTreeSet;
use std::time::Duration;

const SHORT: Duration = Duration::from_millis(300);

/// Wait until every shard's replica holds `n` retained messages.
fn wait_replicas(b: &TestBroker, n: u64) {
    let want = n * b.shards as u64;
    let m = b.wait_metrics(|m| m.retained == want);
    assert_eq!(m.retained, want, "retained replicas");
}

fn subscriber(b: &TestBroker, name: &str) -> Client {
    Client::connect(b.addr, &b.id_on(name, b.shards - 1), true).0
}

// [MQTT-3.3.1-5]/[MQTT-3.3.1-6]: a retained message is stored and sent to a
// new subscription with RETAIN=1; a newer one replaces it; a zero-byte
// retained message deletes it and is not stored [MQTT-3.3.1-10]/[MQTT-3.3.1-11].
#[test]
fn retained_stored_replaced_deleted() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        publ.publish("r/a", b"v1", QoS::AtLeastOnce, true);
        wait_replicas(&b, 1);
        let mut s1 = subscriber(&b, "s1");
        s1.subscribe("r/a", QoS::AtLeastOnce);
        let p = s1.recv_acked(1).remove(0);
        assert_eq!((&*p.topic, text(&p).as_str()), ("r/a", "v1"));
        assert!(
            p.retain,
            "cores {cores}: RETAIN=1 on subscribe [MQTT-3.3.1-6]"
        );
        s1.expect_silence(SHORT);

        // Replaced: only the newer one is kept.
        publ.publish("r/a", b"v2", QoS::AtLeastOnce, true);
        let live = s1.recv_acked(1).remove(0);
        assert_eq!(text(&live), "v2");
        // s1 is homed on the subscriber's shard and got v2 live; the retained
        // update travelled ahead of it on the same mailbox, so that replica has it.
        let mut s2 = subscriber(&b, "s2");
        s2.subscribe("r/a", QoS::AtLeastOnce);
        let got = s2.recv_acked(1).remove(0);
        assert_eq!(text(&got), "v2", "cores {cores}: replaced [MQTT-3.3.1-5]");
        assert!(got.retain);
        s2.expect_silence(SHORT);

        // Deleted by an empty retained payload; existing subscribers still get it.
        publ.publish("r/a", b"", QoS::AtLeastOnce, true);
        let del = s1.recv_acked(1).remove(0);
        assert!(del.payload.is_empty());
        wait_replicas(&b, 0);
        let mut s3 = subscriber(&b, "s3");
        s3.subscribe("r/a", QoS::AtLeastOnce);
        s3.expect_silence(SHORT);
    });
}

// [MQTT-3.3.1-12]: a retained PUBLISH forwarded to an existing subscription
// has RETAIN=0 (only the copy sent on subscribe has RETAIN=1).
#[test]
fn live_delivery_of_retained_has_retain_0() {
    each_cores(|cores| {
        let b = start(cores);
        let mut sub = subscriber(&b, "sub");
        sub.subscribe("live/t", QoS::AtLeastOnce);
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        publ.publish("live/t", b"x", QoS::AtLeastOnce, true);
        let p = sub.recv_acked(1).remove(0);
        assert_eq!(text(&p), "x");
        assert!(
            !p.retain,
            "cores {cores}: RETAIN=0 on live delivery [MQTT-3.3.1-12]"
        );
        // The same message is retained for a new subscription, with RETAIN=1.
        wait_replicas(&b, 1);
        sub.subscribe("live/t", QoS::AtLeastOnce);
        let p = sub.recv_acked(1).remove(0);
        assert!(
            p.retain,
            "re-subscribe re-sends retained with RETAIN=1 [MQTT-3.8.4-3]"
        );
    });
}

// A wildcard subscription receives every matching retained message, and only those.
#[test]
fn wildcard_subscription_gets_all_matching_retained() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        for t in ["w/a", "w/b", "w/c/d", "x/y", "$SYS/w"] {
            publ.publish(t, t.as_bytes(), QoS::AtLeastOnce, true);
        }
        wait_replicas(&b, 5);
        let mut sub = subscriber(&b, "sub");

        sub.subscribe("w/+", QoS::AtLeastOnce);
        let got: BTreeSet<String> = sub
            .recv_acked(2)
            .iter()
            .map(|p| p.topic.to_string())
            .collect();
        assert_eq!(
            got,
            BTreeSet::from(["w/a".into(), "w/b".into()]),
            "cores {cores}"
        );
        sub.expect_silence(SHORT);

        sub.subscribe("w/#", QoS::AtLeastOnce);
        let got = sub.recv_acked(3);
        assert!(got.iter().all(|p| p.retain));
        let topics: BTreeSet<String> = got.iter().map(|p| p.topic.to_string()).collect();
        let want: BTreeSet<String> = ["w/a", "w/b", "w/c/d"].map(String::from).into();
        assert_eq!(topics, want, "cores {cores}");
        sub.expect_silence(SHORT);

        // "#" does not match "$SYS/w" [MQTT-4.7.2-1].
        sub.subscribe("#", QoS::AtLeastOnce);
        let topics: BTreeSet<String> = sub
            .recv_acked(4)
            .iter()
            .map(|p| p.topic.to_string())
            .collect();
        let want: BTreeSet<String> = ["w/a", "w/b", "w/c/d", "x/y"].map(String::from).into();
        assert_eq!(topics, want, "cores {cores}");
        sub.expect_silence(SHORT);
    });
}

// A retained message published on shard 0 is delivered to a subscriber homed
// on shard 1 (its replica was updated over the mesh).
#[test]
fn retained_set_on_one_shard_visible_on_another() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        publ.publish("cross/t", b"v", QoS::AtMostOnce, true);
        wait_replicas(&b, 1);
        for shard in 0..cores {
            let (mut sub, _) = Client::connect(b.addr, &b.id_on("sub", shard), true);
            sub.subscribe("cross/t", QoS::AtLeastOnce);
            let p = sub.recv_publish().expect("retained delivered");
            assert_eq!((text(&p).as_str(), p.retain), ("v", true), "shard {shard}");
        }
    });
}

// [MQTT-3.8.4-6]: a retained message is delivered at min(its QoS, the
// subscription QoS).
#[test]
fn retained_delivered_at_min_qos() {
    const QOS: [QoS; 3] = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];
    each_cores(|cores| {
        let b = start(cores);
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        for rq in QOS {
            publ.publish(&format!("rq/{}", rq as u8), b"r", rq, true);
        }
        wait_replicas(&b, 3);
        for sq in QOS {
            let mut sub = subscriber(&b, &format!("sub{}", sq as u8));
            for rq in QOS {
                sub.subscribe(&format!("rq/{}", rq as u8), sq);
                let p = sub.recv_acked(1).remove(0);
                assert!(p.retain);
                assert_eq!(
                    p.qos,
                    rq.min(sq),
                    "retained {rq:?}, subscription {sq:?}, cores {cores}"
                );
            }
            sub.expect_silence(Duration::from_millis(100));
        }
    });
}

// A retained QoS 1/2 PUBLISH is acknowledged only once every shard holds it:
// a subscriber homed on another shard that subscribes right after the PUBACK
// (PUBCOMP for QoS 2) gets it, every time.
#[test]
fn acknowledged_retained_is_on_every_shard() {
    let b = start(2);
    let (mut publ, _) = Client::connect(b.addr, &b.id_on("ret-ack-pub", 0), true);
    let mut sub = subscriber(&b, "ret-ack-sub");
    for i in 0..100 {
        let topic = format!("ack/{i}");
        let qos = if i % 2 == 0 {
            QoS::AtLeastOnce
        } else {
            QoS::ExactlyOnce
        };
        publ.publish(&topic, b"r", qos, true);
        sub.subscribe(&topic, QoS::AtLeastOnce);
        let p = sub
            .recv_publish()
            .expect("retained message after its PUBACK");
        assert!(p.retain && *p.topic == *topic, "{p:?}");
        sub.ack(&p);
    }
}

// [MQTT-4.6.0-2]: PUBACKs leave in the order their PUBLISHes arrived, also
// when a retained one waits for the other shards.
#[test]
fn acks_keep_order_behind_a_held_retained_ack() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("ret-order", 0), true);
        for pkid in 1..=6u16 {
            let retain = pkid % 2 == 1;
            let p = publish_packet(
                &format!("order/{pkid}"),
                b"x",
                QoS::AtLeastOnce,
                pkid,
                false,
                retain,
            );
            publ.send(&coremq::codec::Packet::Publish(p));
        }
        let acks: Vec<_> = (0..6).map(|_| publ.recv().expect("PUBACK")).collect();
        let want: Vec<_> = (1..=6u16)
            .map(|id| coremq::codec::Packet::PubAck(Ack::new(id)))
            .collect();
        assert_eq!(acks, want);
    });
}

// Retained messages for a new subscription follow its SUBACK, also when the
// SUBACK waits for the other shards to learn the filter.
#[test]
fn retained_messages_follow_their_suback() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("ret-after-pub", 0), true);
        publ.publish("after/a", b"1", QoS::AtLeastOnce, true);
        publ.publish("after/b", b"2", QoS::AtLeastOnce, true);
        let mut sub = subscriber(&b, "ret-after-sub");
        let sub_packet = coremq::codec::Subscribe {
            pkid: 9,
            filters: vec![coremq::codec::SubscribeFilter::new(
                "after/+",
                QoS::AtLeastOnce,
            )],
            props: None,
        };
        sub.send(&coremq::codec::Packet::Subscribe(sub_packet));
        let first = sub.recv().expect("SUBACK");
        assert!(
            matches!(first, coremq::codec::Packet::SubAck(ref s) if s.pkid == 9),
            "{first:?}"
        );
        for _ in 0..2 {
            let p = sub.recv_publish().expect("retained");
            assert!(p.retain);
            sub.ack(&p);
        }
    });
}

// Retained messages follow their SUBACK also when the SUBACK needs no barrier
// of its own but waits in the connection's queue behind a held ack (here the
// PUBACK of a retained publish, held until the other shard has stored it).
#[test]
fn retained_messages_follow_a_suback_queued_behind_a_held_ack() {
    use coremq::codec::{encode, Packet, Subscribe, SubscribeFilter};
    each_cores(|cores| {
        let b = start(cores);
        let home = b.shards - 1;
        // The filter is already known on the client's shard: no new barrier.
        let mut other = Client::connect(b.addr, &b.id_on("queued-other", home), true).0;
        other.subscribe("queued/#", QoS::AtLeastOnce);
        let (mut c, _) = Client::connect(b.addr, &b.id_on("queued-client", home), true);
        let publish = publish_packet("queued/x", b"kept", QoS::AtLeastOnce, 1, false, true);
        let subscribe = Subscribe {
            pkid: 2,
            filters: vec![SubscribeFilter::new("queued/#", QoS::AtLeastOnce)],
            props: None,
        };
        let mut bytes = Vec::new();
        encode(
            &Packet::Publish(publish),
            coremq::codec::ProtocolVersion::V311,
            &mut bytes,
        );
        encode(
            &Packet::Subscribe(subscribe),
            coremq::codec::ProtocolVersion::V311,
            &mut bytes,
        );
        c.send_raw(&bytes);
        assert_eq!(
            c.recv().expect("PUBACK"),
            Packet::PubAck(Ack::new(1)),
            "cores {cores}"
        );
        let suback = c.recv().expect("SUBACK");
        assert!(
            matches!(suback, Packet::SubAck(ref s) if s.pkid == 2),
            "cores {cores}: {suback:?}"
        );
        let p = c.recv_publish().expect("the retained message");
        assert!(p.retain && &*p.topic == "queued/x", "cores {cores}: {p:?}");
    });
}

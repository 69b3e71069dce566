//! Retained messages: stored, replaced, deleted, sent on subscribe.

use crate::codec::Ack;
use crate::codec::{Packet, QoS};
use crate::session::event::SessionEvent;
use crate::shard::harness::{publish, subscribe, H};
use crate::shard::mesh::MeshMsg;

#[test]
fn retained_message_follows_the_suback_with_retain_set() {
    // [MQTT-3.3.1-6] sent on subscribe with RETAIN=1; [MQTT-3.3.1-9] live copies carry 0.
    let mut h = H::new(1);
    let (p, _) = h.connect("pub", true);
    let _ = h.send(p, publish("r/1", b"kept", QoS::AtLeastOnce, 1, true));
    assert!(
        matches!(h.events().as_slice(), [.., SessionEvent::RetainedSet { msg }] if &*msg.topic == "r/1")
    );
    let (s, _) = h.connect("sub", true);
    let _ = h.send(s, subscribe(2, &[("r/+", QoS::AtMostOnce)]));
    let out = h.out(s);
    assert!(matches!(out[0], Packet::SubAck(_)), "SUBACK first: {out:?}");
    match &out[1] {
        Packet::Publish(m) => {
            assert!(m.retain);
            assert_eq!(m.qos, QoS::AtMostOnce, "min(publish, subscription)");
            assert_eq!(&m.payload[..], b"kept");
        }
        other => panic!("{other:?}"),
    }
    let _ = h.send(p, publish("r/1", b"live", QoS::AtMostOnce, 0, true));
    assert!(!h.publishes(s)[0].retain);
}

#[test]
fn empty_retained_payload_deletes() {
    // [MQTT-3.3.1-10]
    let mut h = H::new(1);
    let (p, _) = h.connect("pub", true);
    let _ = h.send(p, publish("r", b"x", QoS::AtMostOnce, 0, true));
    let _ = h.send(p, publish("r", b"", QoS::AtMostOnce, 0, true));
    assert!(matches!(
        h.events().as_slice(),
        [.., SessionEvent::RetainedCleared { .. }]
    ));
    let (s, _) = h.connect("sub", true);
    h.subscribe(s, &[("r", QoS::AtMostOnce)]);
    assert!(h.publishes(s).is_empty());
}

#[test]
fn retained_publish_ack_waits_for_every_replica() {
    let mut h = H::new(2);
    let (p, _) = h.connect("pub", true);
    let _ = h.send(p, publish("r", b"x", QoS::AtLeastOnce, 4, true));
    assert!(h.out(p).is_empty(), "PUBACK held until shard 1 stored it");
    let barrier = match h.mesh_out(1).as_slice() {
        [MeshMsg::Retain { barrier, .. }] => *barrier,
        other => panic!("{other:?}"),
    };
    h.peer_sends(1, MeshMsg::Ack { barrier });
    assert_eq!(h.out(p), vec![Packet::PubAck(Ack::new(4))]);
}

#[test]
fn acks_leave_in_packet_order_behind_a_held_one() {
    // [MQTT-4.6.0-2]: a later PUBACK never overtakes a held one.
    let mut h = H::new(2);
    let (p, _) = h.connect("pub", true);
    let _ = h.send(p, publish("r", b"x", QoS::AtLeastOnce, 1, true));
    let _ = h.send(p, publish("plain", b"y", QoS::AtLeastOnce, 2, false));
    assert!(h.out(p).is_empty());
    h.answer_barriers();
    assert_eq!(
        h.out(p),
        vec![Packet::PubAck(Ack::new(1)), Packet::PubAck(Ack::new(2))]
    );
}

/// Store `n` retained messages at `qos` on topics r/0 .. r/(n-1).
fn store_retained(h: &mut H, n: u16, qos: QoS) {
    let (p, _) = h.connect("pub", true);
    for i in 0..n {
        let topic = format!("r/{i}");
        let _ = h.send(p, publish(&topic, b"v", qos, i % 60000 + 1, true));
    }
    h.out(p);
}

#[test]
fn every_matching_retained_message_arrives_at_qos0() {
    // [MQTT-3.3.1-6]: all of them, however many, however small the outbox.
    let mut cfg = crate::config::Config::default();
    cfg.mqtt.max_outbox_bytes = 1024;
    let mut h = H::with(cfg, 1);
    store_retained(&mut h, 10_001, QoS::AtMostOnce);
    let (s, _) = h.connect("sub", true);
    h.subscribe(s, &[("r/+", QoS::AtMostOnce)]);
    assert_eq!(h.read_all_publishes(s).len(), 10_001);
    assert_eq!(h.shard.metrics.dropped_qos0_slow, 0);
}

#[test]
fn every_matching_retained_message_arrives_at_qos1_through_the_window() {
    // 3,000 QoS 1 retained messages through a window of 32 and a queue of 1,000:
    // the backlog waits outside the queue, so none is dropped.
    let mut h = H::new(1);
    store_retained(&mut h, 3_000, QoS::AtLeastOnce);
    let (s, _) = h.connect("sub", true);
    h.subscribe(s, &[("r/#", QoS::AtLeastOnce)]);
    let got = h.read_all_publishes(s);
    assert!(got.iter().all(|p| p.retain));
    let seen: std::collections::HashSet<_> = got.iter().map(|p| p.topic.clone()).collect();
    assert_eq!(seen.len(), 3_000);
    assert_eq!(h.shard.metrics.dropped_queue_full, 0);
}

#[test]
fn a_filter_repeated_in_one_subscribe_is_looked_up_once() {
    let mut h = H::new(1);
    store_retained(&mut h, 50, QoS::AtMostOnce);
    let (s, _) = h.connect("sub", true);
    let filters: Vec<(&str, QoS)> = (0..2_000).map(|_| ("r/#", QoS::AtMostOnce)).collect();
    let codes = h.subscribe(s, &filters);
    assert_eq!(
        codes.len(),
        2_000,
        "[MQTT-3.8.4-5] one return code per filter"
    );
    assert_eq!(
        h.read_all_publishes(s).len(),
        50,
        "each retained message once, not once per copy of the filter"
    );
}

#[test]
fn live_qos1_messages_wait_behind_the_retained_backlog() {
    let mut h = H::new(1);
    store_retained(&mut h, 40, QoS::AtLeastOnce);
    let (s, _) = h.connect("sub", true);
    h.subscribe(s, &[("r/#", QoS::AtLeastOnce)]);
    let (p, _) = h.connect("live", true);
    let _ = h.send(p, publish("r/0", b"new", QoS::AtLeastOnce, 1, false));
    let order: Vec<bool> = h.read_all_publishes(s).iter().map(|m| m.retain).collect();
    assert_eq!(order.len(), 41);
    assert!(
        !order[40],
        "the live message comes after every retained one"
    );
    assert!(order[..40].iter().all(|r| *r));
}

#[test]
fn a_small_retained_payload_does_not_pin_its_read_buffer() {
    // A 10-byte payload read together with 64 KiB of other bytes is kept in
    // an allocation of its own (the message the store and every replica keep).
    let mut h = H::new(1);
    let (p, _) = h.connect("pub", true);
    let buffer = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
    let publish = crate::codec::Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: true,
        topic: "small".into(),
        pkid: 0,
        payload: buffer.slice(1000..1010),
        props: None,
    };
    let _ = h.send(p, Packet::Publish(publish));
    let stored = h.shard.router.retained_matching("small");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].payload.len(), 10);
    assert!(!buffer.as_ptr_range().contains(&stored[0].payload.as_ptr()));
}

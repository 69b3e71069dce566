//! Retained messages: stored, replaced, deleted, sent on subscribe.

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
    assert_eq!(h.out(p), vec![Packet::PubAck(4)]);
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
    assert_eq!(h.out(p), vec![Packet::PubAck(1), Packet::PubAck(2)]);
}

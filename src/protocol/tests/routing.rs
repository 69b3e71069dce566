//! Overlapping subscriptions, unsubscribe, and routing to other shards.

use crate::codec::UnsubAck;
use crate::codec::{Packet, QoS, SubAckCode};
use crate::session::event::SessionEvent;
use crate::shard::harness::{publish, H};
use crate::shard::mesh::MeshMsg;
use std::sync::Arc;

#[test]
fn overlapping_subscriptions_deliver_one_copy_at_the_highest_qos() {
    // [MQTT-3.3.5-1]
    let mut h = H::new(1);
    let (s, _) = h.connect("sub", true);
    let codes = h.subscribe(
        s,
        &[
            ("a/+", QoS::AtMostOnce),
            ("a/#", QoS::ExactlyOnce),
            ("a/b", QoS::AtLeastOnce),
        ],
    );
    assert_eq!(
        codes,
        vec![
            SubAckCode::Granted(QoS::AtMostOnce),
            SubAckCode::Granted(QoS::ExactlyOnce),
            SubAckCode::Granted(QoS::AtLeastOnce)
        ]
    );
    let (p, _) = h.connect("pub", true);
    let _ = h.send(p, publish("a/b", b"m", QoS::ExactlyOnce, 1, false));
    let got = h.publishes(s);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].qos, QoS::ExactlyOnce);
}

#[test]
fn invalid_filter_fails_alone() {
    // [MQTT-4.7.1-2] '#' only last: that filter gets 0x80, the others are granted.
    let mut h = H::new(1);
    let (s, _) = h.connect("sub", true);
    let codes = h.subscribe(s, &[("a/#/b", QoS::AtLeastOnce), ("ok", QoS::AtLeastOnce)]);
    assert_eq!(
        codes,
        vec![SubAckCode::Failure, SubAckCode::Granted(QoS::AtLeastOnce)]
    );
}

#[test]
fn unsubscribe_stops_delivery_and_emits_its_event() {
    // [MQTT-3.10.4-1]
    let mut h = H::new(1);
    let (s, _) = h.connect("sub", true);
    h.subscribe(s, &[("t", QoS::AtLeastOnce)]);
    h.events();
    let _ = h.send(
        s,
        Packet::Unsubscribe(crate::codec::Unsubscribe {
            pkid: 3,
            filters: vec!["t".into()],
            props: None,
        }),
    );
    assert_eq!(h.out(s), vec![Packet::UnsubAck(UnsubAck::new(3))]);
    assert!(
        matches!(h.events().as_slice(), [SessionEvent::Unsubscribed { filter, .. }] if &**filter == "t")
    );
    let (p, _) = h.connect("pub", true);
    let _ = h.send(p, publish("t", b"m", QoS::AtLeastOnce, 1, false));
    assert!(h.publishes(s).is_empty());
}

#[test]
fn new_filter_is_announced_and_its_suback_waits_for_every_peer() {
    let mut h = H::new(4);
    let (s, _) = h.connect("sub", true);
    let _ = h.send(
        s,
        crate::shard::harness::subscribe(5, &[("x/y", QoS::AtLeastOnce)]),
    );
    assert!(h.out(s).is_empty(), "SUBACK held behind the barrier");
    let mut barrier = 0;
    for peer in 1..4 {
        match h.mesh_out(peer).as_slice() {
            [MeshMsg::Interest {
                from: 0,
                barrier: b,
                changes,
            }] => {
                assert_eq!(changes[0], (Arc::from("x/y"), true));
                barrier = *b;
            }
            other => panic!("peer {peer}: {other:?}"),
        }
    }
    h.peer_sends(1, MeshMsg::Ack { barrier });
    h.peer_sends(2, MeshMsg::Ack { barrier });
    assert!(h.out(s).is_empty(), "one peer still to answer");
    h.peer_sends(3, MeshMsg::Ack { barrier });
    assert!(matches!(h.out(s).as_slice(), [Packet::SubAck(a)] if a.pkid == 5));
}

#[test]
fn publish_goes_once_to_each_interested_shard() {
    let mut h = H::new(4);
    let changes: Arc<[(Arc<str>, bool)]> = vec![(Arc::from("a/+"), true)].into();
    h.peer_sends(
        2,
        MeshMsg::Interest {
            from: 2,
            barrier: 7,
            changes: changes.clone(),
        },
    );
    h.peer_sends(
        3,
        MeshMsg::Interest {
            from: 3,
            barrier: 0,
            changes,
        },
    );
    assert!(matches!(
        h.mesh_out(2).as_slice(),
        [MeshMsg::Ack { barrier: 7 }]
    ));
    let (p, _) = h.connect("pub", true);
    let _ = h.send(p, publish("a/b", b"m", QoS::AtMostOnce, 0, false));
    assert!(h.mesh_out(1).is_empty());
    assert!(matches!(h.mesh_out(2).as_slice(), [MeshMsg::Publish(m)] if &*m.topic == "a/b"));
    assert!(matches!(h.mesh_out(3).as_slice(), [MeshMsg::Publish(_)]));
}

#[test]
fn publish_from_a_peer_reaches_local_subscribers() {
    let mut h = H::new(2);
    let (s, _) = h.connect("sub", true);
    h.subscribe(s, &[("t", QoS::AtMostOnce)]);
    let msg = crate::message::Message {
        id: h.shard.ids.next_id(),
        topic: "t".into(),
        payload: bytes::Bytes::from_static(b"remote"),
        qos: QoS::AtMostOnce,
        retain: false,
        from: "elsewhere".into(),
        props: None,
    };
    h.peer_sends(1, MeshMsg::Publish(Arc::new(msg)));
    assert_eq!(&h.publishes(s)[0].payload[..], b"remote");
}

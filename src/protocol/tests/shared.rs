//! Shared subscriptions (`$share/{group}/{filter}`, MQTT 5 §4.8.2) offered to
//! 3.1.1 clients: membership, one member per group, cross-shard choice and
//! redistribution when a member's session ends.

use crate::codec::{Packet, QoS, SubAckCode, UnsubAck};
use crate::config::Config;
use crate::router::shared::{Member, MemberChange};
use crate::session::event::SessionEvent;
use crate::shard::harness::{publish, H};
use crate::shard::mesh::MeshMsg;
use crate::shard::ConnKey;
use std::sync::Arc;

const Q1: QoS = QoS::AtLeastOnce;

/// Count of PUBLISHes each connection got (acking QoS 1 ones).
fn counts(h: &mut H, conns: &[ConnKey]) -> Vec<usize> {
    conns
        .iter()
        .map(|c| h.read_all_publishes(*c).len())
        .collect()
}

#[test]
fn each_message_goes_to_one_member_in_turn_and_to_every_ordinary_subscriber() {
    // [MQTT-4.8.2-3]: one member of the group gets each message, at min(QoS).
    let mut h = H::new(1);
    let members: Vec<ConnKey> = (0..3)
        .map(|i| {
            let (c, _) = h.connect(&format!("m{i}"), true);
            let codes = h.subscribe(c, &[("$share/g/t/+", Q1)]);
            assert_eq!(codes, vec![SubAckCode::Granted(Q1)]);
            c
        })
        .collect();
    let (plain, _) = h.connect("plain", true);
    h.subscribe(plain, &[("t/#", QoS::AtMostOnce)]);
    let (p, _) = h.connect("pub", true);
    for i in 0..9u16 {
        let _ = h.send(p, publish("t/x", b"m", QoS::ExactlyOnce, i + 1, false));
    }
    assert_eq!(counts(&mut h, &members), vec![3, 3, 3], "round robin");
    assert_eq!(h.publishes(plain).len(), 9, "ordinary subscriber gets all");
    assert_eq!(h.shard.metrics.shared_delivered, 9);
}

#[test]
fn a_session_gets_one_copy_per_group_plus_one_for_its_ordinary_subscriptions() {
    let mut h = H::new(1);
    let (s, _) = h.connect("s", true);
    h.subscribe(
        s,
        &[
            ("$share/a/t", Q1),
            ("$share/b/t", QoS::AtMostOnce),
            ("t", Q1),
            ("#", Q1),
        ],
    );
    let (p, _) = h.connect("pub", true);
    let _ = h.send(p, publish("t", b"m", Q1, 1, false));
    let got = h.publishes(s);
    let mut qos: Vec<QoS> = got.iter().map(|p| p.qos).collect();
    qos.sort();
    assert_eq!(
        qos,
        vec![QoS::AtMostOnce, Q1, Q1],
        "groups a and b, ordinary once"
    );
}

#[test]
fn no_retained_messages_on_a_shared_subscribe() {
    // MQTT 5 §4.8.2: retained messages are not sent for a new shared subscription.
    let mut h = H::new(1);
    let (p, _) = h.connect("pub", true);
    let _ = h.send(p, publish("r/t", b"kept", Q1, 1, true));
    let (s, _) = h.connect("s", true);
    h.subscribe(s, &[("$share/g/r/#", Q1)]);
    assert!(h.publishes(s).is_empty());
    h.subscribe(s, &[("r/#", Q1)]);
    assert_eq!(
        h.publishes(s).len(),
        1,
        "an ordinary subscribe still gets it"
    );
}

#[test]
fn invalid_share_names_and_disabled_shares_are_refused() {
    // [MQTT-4.8.2-1] [MQTT-4.8.2-2]
    let mut h = H::new(1);
    let (s, _) = h.connect("s", true);
    let bad = [
        "$share/g",
        "$share//t",
        "$share/+/t",
        "$share/g#/t",
        "$share/g/a/#/b",
    ];
    for f in bad {
        assert_eq!(h.subscribe(s, &[(f, Q1)]), vec![SubAckCode::Failure], "{f}");
    }
    let mut cfg = Config::default();
    cfg.mqtt.shared_subscriptions = false;
    let mut h = H::with(cfg, 1);
    let (s, _) = h.connect("s", true);
    let codes = h.subscribe(s, &[("$share/g/t", Q1), ("t", Q1)]);
    assert_eq!(codes, vec![SubAckCode::Failure, SubAckCode::Granted(Q1)]);
}

#[test]
fn unsubscribe_leaves_the_group() {
    let mut h = H::new(1);
    let (a, _) = h.connect("a", true);
    let (b, _) = h.connect("b", true);
    h.subscribe(a, &[("$share/g/t", Q1)]);
    h.subscribe(b, &[("$share/g/t", Q1)]);
    let unsub = crate::codec::Unsubscribe {
        pkid: 2,
        filters: vec!["$share/g/t".into()],
        props: None,
    };
    let _ = h.send(a, Packet::Unsubscribe(unsub));
    assert_eq!(h.out(a), vec![Packet::UnsubAck(UnsubAck::new(2))]);
    let (p, _) = h.connect("pub", true);
    for i in 0..4 {
        let _ = h.send(p, publish("t", b"m", Q1, i + 1, false));
    }
    assert_eq!(counts(&mut h, &[a, b]), vec![0, 4]);
}

#[test]
fn an_ended_member_hands_its_unacked_and_queued_messages_to_another() {
    // QoS 1 window and queue go to the other member; a QoS 2 message
    // already sent does not [MQTT-4.8.2-5].
    let mut cfg = Config::default();
    cfg.session.inflight_window = 2;
    let mut h = H::with(cfg, 1);
    let (a, _) = h.connect("a", true);
    let (b, _) = h.connect("b", true);
    h.subscribe(a, &[("$share/g/t", QoS::ExactlyOnce)]);
    h.subscribe(b, &[("$share/g/t", QoS::ExactlyOnce)]);
    let (p, _) = h.connect("pub", true);
    // Round robin: a gets 1, 3, 5, 7; b gets 2, 4, 6, 8. a's first is QoS 2.
    let _ = h.send(p, publish("t", b"1", QoS::ExactlyOnce, 1, false));
    for i in 2..=8u16 {
        let _ = h.send(p, publish("t", b"n", Q1, i, false));
    }
    let _ = h.publishes(a); // a reads two (1 and 3), acks none; 5 and 7 wait.
    let before_b = h.read_all_publishes(b).len();
    assert_eq!(before_b, 4);
    h.drop_socket(a); // clean session: it ends.
    let moved = h.read_all_publishes(b);
    assert_eq!(
        moved.len(),
        3,
        "3 (window) + 5, 7 (queue); not the QoS 2 one"
    );
    assert_eq!(h.shard.metrics.shared_redistributed, 3);
    assert_eq!(h.shard.metrics.dropped_session_discarded, 1);
}

#[test]
fn last_member_ending_drops_and_counts() {
    let mut h = H::new(1);
    let (a, _) = h.connect("a", false);
    h.subscribe(a, &[("$share/g/t", Q1)]);
    h.drop_socket(a); // persistent: still a member, queues
    let (p, _) = h.connect("pub", true);
    let _ = h.send(p, publish("t", b"m", Q1, 1, false));
    assert_eq!(h.shard.metrics.shared_delivered, 1);
    let (a2, _) = h.connect_with(crate::shard::harness::connect_packet("a", true, None));
    let _ = a2;
    assert_eq!(
        h.shard.metrics.shared_dropped_no_member, 1,
        "no member left"
    );
}

#[test]
fn joining_is_announced_and_the_suback_waits_for_every_peer() {
    let mut h = H::new(3);
    let (s, _) = h.connect("s", true);
    let _ = h.send(
        s,
        crate::shard::harness::subscribe(4, &[("$share/g/t", Q1)]),
    );
    assert!(h.out(s).is_empty(), "SUBACK held");
    let mut barrier = 0;
    for peer in 1..3 {
        match h.mesh_out(peer).as_slice() {
            [MeshMsg::Members {
                barrier: b,
                changes,
            }] => {
                assert!(changes[0].join && &*changes[0].share == "$share/g/t");
                barrier = *b;
            }
            other => panic!("peer {peer}: {other:?}"),
        }
    }
    h.peer_sends(1, MeshMsg::Ack { barrier });
    assert!(h.out(s).is_empty());
    h.peer_sends(2, MeshMsg::Ack { barrier });
    assert!(matches!(h.out(s).as_slice(), [Packet::SubAck(a)] if a.pkid == 4));
}

/// A member on peer `shard`, as that peer would announce it.
fn remote_member(h: &mut H, shard: usize, share: &str) -> Member {
    let session = h
        .shard
        .sessions
        .iter()
        .next()
        .map(|(k, _)| k)
        .expect("a session");
    let member = Member {
        shard: shard as u16,
        session,
    };
    let changes: Arc<[MemberChange]> = vec![MemberChange {
        share: share.into(),
        member,
        join: true,
    }]
    .into();
    h.peer_sends(
        shard,
        MeshMsg::Members {
            barrier: 0,
            changes,
        },
    );
    member
}

#[test]
fn a_remote_member_gets_the_message_in_one_hop() {
    let mut h = H::new(2);
    let (p, _) = h.connect("pub", true);
    let member = remote_member(&mut h, 1, "$share/g/t");
    let _ = h.send(p, publish("t", b"m", Q1, 1, false));
    match h.mesh_out(1).as_slice() {
        [MeshMsg::Shared {
            share,
            member: m,
            hops: 0,
            ..
        }] => {
            assert_eq!(&**share, "$share/g/t");
            assert_eq!(*m, member.session);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_message_for_a_member_that_left_goes_to_another() {
    let mut h = H::new(2);
    let (a, _) = h.connect("a", true);
    h.subscribe(a, &[("$share/g/t", Q1)]);
    let (gone, _) = h.connect("gone", true);
    h.subscribe(gone, &[("$share/g/t", Q1)]);
    let gone_key = h.shard.sessions.find("gone").expect("session");
    h.drop_socket(gone);
    h.events();
    let msg = crate::message::Message {
        id: h.shard.ids.next_id(),
        topic: "t".into(),
        payload: bytes::Bytes::from_static(b"late"),
        qos: Q1,
        retain: false,
        from: "elsewhere".into(),
        props: None,
    };
    let shared = MeshMsg::Shared {
        msg: Arc::new(msg),
        share: "$share/g/t".into(),
        member: gone_key,
        hops: 0,
    };
    h.peer_sends(1, shared);
    let got = h.read_all_publishes(a);
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].payload[..], b"late");
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, SessionEvent::Windowed { .. })));
}

//! The MQTT 5 PUBLISH path: forwarded properties (3.1.1 ↔ 5 both ways),
//! message expiry, topic aliases both ways, the client's Maximum Packet
//! Size, the broker's Receive Maximum, availability, payload format, and
//! the reason codes of PUBACK/PUBREC.

use crate::codec::{Ack, Packet, Properties, Publish, QoS, Reason};
use crate::config::{Config, Strictness};
use crate::hooks::Hooks;
use crate::shard::harness::{connect5_packet, publish, H};
use crate::shard::{CloseReason, ConnKey};
use bytes::Bytes;
use std::sync::Arc;

/// The properties a publisher sets that every MQTT 5 subscriber must get unaltered.
fn app_props() -> Properties {
    Properties {
        payload_format_indicator: Some(1),
        content_type: Some("text/plain".into()),
        response_topic: Some("reply/to".into()),
        correlation_data: Some(Bytes::from_static(b"\x00corr")),
        user_properties: vec![
            ("b".into(), "2".into()),
            ("a".into(), "1".into()),
            ("b".into(), "1".into()),
        ],
        ..Properties::default()
    }
}

fn publish5(topic: &str, payload: &'static [u8], qos: QoS, pkid: u16, props: Properties) -> Packet {
    let Packet::Publish(mut p) = publish(topic, payload, qos, pkid, false) else {
        unreachable!("publish builds a PUBLISH");
    };
    p.props = (props != Properties::default()).then(|| Box::new(props));
    Packet::Publish(p)
}

fn v5(h: &mut H, id: &str) -> ConnKey {
    h.connect5(id, true, Properties::default()).0
}

fn v5_with(h: &mut H, id: &str, props: Properties) -> ConnKey {
    h.connect5(id, true, props).0
}

fn acks(h: &mut H, conn: ConnKey) -> Vec<Packet> {
    h.out(conn)
        .into_iter()
        .filter(|p| matches!(p, Packet::PubAck(_) | Packet::PubRec(_)))
        .collect()
}

fn props_of(p: &Publish) -> Properties {
    p.props.as_deref().cloned().unwrap_or_default()
}

#[test]
fn properties_reach_v5_subscribers_unaltered_and_not_v311_ones() {
    // [MQTT-3.3.2-4] payload format, [MQTT-3.3.2-15] response topic,
    // [MQTT-3.3.2-16] correlation data, [MQTT-3.3.2-17/18] user properties
    // unaltered and in order, [MQTT-3.3.2-20] content type.
    let mut h = H::new(1);
    let sub5 = v5(&mut h, "sub5");
    let (sub3, _) = h.connect("sub3", true);
    h.subscribe(sub5, &[("t", QoS::AtLeastOnce)]);
    h.subscribe(sub3, &[("t", QoS::AtLeastOnce)]);
    let pub5 = v5(&mut h, "pub5");
    let mut props = app_props();
    props.topic_alias = Some(3);
    h.send(pub5, publish5("t", b"hi", QoS::AtLeastOnce, 1, props))
        .unwrap();
    let got5 = h.publishes(sub5);
    assert_eq!(got5.len(), 1);
    // The publisher's alias is not forwarded (the subscriber takes none).
    assert_eq!(props_of(&got5[0]), app_props());
    let got3 = h.publishes(sub3);
    assert_eq!(got3.len(), 1);
    assert_eq!(got3[0].props, None, "a 3.1.1 subscriber gets no properties");
    assert_eq!(&got3[0].payload[..], b"hi");
}

#[test]
fn a_v311_message_reaches_a_v5_subscriber_without_properties() {
    let mut h = H::new(1);
    let sub5 = v5(&mut h, "sub5");
    h.subscribe(sub5, &[("t", QoS::AtMostOnce)]);
    let (pub3, _) = h.connect("pub3", true);
    h.send(pub3, publish("t", b"x", QoS::AtMostOnce, 0, false))
        .unwrap();
    let got = h.publishes(sub5);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].props, None);
    assert_eq!(&*got[0].topic, "t");
}

#[test]
fn will_properties_travel_with_the_will_but_the_delay() {
    let mut h = H::new(1);
    let watch = v5(&mut h, "watch");
    h.subscribe(watch, &[("will/#", QoS::AtLeastOnce)]);
    let mut props = app_props();
    props.will_delay_interval = Some(0);
    let will = Some(crate::codec::LastWill {
        topic: "will/w".into(),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        props: Some(Box::new(props)),
    });
    let (c, _) = h.connect_with(connect5_packet("dies", true, Properties::default(), will));
    h.drop_socket(c);
    let got = h.publishes(watch);
    assert_eq!(got.len(), 1);
    assert_eq!(props_of(&got[0]), app_props());
}

#[test]
fn retained_messages_keep_their_properties() {
    let mut h = H::new(1);
    let p = v5(&mut h, "p");
    let Packet::Publish(mut retained) = publish5("r", b"kept", QoS::AtMostOnce, 0, app_props())
    else {
        unreachable!()
    };
    retained.retain = true;
    h.send(p, Packet::Publish(retained)).unwrap();
    let s = v5(&mut h, "s");
    h.subscribe(s, &[("r", QoS::AtMostOnce)]);
    let got = h.publishes(s);
    assert_eq!(got.len(), 1);
    assert!(got[0].retain);
    assert_eq!(props_of(&got[0]), app_props());
}

fn expiring(secs: u32) -> Properties {
    Properties {
        message_expiry_interval: Some(secs),
        ..Properties::default()
    }
}

#[test]
fn forwarded_expiry_is_what_is_left() {
    // [MQTT-3.3.2-6]: the interval sent is the received one minus the time
    // the message waited; whole seconds, never 0 for a live message.
    let mut h = H::new(1);
    let s = v5_with(&mut h, "s", expiry_session(600));
    h.subscribe(s, &[("t", QoS::AtLeastOnce)]);
    h.drop_socket(s);
    let p = v5(&mut h, "p");
    h.send(p, publish5("t", b"1", QoS::AtLeastOnce, 1, expiring(10)))
        .unwrap();
    h.advance(3_500);
    let (s, _) = h.connect_with(connect5_packet("s", false, expiry_session(600), None));
    let got = h.publishes(s);
    assert_eq!(got.len(), 1);
    assert_eq!(props_of(&got[0]).message_expiry_interval, Some(7));
}

fn expiry_session(secs: u32) -> Properties {
    Properties {
        session_expiry_interval: Some(secs),
        ..Properties::default()
    }
}

#[test]
fn expired_messages_in_a_queue_are_dropped_and_counted() {
    // [MQTT-3.3.2-5]: past its expiry a message is not delivered; a 3.1.1
    // subscriber's queue is held to a v5 publisher's expiry too.
    let mut h = H::new(1);
    let (s3, _) = h.connect("s3", false);
    h.subscribe(s3, &[("t", QoS::AtLeastOnce)]);
    h.drop_socket(s3);
    let p = v5(&mut h, "p");
    h.send(p, publish5("t", b"short", QoS::AtLeastOnce, 1, expiring(2)))
        .unwrap();
    h.send(p, publish5("t", b"long", QoS::AtLeastOnce, 2, expiring(60)))
        .unwrap();
    h.send(p, publish("t", b"forever", QoS::AtLeastOnce, 3, false))
        .unwrap();
    h.advance(2_000);
    let (s3, present) = h.connect("s3", false);
    assert!(present);
    let got: Vec<_> = h.publishes(s3).into_iter().map(|p| p.payload).collect();
    assert_eq!(got, [&b"long"[..], b"forever"]);
    assert_eq!(h.shard.metrics.dropped_expired, 1);
}

#[test]
fn expired_retained_messages_are_not_sent() {
    let mut h = H::new(1);
    let p = v5(&mut h, "p");
    for (topic, secs) in [("r/1", 1), ("r/2", 100)] {
        let Packet::Publish(mut m) = publish5(topic, b"v", QoS::AtMostOnce, 0, expiring(secs))
        else {
            unreachable!()
        };
        m.retain = true;
        h.send(p, Packet::Publish(m)).unwrap();
    }
    h.advance(1_000);
    let s = v5(&mut h, "s");
    h.subscribe(s, &[("r/#", QoS::AtMostOnce)]);
    let got = h.publishes(s);
    assert_eq!(got.len(), 1);
    assert_eq!(&*got[0].topic, "r/2");
    assert_eq!(props_of(&got[0]).message_expiry_interval, Some(99));
    assert_eq!(h.shard.metrics.dropped_expired, 1);
}

#[test]
fn sent_window_entries_are_resent_even_when_expired() {
    let mut h = H::new(1);
    let s = v5_with(&mut h, "s", expiry_session(600));
    h.subscribe(s, &[("t", QoS::AtLeastOnce)]);
    let p = v5(&mut h, "p");
    h.send(p, publish5("t", b"v", QoS::AtLeastOnce, 1, expiring(1)))
        .unwrap();
    assert_eq!(h.publishes(s).len(), 1);
    h.drop_socket(s);
    h.advance(5_000);
    let (s, _) = h.connect_with(connect5_packet("s", false, expiry_session(600), None));
    let got = h.publishes(s);
    assert_eq!(got.len(), 1);
    assert!(got[0].dup);
    // Resent with the full topic: a new connection knows no alias.
    assert_eq!(&*got[0].topic, "t");
    assert_eq!(props_of(&got[0]).message_expiry_interval, Some(1));
    assert_eq!(h.shard.metrics.dropped_expired, 0);
}

fn aliased(topic: &str, alias: u16) -> Packet {
    let props = Properties {
        topic_alias: Some(alias),
        ..Properties::default()
    };
    publish5(topic, b"a", QoS::AtMostOnce, 0, props)
}

#[test]
fn inbound_aliases_set_use_and_replace() {
    // §3.3.2.3.4: a topic with an alias sets it; an empty topic uses it.
    let mut h = H::new(1);
    let s = v5(&mut h, "s");
    h.subscribe(s, &[("#", QoS::AtMostOnce)]);
    let p = v5(&mut h, "p");
    for packet in [
        aliased("a/1", 1),
        aliased("", 1),
        aliased("b/2", 1),
        aliased("", 1),
    ] {
        h.send(p, packet).unwrap();
    }
    let topics: Vec<String> = h.publishes(s).iter().map(|p| p.topic.to_string()).collect();
    assert_eq!(topics, ["a/1", "a/1", "b/2", "b/2"]);
}

#[test]
fn inbound_alias_zero_or_over_the_maximum_is_0x94() {
    // [MQTT-3.3.2-8] alias 0; [MQTT-3.3.2-9] above the Topic Alias Maximum.
    let mut cfg = Config::default();
    cfg.mqtt.topic_alias_maximum = 4;
    for alias in [0, 5] {
        let mut h = H::with(cfg.clone(), 1);
        let p = v5(&mut h, "p");
        assert_eq!(
            h.send(p, aliased("t", alias)),
            Err(CloseReason::TopicAliasInvalid)
        );
        let out = h.out(p);
        assert!(
            matches!(out.last(), Some(Packet::Disconnect(d)) if d.reason == Reason::TOPIC_ALIAS_INVALID),
            "{out:?}"
        );
    }
}

#[test]
fn an_unknown_alias_with_an_empty_topic_is_a_protocol_error() {
    let mut h = H::new(1);
    let p = v5(&mut h, "p");
    assert_eq!(h.send(p, aliased("", 2)), Err(CloseReason::ProtocolError));
    let out = h.out(p);
    assert!(
        matches!(out.last(), Some(Packet::Disconnect(d)) if d.reason == Reason::PROTOCOL_ERROR),
        "{out:?}"
    );
}

#[test]
fn outbound_aliases_up_to_the_smaller_maximum_and_per_connection() {
    // [MQTT-3.3.2-10]: never above the client's Topic Alias Maximum;
    // [MQTT-3.3.2-11/12]: a topic's first PUBLISH names it with the alias.
    let mut cfg = Config::default();
    cfg.mqtt.max_topic_aliases_out = 2;
    let mut h = H::with(cfg, 1);
    let wants = |n| Properties {
        topic_alias_maximum: Some(n),
        session_expiry_interval: Some(600),
        ..Properties::default()
    };
    let s = v5_with(&mut h, "s", wants(10));
    h.subscribe(s, &[("#", QoS::AtMostOnce)]);
    let few = v5_with(&mut h, "few", wants(1));
    h.subscribe(few, &[("#", QoS::AtMostOnce)]);
    let p = v5(&mut h, "p");
    for t in ["a", "b", "c", "a", "b", "c"] {
        h.send(p, publish(t, b"x", QoS::AtMostOnce, 0, false))
            .unwrap();
    }
    let seen = |ps: Vec<Publish>| -> Vec<(String, Option<u16>)> {
        ps.iter()
            .map(|p| (p.topic.to_string(), props_of(p).topic_alias))
            .collect()
    };
    let s_got = seen(h.publishes(s));
    let want = |v: &[(&str, Option<u16>)]| -> Vec<(String, Option<u16>)> {
        v.iter().map(|(t, a)| (t.to_string(), *a)).collect()
    };
    assert_eq!(
        s_got,
        want(&[
            ("a", Some(1)),
            ("b", Some(2)),
            ("c", None),
            ("", Some(1)),
            ("", Some(2)),
            ("c", None)
        ])
    );
    assert_eq!(
        seen(h.publishes(few)),
        want(&[
            ("a", Some(1)),
            ("b", None),
            ("c", None),
            ("", Some(1)),
            ("b", None),
            ("c", None)
        ])
    );
    // A new connection starts with no aliases [MQTT-3.3.2-7].
    h.drop_socket(s);
    let (s, _) = h.connect_with(connect5_packet("s", false, wants(10), None));
    h.send(p, publish("a", b"x", QoS::AtMostOnce, 0, false))
        .unwrap();
    assert_eq!(seen(h.publishes(s)), want(&[("a", Some(1))]));
}

#[test]
fn no_aliases_for_a_client_that_accepts_none() {
    let mut h = H::new(1);
    let s = v5(&mut h, "s");
    h.subscribe(s, &[("t", QoS::AtMostOnce)]);
    let p = v5(&mut h, "p");
    for _ in 0..2 {
        h.send(p, publish("t", b"x", QoS::AtMostOnce, 0, false))
            .unwrap();
    }
    for got in h.publishes(s) {
        assert_eq!((&*got.topic, got.props), ("t", None));
    }
}

#[test]
fn a_publish_over_the_clients_maximum_packet_size_is_not_sent() {
    // [MQTT-3.1.2-24/25]: not sent to that client, others get it; a QoS 1
    // one does not take a window slot.
    let mut h = H::new(1);
    let small = Properties {
        maximum_packet_size: Some(40),
        receive_maximum: Some(1),
        ..Properties::default()
    };
    let s = v5_with(&mut h, "s", small);
    h.subscribe(s, &[("t", QoS::AtLeastOnce)]);
    let (other, _) = h.connect("other", true);
    h.subscribe(other, &[("t", QoS::AtLeastOnce)]);
    let p = v5(&mut h, "p");
    h.send(p, publish("t", &[b'x'; 64], QoS::AtLeastOnce, 1, false))
        .unwrap();
    h.send(p, publish("t", b"small", QoS::AtLeastOnce, 2, false))
        .unwrap();
    let got = h.publishes(s);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(&got[0].payload[..], b"small");
    assert_eq!(h.publishes(other).len(), 2);
    assert_eq!(h.shard.metrics.dropped_too_large, 1);
}

#[test]
fn a_queued_message_too_large_for_the_client_is_dropped_when_its_turn_comes() {
    let mut h = H::new(1);
    let small = Properties {
        maximum_packet_size: Some(40),
        session_expiry_interval: Some(600),
        ..Properties::default()
    };
    let s = v5_with(&mut h, "s", small.clone());
    h.subscribe(s, &[("t", QoS::AtLeastOnce)]);
    h.drop_socket(s);
    let p = v5(&mut h, "p");
    h.send(p, publish("t", &[b'x'; 64], QoS::AtLeastOnce, 1, false))
        .unwrap();
    h.send(p, publish("t", b"small", QoS::AtLeastOnce, 2, false))
        .unwrap();
    let (s, _) = h.connect_with(connect5_packet("s", false, small, None));
    let got = h.publishes(s);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(&got[0].payload[..], b"small");
    assert_eq!(h.shard.metrics.dropped_too_large, 1);
}

#[test]
fn qos2_over_the_receive_maximum_is_0x93_for_v5_and_a_close_for_v311() {
    // [MQTT-3.3.4-8]: more unanswered QoS 2 PUBLISHes than the broker's
    // Receive Maximum (session.max_awaiting_rel).
    let mut cfg = Config::default();
    cfg.session.max_awaiting_rel = 2;
    let mut h = H::with(cfg, 1);
    let p = v5(&mut h, "p");
    for id in 1..=2 {
        h.send(p, publish("t", b"x", QoS::ExactlyOnce, id, false))
            .unwrap();
    }
    assert_eq!(
        h.send(p, publish("t", b"x", QoS::ExactlyOnce, 3, false)),
        Err(CloseReason::ReceiveMaximumExceeded)
    );
    let out = h.out(p);
    assert!(
        matches!(out.last(), Some(Packet::Disconnect(d)) if d.reason == Reason::RECEIVE_MAXIMUM_EXCEEDED),
        "{out:?}"
    );
    // A QoS 1 PUBLISH while the QoS 2 ones fill the maximum: also over it.
    let p = v5(&mut h, "p1");
    for id in 1..=2 {
        h.send(p, publish("t", b"x", QoS::ExactlyOnce, id, false))
            .unwrap();
    }
    assert_eq!(
        h.send(p, publish("t", b"x", QoS::AtLeastOnce, 3, false)),
        Err(CloseReason::ReceiveMaximumExceeded)
    );
    let (p3, _) = h.connect("p3", true);
    for id in 1..=2 {
        h.send(p3, publish("t", b"x", QoS::ExactlyOnce, id, false))
            .unwrap();
    }
    h.send(p3, publish("t", b"x", QoS::AtLeastOnce, 3, false))
        .unwrap();
    assert_eq!(
        h.send(p3, publish("t", b"x", QoS::ExactlyOnce, 4, false)),
        Err(CloseReason::ProtocolError)
    );
}

#[test]
fn retain_and_qos_the_broker_does_not_offer_close_the_connection() {
    // §3.2.2.3.5/3.2.2.3.4: Retain Available 0 → 0x9A; Maximum QoS → 0x9B.
    let mut cfg = Config::default();
    cfg.mqtt.retain_available = false;
    cfg.mqtt.maximum_qos = 1;
    let cases = [
        (
            publish("t", b"x", QoS::AtMostOnce, 0, true),
            CloseReason::RetainNotSupported,
            Reason::RETAIN_NOT_SUPPORTED,
        ),
        (
            publish("t", b"x", QoS::ExactlyOnce, 1, false),
            CloseReason::QosNotSupported,
            Reason::QOS_NOT_SUPPORTED,
        ),
    ];
    for (packet, close, reason) in cases {
        let mut h = H::with(cfg.clone(), 1);
        let p = v5(&mut h, "p");
        assert_eq!(h.send(p, packet.clone()), Err(close));
        let out = h.out(p);
        assert!(
            matches!(out.last(), Some(Packet::Disconnect(d)) if d.reason == reason),
            "{out:?}"
        );
        let (p3, _) = h.connect("p3", true);
        assert_eq!(h.send(p3, packet), Err(close));
        assert!(
            h.out(p3).is_empty(),
            "a 3.1.1 client is closed without a DISCONNECT"
        );
        assert_eq!(h.shard.metrics.publishes_refused, 2);
    }
}

fn bad_utf8_publish(qos: QoS, pkid: u16) -> Packet {
    let props = Properties {
        payload_format_indicator: Some(1),
        ..Properties::default()
    };
    publish5("t", b"\xff\xfe", qos, pkid, props)
}

#[test]
fn a_payload_that_is_not_the_utf8_it_claims_gets_0x99_and_is_not_routed() {
    // §3.3.2.3.2: the receiver MAY validate; PUBACK/PUBREC 0x99.
    let mut h = H::new(1);
    let s = v5(&mut h, "s");
    h.subscribe(s, &[("t", QoS::AtLeastOnce)]);
    let p = v5(&mut h, "p");
    h.send(p, bad_utf8_publish(QoS::AtLeastOnce, 1)).unwrap();
    h.send(p, bad_utf8_publish(QoS::ExactlyOnce, 2)).unwrap();
    h.send(p, bad_utf8_publish(QoS::AtMostOnce, 0)).unwrap();
    assert_eq!(
        acks(&mut h, p),
        [
            Packet::PubAck(Ack::with(1, Reason::PAYLOAD_FORMAT_INVALID)),
            Packet::PubRec(Ack::with(2, Reason::PAYLOAD_FORMAT_INVALID)),
        ]
    );
    assert!(h.publishes(s).is_empty());
    assert_eq!(h.shard.metrics.dropped_payload_format, 3);
    // strict.payload_format = "allow": routed unchecked.
    let mut cfg = Config::default();
    cfg.strict.payload_format = Strictness::Allow;
    let mut h = H::with(cfg, 1);
    let s = v5(&mut h, "s");
    h.subscribe(s, &[("t", QoS::AtLeastOnce)]);
    let p = v5(&mut h, "p");
    h.send(p, bad_utf8_publish(QoS::AtLeastOnce, 1)).unwrap();
    assert_eq!(acks(&mut h, p), [Packet::PubAck(Ack::new(1))]);
    assert_eq!(h.publishes(s).len(), 1);
}

#[test]
fn puback_says_no_matching_subscribers_and_not_authorized() {
    // §3.4.2.1: 0x10 when nobody subscribed, 0x87 when the hook refused it.
    let mut h = H::new(2);
    let p = v5(&mut h, "p");
    h.send(p, publish("none", b"x", QoS::AtLeastOnce, 1, false))
        .unwrap();
    h.send(p, publish("none", b"x", QoS::ExactlyOnce, 2, false))
        .unwrap();
    assert_eq!(
        acks(&mut h, p),
        [
            Packet::PubAck(Ack::with(1, Reason::NO_MATCHING_SUBSCRIBERS)),
            Packet::PubRec(Ack::with(2, Reason::NO_MATCHING_SUBSCRIBERS)),
        ]
    );
    // A subscriber on another shard counts (the interest replica says so).
    h.peer_sends(
        1,
        crate::shard::mesh::MeshMsg::Interest {
            from: 1,
            barrier: 0,
            changes: Arc::from(vec![(Arc::<str>::from("remote/#"), true)]),
        },
    );
    h.send(p, publish("remote/x", b"x", QoS::AtLeastOnce, 3, false))
        .unwrap();
    assert_eq!(acks(&mut h, p), [Packet::PubAck(Ack::new(3))]);
    let mut hooks = Hooks::new();
    hooks.on_message_publish(|_, m| (!m.topic.starts_with("private")).then_some(m));
    h.shard.hooks = Arc::new(hooks);
    h.send(p, publish("private", b"x", QoS::AtLeastOnce, 4, false))
        .unwrap();
    h.send(p, publish("private", b"x", QoS::ExactlyOnce, 5, false))
        .unwrap();
    assert_eq!(
        acks(&mut h, p),
        [
            Packet::PubAck(Ack::with(4, Reason::NOT_AUTHORIZED)),
            Packet::PubRec(Ack::with(5, Reason::NOT_AUTHORIZED)),
        ]
    );
    // A refused QoS 2 PUBLISH holds no packet id: the same id is new again.
    let s = v5(&mut h, "s");
    h.subscribe(s, &[("open", QoS::AtLeastOnce)]);
    h.send(p, publish("open", b"x", QoS::ExactlyOnce, 5, false))
        .unwrap();
    assert_eq!(h.publishes(s).len(), 1);
    // A 3.1.1 publisher's acks carry no reason (byte for byte as before).
    let (p3, _) = h.connect("p3", true);
    h.send(p3, publish("none", b"x", QoS::AtLeastOnce, 1, false))
        .unwrap();
    assert_eq!(
        h.shard.conns.get(p3).map(|c| c.unsent_bytes().to_vec()),
        Some(vec![0x40, 0x02, 0x00, 0x01])
    );
}

#[test]
fn message_and_delivery_stay_compact() {
    // The properties ride in what was padding of Message (a u128 id aligns
    // it to 16); Delivery (what queues and windows hold) grows only by its
    // subscription identifiers (one inline u32 and a thin box).
    let message = std::mem::size_of::<crate::message::Message>();
    let delivery = std::mem::size_of::<crate::session::Delivery>();
    eprintln!("Message {message} B, Delivery {delivery} B");
    assert!(message <= 96, "Message grew to {message} B");
    assert!(delivery <= 24, "Delivery grew to {delivery} B");
}

#[test]
fn the_size_check_counts_the_deliverys_subscription_identifier() {
    // [MQTT-3.1.2-24]: the PUBLISH as it would go out, identifiers included.
    use crate::codec::{Subscribe, SubscribeFilter};
    let plain = crate::codec::publish_v5_len(1, 10, QoS::AtMostOnce, &Default::default());
    let mut h = H::new(1);
    let fits_without_id = Properties {
        maximum_packet_size: Some(plain as u32),
        ..Properties::default()
    };
    let s = v5_with(&mut h, "s", fits_without_id);
    let sub = |pkid, id: Option<u32>| {
        Packet::Subscribe(Subscribe {
            pkid,
            filters: vec![SubscribeFilter::new("t", QoS::AtMostOnce)],
            props: id.map(|id| {
                Box::new(Properties {
                    subscription_identifiers: vec![id],
                    ..Properties::default()
                })
            }),
        })
    };
    h.send(s, sub(1, None)).unwrap();
    h.answer_barriers();
    let p = v5(&mut h, "p");
    h.send(p, publish("t", b"0123456789", QoS::AtMostOnce, 0, false))
        .unwrap();
    assert_eq!(h.publishes(s).len(), 1, "fits without an identifier");
    h.send(s, sub(2, Some(7))).unwrap();
    h.answer_barriers();
    h.send(p, publish("t", b"0123456789", QoS::AtMostOnce, 0, false))
        .unwrap();
    assert!(h.publishes(s).is_empty(), "over it with one");
    assert_eq!(h.shard.metrics.dropped_too_large, 1);
}

/// [MQTT-4.4.0-1] (MQTT 5): unacknowledged PUBLISHes are re-sent on
/// reconnect only, never on a live connection; the retry timer is 3.1.1's.
#[test]
fn an_mqtt5_connection_gets_no_retry_while_it_lives() {
    let mut h = H::new(1);
    let s = v5(&mut h, "s");
    h.subscribe(s, &[("t", QoS::AtLeastOnce)]);
    let p = v5(&mut h, "p");
    h.send(
        p,
        publish5("t", b"v", QoS::AtLeastOnce, 1, Properties::default()),
    )
    .unwrap();
    assert_eq!(h.publishes(s).len(), 1);
    let retry_ms = h.shard.cfg.session.retry_interval_s * 1000;
    h.advance(retry_ms + 200);
    assert!(
        h.publishes(s).is_empty(),
        "re-sent on a live MQTT 5 connection"
    );
}

#[test]
fn an_mqtt5_connection_arms_no_retry_timer() {
    // [MQTT-4.4.0-1]: nothing to retry on a live MQTT 5 connection, so no
    // timer is armed for it (a 3.1.1 one gets one).
    let retries = |h: &H| {
        h.armed()
            .iter()
            .filter(|t| matches!(t, crate::shard::TimerItem::Retry(_)))
            .count()
    };
    let mut h = H::new(1);
    let s5 = v5(&mut h, "s5");
    h.subscribe(s5, &[("t", QoS::AtLeastOnce)]);
    let (s3, _) = h.connect("s3", true);
    h.subscribe(s3, &[("u", QoS::AtLeastOnce)]);
    let p = v5(&mut h, "p");
    let _ = h.send(
        p,
        publish5("t", b"v", QoS::AtLeastOnce, 1, Properties::default()),
    );
    assert_eq!(h.publishes(s5).len(), 1);
    assert_eq!(retries(&h), 0);
    let _ = h.send(
        p,
        publish5("u", b"v", QoS::AtLeastOnce, 2, Properties::default()),
    );
    assert_eq!(h.publishes(s3).len(), 1);
    assert_eq!(retries(&h), 1);
}

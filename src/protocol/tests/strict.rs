//! The `[strict]` rules and the MUSTs next to them, each with its default
//! and its relaxed setting: control characters, empty topic filters,
//! acknowledgements of the wrong QoS flow, MQTT 3.1 client ids.

use crate::codec::{Ack, Packet, ProtocolVersion, QoS, Reason, SubAckCode, UnsubAck, Unsubscribe};
use crate::config::{Config, Strictness};
use crate::shard::harness::{connect_packet, publish, subscribe, will, H};
use crate::shard::{CloseReason, ConnKey};

fn relaxed() -> Config {
    let mut cfg = Config::default();
    cfg.strict.control_characters = Strictness::Allow;
    cfg.strict.wrong_qos_ack = Strictness::Allow;
    cfg
}

/// Feed `packet` and expect the connection closed as a protocol error with
/// nothing written back.
fn closes(h: &mut H, conn: ConnKey, packet: Packet) {
    assert_eq!(h.send(conn, packet), Err(CloseReason::ProtocolError));
    assert_eq!(h.closed.get(&conn), Some(&CloseReason::ProtocolError));
    assert_eq!(h.out(conn), vec![], "nothing answered");
}

fn unsubscribe(filters: &[&str]) -> Packet {
    Packet::Unsubscribe(Unsubscribe {
        pkid: 2,
        filters: filters.iter().map(|f| (*f).into()).collect(),
        props: None,
    })
}

// ---- strict.control_characters (3.1.1 §1.5.3, 5.0 §1.5.4) ----

/// Strings with a control character: C0, DEL, C1 (two bytes in UTF-8).
const CONTROL: [&str; 5] = ["a\tb", "a/\u{1}", "\u{1F}", "x\u{7F}", "c1/\u{85}"];

#[test]
fn control_characters_in_a_publish_topic_close_by_default() {
    let mut h = H::new(1);
    let (sub, _) = h.connect("sub", true);
    h.subscribe(sub, &[("#", QoS::AtMostOnce)]);
    for (i, topic) in CONTROL.iter().enumerate() {
        let (p, _) = h.connect(&format!("p{i}"), true);
        closes(&mut h, p, publish(topic, b"m", QoS::AtLeastOnce, 1, false));
    }
    assert!(h.publishes(sub).is_empty(), "nothing was routed");
    let m = &h.shard.metrics;
    assert_eq!(m.control_chars_refused, CONTROL.len() as u64);
    assert_eq!(m.protocol_errors, 0, "counted apart from protocol errors");
    // U+00A0 (after the C1 range) and other text pass.
    let (p, _) = h.connect("ok", true);
    assert!(h
        .send(p, publish("a/\u{A0}/é", b"m", QoS::AtMostOnce, 0, false))
        .is_ok());
    assert_eq!(h.publishes(sub).len(), 1);
}

#[test]
fn control_characters_in_a_publish_topic_pass_when_allowed() {
    let mut h = H::with(relaxed(), 1);
    let (sub, _) = h.connect("sub", true);
    h.subscribe(sub, &[("#", QoS::AtMostOnce)]);
    let (p, _) = h.connect("p", true);
    for topic in CONTROL {
        assert!(h
            .send(p, publish(topic, b"m", QoS::AtLeastOnce, 1, false))
            .is_ok());
    }
    let topics: Vec<_> = h.publishes(sub).into_iter().map(|p| p.topic).collect();
    assert_eq!(topics.len(), CONTROL.len());
    assert_eq!(h.shard.metrics.control_chars_refused, 0);
}

#[test]
fn control_characters_in_a_subscribe_filter_close_before_anything_is_subscribed() {
    let mut h = H::new(1);
    for (i, filter) in CONTROL.iter().enumerate() {
        let (c, _) = h.connect(&format!("s{i}"), false);
        closes(
            &mut h,
            c,
            subscribe(1, &[("ok/+", QoS::AtLeastOnce), (filter, QoS::AtMostOnce)]),
        );
        let sk = h.shard.sessions.find(&format!("s{i}")).expect("session");
        let s = h.shard.sessions.get(sk).expect("session");
        assert_eq!(
            s.filter_count(),
            0,
            "the good filter was not subscribed either"
        );
    }
    assert_eq!(h.shard.metrics.control_chars_refused, CONTROL.len() as u64);
}

#[test]
fn control_characters_in_a_subscribe_filter_are_granted_when_allowed() {
    let mut h = H::with(relaxed(), 1);
    let (c, _) = h.connect("s", true);
    let filters: Vec<_> = CONTROL.iter().map(|f| (*f, QoS::AtMostOnce)).collect();
    let codes = h.subscribe(c, &filters);
    assert_eq!(
        codes,
        vec![SubAckCode::Granted(QoS::AtMostOnce); CONTROL.len()]
    );
}

#[test]
fn control_characters_in_an_unsubscribe_filter_close_by_default() {
    let mut h = H::new(1);
    let (c, _) = h.connect("u", true);
    h.subscribe(c, &[("a", QoS::AtMostOnce)]);
    closes(&mut h, c, unsubscribe(&["a", "a\u{9F}"]));
    assert_eq!(h.shard.metrics.control_chars_refused, 1);
    // Relaxed: answered.
    let mut h = H::with(relaxed(), 1);
    let (c, _) = h.connect("u", true);
    assert!(h.send(c, unsubscribe(&["a", "a\u{9F}"])).is_ok());
    assert_eq!(h.out(c), vec![Packet::UnsubAck(UnsubAck::new(2))]);
}

/// A CONNECT whose client id, user name or will topic holds `bad`.
fn connects_with(bad: &str) -> Vec<(&'static str, Packet)> {
    let mut user = connect_packet("c-user", true, None);
    let mut will_topic = connect_packet("c-will", true, will(&format!("w/{bad}")));
    for p in [&mut user, &mut will_topic] {
        if let Packet::Connect(c) = p {
            c.username = Some(format!("u{bad}"));
        }
    }
    if let Packet::Connect(c) = &mut will_topic {
        c.username = None;
    }
    vec![
        ("client id", connect_packet(&format!("c{bad}"), true, None)),
        ("user name", user),
        ("will topic", will_topic),
    ]
}

#[test]
fn control_characters_in_connect_close_without_connack() {
    // As Mosquitto: the CONNECT is refused like a malformed one, no CONNACK.
    for bad in CONTROL {
        let mut h = H::new(1);
        for (what, packet) in connects_with(bad) {
            let conn = h.socket();
            assert_eq!(
                h.send(conn, packet),
                Err(CloseReason::ProtocolError),
                "{what} {bad:?}"
            );
            assert_eq!(h.out(conn), vec![], "{what} {bad:?}: no CONNACK");
        }
        assert_eq!(h.shard.metrics.control_chars_refused, 3);
        assert_eq!(h.shard.metrics.connects_refused, 0);
        assert_eq!(h.shard.sessions.len(), 0, "no session was made");
    }
}

#[test]
fn control_characters_in_connect_are_accepted_when_allowed() {
    let mut h = H::with(relaxed(), 1);
    for (what, packet) in connects_with("\u{1B}[31m") {
        let (_, ack) = h.connect_with(packet);
        assert_eq!(ack.code, Reason::SUCCESS, "{what}");
    }
}

// ---- [MQTT-4.7.3-1]: topic filters are at least one character long ----

#[test]
fn an_empty_subscribe_filter_closes_the_connection() {
    // Under either control-character setting: it is a MUST.
    for cfg in [Config::default(), relaxed()] {
        let mut h = H::with(cfg, 1);
        let (c, _) = h.connect("s", false);
        closes(
            &mut h,
            c,
            subscribe(1, &[("a", QoS::AtLeastOnce), ("", QoS::AtMostOnce)]),
        );
        let sk = h.shard.sessions.find("s").expect("session");
        assert_eq!(h.shard.sessions.get(sk).expect("s").filter_count(), 0);
        assert_eq!(h.shard.metrics.protocol_errors, 1);
    }
}

#[test]
fn an_empty_unsubscribe_filter_closes_the_connection() {
    for cfg in [Config::default(), relaxed()] {
        let mut h = H::with(cfg, 1);
        let (c, _) = h.connect("u", false);
        h.subscribe(c, &[("a", QoS::AtMostOnce)]);
        closes(&mut h, c, unsubscribe(&["a", ""]));
        let sk = h.shard.sessions.find("u").expect("session");
        assert!(h.shard.sessions.get(sk).expect("s").has_filter("a"));
        assert_eq!(h.shard.metrics.protocol_errors, 1);
    }
}

// ---- strict.wrong_qos_ack ----

/// A subscriber at `qos` that was sent one message; returns it and its packet id.
fn delivered(h: &mut H, qos: QoS) -> (ConnKey, u16) {
    let (s, _) = h.connect("sub", false);
    h.subscribe(s, &[("t", qos)]);
    let (p, _) = h.connect("pub", true);
    let _ = h.send(p, publish("t", b"m", qos, 1, false));
    let pubs = h.publishes(s);
    assert_eq!(pubs.len(), 1);
    (s, pubs[0].pkid)
}

fn window_empty(h: &H) -> bool {
    let sk = h.shard.sessions.find("sub").expect("session");
    h.shard.sessions.get(sk).expect("s").window_is_empty()
}

#[test]
fn an_ack_of_the_wrong_qos_closes_by_default() {
    // PUBREC or PUBCOMP for a QoS 1 delivery.
    for ack in [Packet::PubRec as fn(Ack) -> Packet, Packet::PubComp] {
        let mut h = H::new(1);
        let (s, id) = delivered(&mut h, QoS::AtLeastOnce);
        closes(&mut h, s, ack(Ack::new(id)));
        assert_eq!(h.shard.metrics.protocol_errors, 1);
        assert!(!window_empty(&h), "the delivery stays unacknowledged");
    }
    // PUBACK for a QoS 2 delivery, before and after its PUBREC.
    for pubrec_first in [false, true] {
        let mut h = H::new(1);
        let (s, id) = delivered(&mut h, QoS::ExactlyOnce);
        if pubrec_first {
            let _ = h.send(s, Packet::PubRec(Ack::new(id)));
            assert_eq!(h.out(s), vec![Packet::PubRel(Ack::new(id))]);
        }
        closes(&mut h, s, Packet::PubAck(Ack::new(id)));
        assert_eq!(h.shard.metrics.protocol_errors, 1);
    }
}

#[test]
fn an_ack_of_the_wrong_qos_is_ignored_when_allowed() {
    let mut h = H::with(relaxed(), 1);
    let (s, id) = delivered(&mut h, QoS::AtLeastOnce);
    // Today's tolerance: a PUBREC is answered, nothing completes.
    assert!(h.send(s, Packet::PubRec(Ack::new(id))).is_ok());
    assert_eq!(h.out(s), vec![Packet::PubRel(Ack::new(id))]);
    assert!(h.send(s, Packet::PubComp(Ack::new(id))).is_ok());
    assert!(!window_empty(&h));
    assert!(h.send(s, Packet::PubAck(Ack::new(id))).is_ok());
    assert!(window_empty(&h), "the right ack completes it");

    let mut h = H::with(relaxed(), 1);
    let (s, id) = delivered(&mut h, QoS::ExactlyOnce);
    assert!(h.send(s, Packet::PubAck(Ack::new(id))).is_ok());
    assert!(
        !window_empty(&h),
        "a PUBACK does not complete a QoS 2 delivery"
    );
    let _ = h.send(s, Packet::PubRec(Ack::new(id)));
    let _ = h.send(s, Packet::PubAck(Ack::new(id)));
    let _ = h.send(s, Packet::PubComp(Ack::new(id)));
    assert!(window_empty(&h));
    assert_eq!(h.shard.metrics.protocol_errors, 0);
}

#[test]
fn acks_for_unknown_packet_ids_stay_tolerated() {
    let mut h = H::new(1);
    let (s, id) = delivered(&mut h, QoS::AtLeastOnce);
    let other = id.wrapping_add(100);
    for ack in [
        Packet::PubAck(Ack::new(other)),
        Packet::PubRec(Ack::new(other)),
        Packet::PubComp(Ack::new(other)),
    ] {
        assert!(h.send(s, ack).is_ok());
    }
    assert_eq!(h.out(s), vec![Packet::PubRel(Ack::new(other))]);
    // Acked once, the id is unknown: a repeated PUBACK is fine too.
    assert!(h.send(s, Packet::PubAck(Ack::new(id))).is_ok());
    assert!(h.send(s, Packet::PubAck(Ack::new(id))).is_ok());
    assert_eq!(h.shard.metrics.protocol_errors, 0);
}

// ---- MQTT 3.1 client ids: 1 to 23 characters ----

fn connect31(id: &str, clean: bool) -> Packet {
    let mut p = connect_packet(id, clean, None);
    if let Packet::Connect(c) = &mut p {
        c.version = ProtocolVersion::V31;
    }
    p
}

#[test]
fn an_empty_mqtt31_client_id_is_rejected() {
    // 3.1 has no server-assigned ids: CONNACK 0x02 whatever clean session says.
    for clean in [true, false] {
        let mut h = H::new(1);
        let (_, ack) = h.connect_with(connect31("", clean));
        assert_eq!(ack.code, Reason::CLIENT_IDENTIFIER_NOT_VALID);
        assert_eq!(h.shard.metrics.connects_refused, 1);
    }
    // 3.1.1 with clean session 1 still gets one [MQTT-3.1.3-6].
    let mut h = H::new(1);
    let (_, ack) = h.connect_with(connect_packet("", true, None));
    assert_eq!(ack.code, Reason::SUCCESS);
}

#[test]
fn long_mqtt31_client_ids_pass_by_default_and_are_rejected_when_strict() {
    let long = "x".repeat(24);
    let mut h = H::new(1);
    let (_, ack) = h.connect_with(connect31(&long, true));
    assert_eq!(ack.code, Reason::SUCCESS, "as Mosquitto");

    let mut cfg = Config::default();
    cfg.strict.mqtt31_client_id_over_23 = Strictness::Reject;
    let mut h = H::with(cfg, 1);
    let (_, ack) = h.connect_with(connect31(&long, true));
    assert_eq!(ack.code, Reason::CLIENT_IDENTIFIER_NOT_VALID);
    // 23 characters pass, counted as characters (46 bytes here).
    let (_, ack) = h.connect_with(connect31(&"é".repeat(23), true));
    assert_eq!(ack.code, Reason::SUCCESS);
    // The rule is 3.1's: a 3.1.1 id of 24 passes.
    let (_, ack) = h.connect_with(connect_packet(&long, true, None));
    assert_eq!(ack.code, Reason::SUCCESS);
}

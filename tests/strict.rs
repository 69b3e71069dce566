//! The strictness rules over real sockets, with raw packets, on 1, 2 and 4
//! shards: each case as Mosquitto's broker tests send it, under the default
//! `[strict]` settings and the relaxed one. Each names the spec statement
//! it checks; the control-character one is unnumbered (3.1.1 §1.5.3 "SHOULD
//! NOT ... MAY close", 5.0 §1.5.4).

mod common;
use common::*;
use coremq::codec::{Ack, Packet, ProtocolVersion, QoS, Reason, SubAckCode};
use coremq::config::{Config, Strictness};
use coremq::Hooks;
use std::time::Duration;

fn relaxed(cores: usize) -> Config {
    let mut cfg = config(cores);
    cfg.strict.control_characters = Strictness::Allow;
    cfg.strict.wrong_qos_ack = Strictness::Allow;
    cfg
}

/// The victim sends `bytes`: nothing is answered and the broker closes it.
fn closed_after(victim: &mut Client, bytes: &[u8], name: &str) {
    victim.send_raw(bytes);
    assert_eq!(
        victim.recv_within(Duration::from_millis(50)),
        None,
        "{name}: nothing is answered"
    );
    assert!(victim.closed(), "{name}: closed");
}

/// Raw packets after CONNECT with a control character (tab, DEL, U+0085)
/// in a PUBLISH topic, a SUBSCRIBE filter and an UNSUBSCRIBE filter.
const CONTROL_PACKETS: [(&str, &[u8]); 4] = [
    (
        "PUBLISH QoS 1 topic a<TAB>b",
        &[0x32, 0x08, 0, 3, b'a', 0x09, b'b', 0, 1, b'x'],
    ),
    (
        "PUBLISH QoS 1 topic a<U+0085>",
        &[0x32, 0x07, 0, 3, b'a', 0xC2, 0x85, 0, 1],
    ),
    (
        "SUBSCRIBE filter a<DEL>",
        &[0x82, 0x07, 0, 1, 0, 2, b'a', 0x7F, 0],
    ),
    (
        "UNSUBSCRIBE filter <U+0001>",
        &[0xA2, 0x05, 0, 1, 0, 1, 0x01],
    ),
];

/// CONNECTs with a control character in the client id, user name or will topic.
fn control_connects() -> Vec<(&'static str, Vec<u8>)> {
    let id = connect_packet("id\n", true);
    let mut user = connect_packet("c-user", true);
    user.username = Some("user\u{1B}".into());
    let mut will_topic = connect_packet("c-will", true);
    will_topic.will = Some(will("w/\u{9B}", "x", QoS::AtMostOnce, false));
    [
        ("CONNECT client id", id),
        ("CONNECT user name", user),
        ("CONNECT will topic", will_topic),
    ]
    .into_iter()
    .map(|(name, c)| (name, packet_bytes(&Packet::Connect(Box::new(c)))))
    .collect()
}

#[test]
fn control_characters_close_the_connection_by_default() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut watcher, _) = Client::connect(b.addr, &b.id_on("watcher", cores - 1), true);
        watcher.subscribe("#", QoS::AtMostOnce);
        for (i, (name, bytes)) in CONTROL_PACKETS.iter().enumerate() {
            let id = b.id_on(&format!("victim{i}"), i % cores);
            let (mut victim, _) = Client::connect(b.addr, &id, true);
            closed_after(&mut victim, bytes, name);
        }
        // As Mosquitto: a CONNECT with one is closed without a CONNACK.
        let connects = control_connects();
        for (name, bytes) in &connects {
            closed_after(&mut Client::raw(b.addr), bytes, name);
        }
        watcher.expect_silence(Duration::from_millis(100));
        let n = (CONTROL_PACKETS.len() + connects.len()) as u64;
        let m = b.wait_metrics(|m| m.control_chars_refused >= n);
        assert_eq!(m.control_chars_refused, n, "{m:?}");
        assert_eq!(m.connects_refused, 0, "{m:?}");
        assert_eq!(m.protocol_errors, 0, "counted apart: {m:?}");
        watcher.ping();
    });
}

#[test]
fn control_characters_pass_when_allowed() {
    each_cores(|cores| {
        let b = start_with(relaxed(cores), Hooks::new());
        let (mut watcher, _) = Client::connect(b.addr, &b.id_on("watcher", cores - 1), true);
        watcher.subscribe("#", QoS::AtMostOnce);
        let (mut c, _) = Client::connect(b.addr, &b.id_on("client", 0), true);
        for (name, bytes) in CONTROL_PACKETS {
            c.send_raw(bytes);
            match c.recv() {
                Some(Packet::PubAck(a)) if a.pkid == 1 => {}
                Some(Packet::UnsubAck(a)) if a.pkid == 1 => {}
                Some(Packet::SubAck(s)) if s.codes == [SubAckCode::Granted(QoS::AtMostOnce)] => {}
                other => panic!("{name}: {other:?}"),
            }
        }
        let topics: Vec<_> = (0..2)
            .map(|_| watcher.recv_publish().expect("delivered").topic)
            .collect();
        assert!(topics.contains(&"a\tb".into()), "{topics:?}");
        assert!(topics.contains(&"a\u{85}".into()), "{topics:?}");
        for (name, bytes) in control_connects() {
            let mut raw = Client::raw(b.addr);
            raw.send_raw(&bytes);
            match raw.recv() {
                Some(Packet::ConnAck(ack)) => {
                    assert_eq!(ack.code, Reason::SUCCESS, "{name}")
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(b.metrics().control_chars_refused, 0);
    });
}

/// [MQTT-4.7.3-1]: "All Topic Names and Topic Filters MUST be at least one
/// character long": an empty filter closes the connection (no SUBACK 0x80),
/// whatever the `[strict]` settings.
#[test]
fn an_empty_topic_filter_closes_the_connection() {
    let cases: [(&str, &[u8]); 3] = [
        ("SUBSCRIBE empty filter", &[0x82, 0x05, 0, 1, 0, 0, 0]),
        (
            "SUBSCRIBE a, then an empty filter",
            &[0x82, 0x09, 0, 1, 0, 1, b'a', 1, 0, 0, 0],
        ),
        ("UNSUBSCRIBE empty filter", &[0xA2, 0x04, 0, 1, 0, 0]),
    ];
    each_cores(|cores| {
        for cfg in [config(cores), relaxed(cores)] {
            let b = start_with(cfg, Hooks::new());
            for (i, (name, bytes)) in cases.iter().enumerate() {
                let id = b.id_on(&format!("victim{i}"), i % cores);
                let (mut victim, _) = Client::connect(b.addr, &id, true);
                closed_after(&mut victim, bytes, name);
            }
            let n = cases.len() as u64;
            let m = b.wait_metrics(|m| m.protocol_errors >= n);
            assert_eq!(m.protocol_errors, n, "{m:?}");
        }
    });
}

/// A subscriber at `qos` that received one message: returns it and the packet id.
fn delivered(b: &TestBroker, qos: QoS) -> (Client, u16) {
    let (mut sub, _) = Client::connect(b.addr, &b.id_on("sub", b.shards - 1), true);
    sub.subscribe("t", qos);
    let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
    publ.publish("t", b"m", qos, false);
    let p = sub.recv_publish().expect("delivered");
    assert_eq!(p.qos, qos);
    (sub, p.pkid)
}

fn ack_bytes(kind: u8, pkid: u16) -> [u8; 4] {
    let [hi, lo] = pkid.to_be_bytes();
    [kind, 0x02, hi, lo]
}

const PUBACK: u8 = 0x40;
const PUBREC: u8 = 0x50;

/// `strict.wrong_qos_ack` (as Mosquitto: the packet id is in flight at the
/// other QoS, a protocol error): PUBREC for a QoS 1 delivery, PUBACK for a
/// QoS 2 one close the connection.
#[test]
fn an_ack_of_the_wrong_qos_closes_by_default() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut sub, id) = delivered(&b, QoS::AtLeastOnce);
        closed_after(&mut sub, &ack_bytes(PUBREC, id), "PUBREC for QoS 1");
        let (mut sub, id) = delivered(&b, QoS::ExactlyOnce);
        closed_after(&mut sub, &ack_bytes(PUBACK, id), "PUBACK for QoS 2");
        let m = b.wait_metrics(|m| m.protocol_errors >= 2);
        assert_eq!(m.protocol_errors, 2, "{m:?}");
        // Acks for packet ids not in flight stay tolerated.
        let (mut sub, id) = delivered(&b, QoS::AtLeastOnce);
        let other = id.wrapping_add(1000).max(1);
        sub.send_raw(&ack_bytes(PUBACK, other));
        sub.send_raw(&ack_bytes(PUBREC, other));
        assert_eq!(sub.recv(), Some(Packet::PubRel(Ack::new(other))));
        sub.send_raw(&ack_bytes(PUBACK, id));
        sub.ping();
    });
}

#[test]
fn an_ack_of_the_wrong_qos_is_ignored_when_allowed() {
    each_cores(|cores| {
        let b = start_with(relaxed(cores), Hooks::new());
        let (mut sub, id) = delivered(&b, QoS::AtLeastOnce);
        sub.send_raw(&ack_bytes(PUBREC, id));
        assert_eq!(
            sub.recv(),
            Some(Packet::PubRel(Ack::new(id))),
            "answered as today"
        );
        sub.send_raw(&ack_bytes(PUBACK, id));
        sub.ping();
        let (mut sub, id) = delivered(&b, QoS::ExactlyOnce);
        sub.send_raw(&ack_bytes(PUBACK, id));
        sub.ping();
        assert_eq!(b.metrics().protocol_errors, 0);
    });
}

/// A raw MQTT 3.1 CONNECT ("MQIsdp", level 3, clean session, keepalive 60).
fn connect31_bytes(id: &str) -> Vec<u8> {
    let mut c = connect_packet(id, true);
    c.version = ProtocolVersion::V31;
    packet_bytes(&Packet::Connect(Box::new(c)))
}

fn connack_code(addr: std::net::SocketAddr, bytes: &[u8]) -> (Client, Reason) {
    let mut c = Client::raw(addr);
    c.send_raw(bytes);
    match c.recv() {
        Some(Packet::ConnAck(ack)) => (c, ack.code),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

/// MQTT 3.1 §3.1 (Client Identifier): "between 1 and 23 characters long";
/// an empty one gets CONNACK 0x02 (3.1 has no server-assigned ids).
#[test]
fn an_empty_mqtt31_client_id_is_rejected() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut c, code) = connack_code(b.addr, &connect31_bytes(""));
        assert_eq!(code, Reason::CLIENT_IDENTIFIER_NOT_VALID);
        assert!(c.closed());
        // 3.1.1 with clean session 1 is assigned one [MQTT-3.1.3-6].
        let (_, ack) = Client::connect_with(b.addr, connect_packet("", true));
        assert_eq!(ack.code, Reason::SUCCESS);
    });
}

/// MQTT 3.1: "If the Client ID contains more than 23 characters, the server
/// responds ... CONNACK return code 2": Mosquitto accepts them (the default,
/// `strict.mqtt31_client_id_over_23 = "allow"`); "reject" follows 3.1.
#[test]
fn long_mqtt31_client_ids_follow_the_setting() {
    let long = "a-mqtt31-client-id-of-28-chr";
    each_cores(|cores| {
        let b = start(cores);
        let (mut c, code) = connack_code(b.addr, &connect31_bytes(long));
        assert_eq!(code, Reason::SUCCESS);
        c.ping();
        drop(b);
        let mut cfg = config(cores);
        cfg.strict.mqtt31_client_id_over_23 = Strictness::Reject;
        let b = start_with(cfg, Hooks::new());
        let (mut c, code) = connack_code(b.addr, &connect31_bytes(long));
        assert_eq!(code, Reason::CLIENT_IDENTIFIER_NOT_VALID);
        assert!(c.closed());
        let (mut c, code) = connack_code(b.addr, &connect31_bytes(&long[..23]));
        assert_eq!(code, Reason::SUCCESS);
        c.ping();
    });
}

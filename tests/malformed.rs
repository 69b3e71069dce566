//! Malformed input closes only the offending connection (MQTT 3.1.1 §4.8:
//! "the Server MUST close the Network Connection"), on 1 and 2 shards.

mod common;
use common::*;
use coremq::codec::{Connect, Packet, QoS};
use std::time::Duration;

/// Which counter an entry must raise.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Protocol,
    TooLarge,
}

/// One malformed input: sent after a good CONNECT, or as the first packet.
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    first: bool,
    kind: Kind,
}

fn after(name: &'static str, bytes: &[u8]) -> Case {
    Case {
        name,
        bytes: bytes.to_vec(),
        first: false,
        kind: Kind::Protocol,
    }
}

fn connect_case(name: &'static str, bytes: Vec<u8>) -> Case {
    Case {
        name,
        bytes,
        first: true,
        kind: Kind::Protocol,
    }
}

/// A CONNECT's bytes; the connect flags byte is at index 9 for short ones.
fn connect_bytes(c: Connect) -> Vec<u8> {
    let b = packet_bytes(&Packet::Connect(Box::new(c)));
    assert!(b[1] < 0x80, "short CONNECT expected");
    b
}

const FLAGS_AT: usize = 9;

fn cases() -> Vec<Case> {
    let mut v = vec![
        // [MQTT-2.2.1]: packet types 0 and 15 are reserved.
        after("reserved type 0", &[0x00, 0x00]),
        after("reserved type 15", &[0xF0, 0x00]),
        // [MQTT-2.2.2-1], [MQTT-2.2.2-2]: fixed-header flags.
        after(
            "SUBSCRIBE flags 0000 [MQTT-3.8.1-1]",
            &[0x80, 0x06, 0, 1, 0, 1, b'a', 0],
        ),
        after("SUBSCRIBE flags 0011", &[0x83, 0x06, 0, 1, 0, 1, b'a', 0]),
        after(
            "UNSUBSCRIBE flags 0000 [MQTT-3.10.1-1]",
            &[0xA0, 0x05, 0, 1, 0, 1, b'a'],
        ),
        after("PUBREL flags 0000 [MQTT-3.6.1-1]", &[0x60, 0x02, 0, 1]),
        after("PINGREQ flags 0001", &[0xC1, 0x00]),
        after("PUBACK flags 0010", &[0x42, 0x02, 0, 1]),
        after("DISCONNECT flags 1000", &[0xE8, 0x00]),
        // [MQTT-3.3.1-4]: QoS 3.
        after("PUBLISH QoS 3", &[0x36, 0x05, 0, 1, b'a', 0, 1]),
        // [MQTT-3.3.1-2]: DUP with QoS 0.
        after("PUBLISH QoS 0 with DUP", &[0x38, 0x03, 0, 1, b'a']),
        // §2.2.3: at most four bytes of remaining length.
        after(
            "remaining length of 5 bytes",
            &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
        ),
        // [MQTT-3.3.2-2]: no wildcards in a topic name.
        after("PUBLISH topic a/+", &[0x30, 0x05, 0, 3, b'a', b'/', b'+']),
        after("PUBLISH topic #", &[0x30, 0x03, 0, 1, b'#']),
        // [MQTT-4.7.3-1]: a topic name is at least one character.
        after("PUBLISH empty topic", &[0x30, 0x02, 0, 0]),
        // [MQTT-1.5.3-1], [MQTT-1.5.3-2].
        after("PUBLISH topic bad UTF-8", &[0x30, 0x04, 0, 2, 0xC3, 0x28]),
        after(
            "PUBLISH topic surrogate",
            &[0x30, 0x05, 0, 3, 0xED, 0xA0, 0x80],
        ),
        after(
            "PUBLISH topic with U+0000",
            &[0x30, 0x05, 0, 3, b'a', 0, b'b'],
        ),
        after(
            "SUBSCRIBE filter bad UTF-8",
            &[0x82, 0x07, 0, 1, 0, 2, 0xC3, 0x28, 0],
        ),
        // [MQTT-2.3.1-1]: non-zero packet identifiers.
        after("PUBLISH QoS 1 pkid 0", &[0x32, 0x05, 0, 1, b'a', 0, 0]),
        after("PUBLISH QoS 2 pkid 0", &[0x34, 0x05, 0, 1, b'a', 0, 0]),
        after("SUBSCRIBE pkid 0", &[0x82, 0x06, 0, 0, 0, 1, b'a', 0]),
        after("UNSUBSCRIBE pkid 0", &[0xA2, 0x05, 0, 0, 0, 1, b'a']),
        after("PUBACK pkid 0", &[0x40, 0x02, 0, 0]),
        // [MQTT-3.8.3-3], [MQTT-3.10.3-2]: at least one filter.
        after("SUBSCRIBE with no filters", &[0x82, 0x02, 0, 1]),
        after("UNSUBSCRIBE with no filters", &[0xA2, 0x02, 0, 1]),
        // [MQTT-3.8.3-4]: requested QoS 3 / reserved bits.
        after("SUBSCRIBE QoS 3", &[0x82, 0x06, 0, 1, 0, 1, b'a', 3]),
        after(
            "SUBSCRIBE reserved option bits",
            &[0x82, 0x06, 0, 1, 0, 1, b'a', 0x40],
        ),
        // Packets only a server sends.
        after("CONNACK from a client", &[0x20, 0x02, 0, 0]),
        after("SUBACK from a client", &[0x90, 0x03, 0, 1, 0]),
        after("UNSUBACK from a client", &[0xB0, 0x02, 0, 1]),
        after("PINGRESP from a client", &[0xD0, 0x00]),
        // Remaining length shorter or longer than the fields.
        after("PUBACK truncated", &[0x40, 0x01, 0]),
        after(
            "PUBLISH topic length past the end",
            &[0x30, 0x03, 0, 5, b'a'],
        ),
        after("PUBLISH QoS 1 without pkid", &[0x32, 0x03, 0, 1, b'a']),
        after(
            "SUBSCRIBE filter without QoS byte",
            &[0x82, 0x05, 0, 1, 0, 1, b'a'],
        ),
        after("PUBACK with extra byte", &[0x40, 0x03, 0, 1, 0]),
        after("PINGREQ with a body", &[0xC0, 0x01, 0]),
        after("DISCONNECT with a body", &[0xE0, 0x01, 0]),
        // Larger than max_packet_size (1 MiB by default), judged from the header alone.
        Case {
            name: "PUBLISH of 2 MiB announced",
            bytes: vec![0x30, 0x80, 0x80, 0x80, 0x01],
            first: false,
            kind: Kind::TooLarge,
        },
        Case {
            name: "CONNECT of 2 MiB announced",
            bytes: vec![0x10, 0x80, 0x80, 0x80, 0x01],
            first: true,
            kind: Kind::TooLarge,
        },
    ];
    // [MQTT-3.1.2-3]: the reserved connect flag must be 0.
    let mut b = connect_bytes(connect_packet("victim-c", true));
    b[FLAGS_AT] |= 0x01;
    v.push(connect_case("CONNECT reserved flag", b));
    // [MQTT-3.1.2-14]: will QoS 3.
    let mut c = connect_packet("victim-c", true);
    c.will = Some(will("w", "x", QoS::AtLeastOnce, false));
    let mut b = connect_bytes(c);
    b[FLAGS_AT] |= 0b0001_1000;
    v.push(connect_case("CONNECT will QoS 3", b));
    // [MQTT-3.1.2-13], [MQTT-3.1.2-15]: will QoS / retain without the will flag.
    let mut b = connect_bytes(connect_packet("victim-c", true));
    b[FLAGS_AT] |= 0b0000_1000;
    v.push(connect_case("CONNECT will QoS without will", b));
    let mut b = connect_bytes(connect_packet("victim-c", true));
    b[FLAGS_AT] |= 0b0010_0000;
    v.push(connect_case("CONNECT will retain without will", b));
    // [MQTT-3.1.2-22]: password without user name.
    let mut c = connect_packet("victim-c", true);
    c.password = Some(bytes::Bytes::from_static(b"secret"));
    v.push(connect_case(
        "CONNECT password without username",
        connect_bytes(c),
    ));
    // A will topic with a wildcard [MQTT-3.1.3-10 / 4.7.3].
    let mut c = connect_packet("victim-c", true);
    c.will = Some(will("w/#", "x", QoS::AtMostOnce, false));
    v.push(connect_case("CONNECT will topic with #", connect_bytes(c)));
    // Client id not UTF-8 [MQTT-3.1.3-4].
    let mut b = connect_bytes(connect_packet("vv", true));
    let at = b.len() - 2;
    b[at] = 0xC3;
    b[at + 1] = 0x28;
    v.push(connect_case("CONNECT client id bad UTF-8", b));
    // Remaining length cuts the client id short.
    let mut b = connect_bytes(connect_packet("victim-c", true));
    b.truncate(b.len() - 3);
    b[1] -= 3;
    v.push(connect_case("CONNECT truncated payload", b));
    // Bytes left over after the payload.
    let mut b = connect_bytes(connect_packet("victim-c", true));
    b.push(0);
    b[1] += 1;
    v.push(connect_case("CONNECT with trailing byte", b));
    v
}

/// The bystander receives a fresh publish (skipping anything older).
fn bystander_gets(by: &mut Client, publ: &mut Client, payload: &str) {
    publ.publish("by/x", payload.as_bytes(), QoS::AtLeastOnce, false);
    for _ in 0..50 {
        let p = by
            .recv_publish()
            .unwrap_or_else(|| panic!("bystander did not get {payload:?}"));
        by.ack(&p);
        if p.payload.as_ref() == payload.as_bytes() {
            return;
        }
    }
    panic!("bystander did not get {payload:?}");
}

#[test]
fn malformed_table_closes_only_the_victim() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut by, _) = Client::connect(b.addr, &b.id_on("bystander", cores - 1), true);
        by.subscribe("by/#", QoS::AtLeastOnce);
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("publisher", 0), true);
        let cases = cases();
        for (i, case) in cases.iter().enumerate() {
            let mut victim = if case.first {
                Client::raw(b.addr)
            } else {
                let id = b.id_on(&format!("victim{i}"), i % cores);
                Client::connect(b.addr, &id, true).0
            };
            victim.send_raw(&case.bytes);
            assert_eq!(
                victim.recv_within(Duration::from_millis(50)),
                None,
                "{}: nothing is answered",
                case.name
            );
            assert!(
                victim.closed(),
                "{} ({cores} shards): victim closed",
                case.name
            );
            bystander_gets(&mut by, &mut publ, case.name);
        }
        let proto = cases.iter().filter(|c| c.kind == Kind::Protocol).count() as u64;
        let large = cases.len() as u64 - proto;
        let m = b.wait_metrics(|m| m.protocol_errors >= proto && m.packets_too_large >= large);
        assert_eq!(m.packets_too_large, large, "{m:?}");
        assert_eq!(m.protocol_errors, proto, "{m:?}");
        assert_eq!(
            m.connects_refused, 0,
            "no CONNACK refusal for malformed CONNECT"
        );
        // Still accepting new connections.
        let (mut fresh, _) = Client::connect(b.addr, "fresh", true);
        fresh.ping();
        bystander_gets(&mut by, &mut publ, "end");
    });
}

/// A fixed-seed xorshift generator: reproducible garbage.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// 200 random byte strings, before or after CONNECT, never take the broker down.
#[test]
fn random_garbage_never_kills_the_broker() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut by, _) = Client::connect(b.addr, &b.id_on("bystander", cores - 1), true);
        by.subscribe("by/#", QoS::AtLeastOnce);
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("publisher", 0), true);
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ cores as u64);
        for i in 0..200 {
            let len = 1 + (rng.next() % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let mut c = if i % 2 == 0 {
                Client::raw(b.addr)
            } else {
                Client::connect(b.addr, &format!("fz-{i}"), true).0
            };
            c.send_raw(&bytes);
            if i % 50 == 49 {
                bystander_gets(&mut by, &mut publ, &format!("round {i}"));
            }
        }
        bystander_gets(&mut by, &mut publ, "after fuzz");
        let (mut fresh, _) = Client::connect(b.addr, "fresh", true);
        fresh.ping();
        drop(fresh);
        // Every garbage socket was closed by us or the broker: only two remain.
        let m = b.wait_metrics(|m| m.connections_open == 2);
        assert_eq!(m.connections_open, 2, "{m:?}");
    });
}

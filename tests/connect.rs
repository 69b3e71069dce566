//! CONNECT and CONNACK (MQTT 3.1.1 §3.1, §3.2), on 1 and 2 shards.

mod common;
use common::*;
use coremq::codec::{Ack, Disconnect};
use coremq::codec::{Packet, ProtocolVersion, QoS, Reason};
use coremq::Hooks;
use std::io::Read;
use std::time::{Duration, Instant};

/// A CONNECT's bytes with the protocol name and level replaced (level 5
/// gets the empty MQTT 5 property length).
fn connect_with_protocol(name: &[u8], level: u8, id: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(name.len() as u16).to_be_bytes());
    body.extend_from_slice(name);
    body.push(level);
    body.push(0b0000_0010); // clean session
    body.extend_from_slice(&60u16.to_be_bytes());
    if level == 5 {
        body.push(0); // property length
    }
    body.extend_from_slice(&(id.len() as u16).to_be_bytes());
    body.extend_from_slice(id.as_bytes());
    let mut out = vec![0x10, body.len() as u8];
    out.extend_from_slice(&body);
    out
}

/// [MQTT-3.1.2-2]: a known protocol name with an unsupported level gets
/// CONNACK 0x01, then the connection is closed.
#[test]
fn unacceptable_protocol_level_gets_connack_1_then_close() {
    each_cores(|cores| {
        let b = start(cores);
        for (name, level) in [
            (&b"MQTT"[..], 6u8),
            (b"MQTT", 3),
            (b"MQIsdp", 4),
            (b"MQTT", 0),
        ] {
            for shard in 0..cores {
                let id = b.id_on("lvl", shard);
                let mut c = Client::raw(b.addr);
                c.send_raw(&connect_with_protocol(name, level, &id));
                match c.recv() {
                    Some(Packet::ConnAck(ack)) => {
                        assert_eq!(
                            ack.code,
                            Reason::UNSUPPORTED_PROTOCOL_VERSION,
                            "{name:?} level {level}"
                        );
                        assert!(!ack.session_present);
                    }
                    other => panic!("{name:?} level {level}: expected CONNACK, got {other:?}"),
                }
                assert!(c.closed(), "closed after CONNACK 0x01");
            }
        }
        let m = b.wait_metrics(|m| m.connects_refused >= 4 * cores as u64);
        assert!(m.connects_refused >= 4 * cores as u64, "{m:?}");
        // Still serving.
        Client::connect(b.addr, "after", true);
    });
}

/// A level 5 CONNECT on any shard is answered with an MQTT 5 CONNACK
/// (§3.2.2: flags, reason 0x00, then properties), whatever shard accepted it.
#[test]
fn mqtt5_connect_gets_a_v5_connack_on_every_shard() {
    each_cores(|cores| {
        let b = start(cores);
        for shard in 0..cores {
            let id = b.id_on("v5", shard);
            let mut c = Client::raw(b.addr);
            c.send_raw(&connect_with_protocol(b"MQTT", 5, &id));
            let mut head = [0u8; 4];
            c.stream.read_exact(&mut head).expect("CONNACK");
            assert_eq!(head[0], 0x20, "CONNACK");
            assert_eq!(&head[2..4], [0x00, 0x00], "not present, success");
        }
        let m = b.wait_metrics(|m| m.connects_accepted >= cores as u64);
        assert_eq!(m.connects_refused, 0, "{m:?}");
    });
}

/// [MQTT-3.1.2-1]: a bad protocol name closes without a CONNACK.
#[test]
fn bad_protocol_name_closes_without_connack() {
    each_cores(|cores| {
        let b = start(cores);
        for name in [&b"MQTX"[..], b"mqtt", b"", b"MQIsdpX"] {
            let mut c = Client::raw(b.addr);
            c.send_raw(&connect_with_protocol(name, 4, "badname"));
            assert_eq!(c.recv_within(Duration::from_millis(300)), None, "{name:?}");
            assert!(c.closed(), "{name:?}: closed");
        }
        let m = b.wait_metrics(|m| m.protocol_errors >= 4);
        assert!(m.protocol_errors >= 4, "{m:?}");
        assert_eq!(m.connects_refused, 0);
        Client::connect(b.addr, "after", true);
    });
}

/// [MQTT-3.1.3-8]: empty client id with clean session 0 gets CONNACK 0x02.
#[test]
fn empty_client_id_with_clean_session_0_is_rejected() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut c, ack) = Client::connect_with(b.addr, connect_packet("", false));
        assert_eq!(ack.code, Reason::CLIENT_IDENTIFIER_NOT_VALID);
        assert!(!ack.session_present);
        assert!(c.closed());
        let m = b.wait_metrics(|m| m.connects_refused >= 1);
        assert_eq!(m.connects_refused, 1);
    });
}

/// [MQTT-3.1.3-6], [MQTT-3.1.3-7]: empty client id with clean session 1 is
/// accepted with a server-assigned id; two such clients are independent.
#[test]
fn empty_client_id_with_clean_session_1_is_assigned() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut a, ack) = Client::connect_with(b.addr, connect_packet("", true));
        assert_eq!(ack.code, Reason::SUCCESS);
        assert!(!ack.session_present);
        let (mut c, ack) = Client::connect_with(b.addr, connect_packet("", true));
        assert_eq!(ack.code, Reason::SUCCESS);
        // Both work: the second did not take over the first.
        a.subscribe("anon/a", QoS::AtMostOnce);
        c.subscribe("anon/c", QoS::AtMostOnce);
        let (mut p, _) = Client::connect(b.addr, "pub", true);
        p.publish("anon/a", b"1", QoS::AtMostOnce, false);
        p.publish("anon/c", b"2", QoS::AtMostOnce, false);
        assert_eq!(a.recv_publish().expect("a").payload.as_ref(), b"1");
        assert_eq!(c.recv_publish().expect("c").payload.as_ref(), b"2");
        let m = b.wait_metrics(|m| m.connects_accepted >= 3);
        assert_eq!(m.takeovers, 0);
    });
}

/// A client id longer than mqtt.max_client_id_len gets CONNACK 0x02; one of
/// exactly that length is accepted.
#[test]
fn client_id_over_limit_is_rejected() {
    each_cores(|cores| {
        let mut cfg = config(cores);
        cfg.mqtt.max_client_id_len = 16;
        let b = start_with(cfg, Hooks::new());
        let ok = "x".repeat(16);
        Client::connect(b.addr, &ok, true);
        for shard in 0..cores {
            // An over-long id homed on each shard (the refusal happens on the home shard).
            let long = (0..)
                .map(|i| format!("{i:0>17}"))
                .find(|id| coremq::home_shard(id, cores) == shard)
                .unwrap();
            let (mut c, ack) = Client::connect_with(b.addr, connect_packet(&long, true));
            assert_eq!(ack.code, Reason::CLIENT_IDENTIFIER_NOT_VALID);
            assert!(c.closed());
        }
        let m = b.wait_metrics(|m| m.connects_refused >= cores as u64);
        assert_eq!(m.connects_refused, cores as u64);
    });
}

/// [MQTT-3.1.0-1]: the first packet must be CONNECT.
#[test]
fn first_packet_not_connect_closes() {
    each_cores(|cores| {
        let b = start(cores);
        let firsts = [
            Packet::PingReq,
            Packet::Disconnect(Disconnect::normal()),
            Packet::PubAck(Ack::new(1)),
            Packet::Subscribe(coremq::codec::Subscribe {
                pkid: 1,
                filters: vec![coremq::codec::SubscribeFilter::new("a", QoS::AtMostOnce)],
                props: None,
            }),
        ];
        for p in &firsts {
            let mut c = Client::raw(b.addr);
            c.send(p);
            assert_eq!(c.recv_within(Duration::from_millis(200)), None, "{p:?}");
            assert!(c.closed(), "{p:?}: closed");
        }
        let m = b.wait_metrics(|m| m.protocol_errors >= firsts.len() as u64);
        assert_eq!(m.protocol_errors, firsts.len() as u64);
        assert_eq!(m.connects_accepted, 0);
    });
}

/// [MQTT-3.1.0-2]: a second CONNECT is a protocol violation.
#[test]
fn second_connect_closes() {
    each_cores(|cores| {
        let b = start(cores);
        for shard in 0..cores {
            let id = b.id_on("twice", shard);
            let (mut c, _) = Client::connect(b.addr, &id, true);
            c.send(&Packet::Connect(Box::new(connect_packet(&id, true))));
            assert_eq!(c.recv_within(Duration::from_millis(200)), None);
            assert!(c.closed());
        }
        let m = b.wait_metrics(|m| m.protocol_errors >= cores as u64);
        assert_eq!(m.protocol_errors, cores as u64);
    });
}

/// MQTT 3.1 ("MQIsdp", level 3) connects, subscribes and publishes, also
/// across shards and with 3.1.1 clients.
#[test]
fn mqtt_31_client_pub_sub() {
    each_cores(|cores| {
        let b = start(cores);
        let v31 = |id: &str| {
            let mut c = connect_packet(id, true);
            c.version = ProtocolVersion::V31;
            let (client, ack) = Client::connect_with(b.addr, c);
            assert_eq!(ack.code, Reason::SUCCESS);
            client
        };
        let mut old_sub = v31(&b.id_on("old-sub", cores - 1));
        assert_eq!(
            old_sub.subscribe("v31/#", QoS::ExactlyOnce),
            coremq::codec::SubAckCode::Granted(QoS::ExactlyOnce)
        );
        let (mut new_sub, _) = Client::connect(b.addr, &b.id_on("new-sub", 0), true);
        new_sub.subscribe("v31/#", QoS::AtLeastOnce);
        let mut old_pub = v31(&b.id_on("old-pub", 0));
        old_pub.publish("v31/a", b"from 3.1", QoS::ExactlyOnce, false);
        let p = old_sub.recv_publish().expect("3.1 -> 3.1");
        assert_eq!(
            (&*p.topic, p.payload.as_ref(), p.qos),
            ("v31/a", &b"from 3.1"[..], QoS::ExactlyOnce)
        );
        old_sub.ack(&p);
        let p = new_sub.recv_publish().expect("3.1 -> 3.1.1");
        assert_eq!(p.payload.as_ref(), b"from 3.1");
        assert_eq!(p.qos, QoS::AtLeastOnce);
        new_sub.ack(&p);
        new_sub.publish("v31/b", b"from 3.1.1", QoS::AtLeastOnce, false);
        let p = old_sub.recv_publish().expect("3.1.1 -> 3.1");
        assert_eq!(p.payload.as_ref(), b"from 3.1.1");
        old_sub.ack(&p);
        old_pub.ping();
    });
}

/// A socket that sends nothing, or only part of a CONNECT, is closed after
/// mqtt.connect_timeout_s.
#[test]
fn connect_timeout_closes_silent_and_partial_sockets() {
    each_cores(|cores| {
        let mut cfg = config(cores);
        cfg.mqtt.connect_timeout_s = 1;
        let b = start_with(cfg, Hooks::new());
        let start = Instant::now();
        let mut silent = Client::raw(b.addr);
        let mut partial = Client::raw(b.addr);
        let connect = packet_bytes(&Packet::Connect(Box::new(connect_packet("slow", true))));
        partial.send_raw(&connect[..connect.len() / 2]);
        // Open for most of the timeout ...
        silent.expect_silence(Duration::from_millis(600));
        // ... and closed a little after it.
        assert!(silent.closed(), "silent socket closed");
        assert!(partial.closed(), "partial CONNECT closed");
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "closed late: {:?}",
            start.elapsed()
        );
        let m = b.wait_metrics(|m| m.connect_timeouts >= 2);
        assert_eq!(m.connect_timeouts, 2, "{m:?}");
        // A client that connects in time is not timed out.
        let (mut c, _) = Client::connect(b.addr, "prompt", true);
        std::thread::sleep(Duration::from_millis(1300));
        c.ping();
        assert_eq!(b.metrics().connect_timeouts, 2);
    });
}

/// [MQTT-3.2.2-1], [MQTT-3.2.2-2], [MQTT-3.2.2-3]: session present is 0 for
/// clean session 1 and for a new clean-0 session, 1 when one is resumed.
#[test]
fn session_present_flag() {
    each_cores(|cores| {
        let b = start(cores);
        for shard in 0..cores {
            let id = b.id_on("sp", shard);
            let (c, present) = Client::connect(b.addr, &id, true);
            assert!(!present, "clean 1");
            c.disconnect();
            let (c, present) = Client::connect(b.addr, &id, false);
            assert!(!present, "clean 0, new");
            c.disconnect();
            let (c, present) = Client::connect(b.addr, &id, false);
            assert!(present, "clean 0, resumed");
            // Takeover while connected resumes too.
            let (c2, present) = Client::connect(b.addr, &id, false);
            assert!(present, "clean 0, taken over");
            drop(c);
            c2.disconnect();
            // Clean 1 discards the stored session [MQTT-3.1.2-6] ...
            let (c, present) = Client::connect(b.addr, &id, true);
            assert!(!present, "clean 1 after a stored session");
            c.disconnect();
            // ... so clean 0 afterwards starts a new one.
            let (c, present) = Client::connect(b.addr, &id, false);
            assert!(!present, "clean 0 after clean 1");
            c.disconnect();
        }
    });
}

/// [MQTT-3.1.4-2]: a second connection with the same client id closes the first.
#[test]
fn takeover_closes_the_old_connection() {
    each_cores(|cores| {
        let b = start(cores);
        let id = b.id_on("dup", cores - 1);
        let (mut old, _) = Client::connect(b.addr, &id, true);
        let (mut new, _) = Client::connect(b.addr, &id, true);
        assert!(old.closed(), "old connection closed");
        new.ping();
        let m = b.wait_metrics(|m| m.takeovers >= 1);
        assert_eq!(m.takeovers, 1);
    });
}

/// Packets pipelined behind CONNECT in one write are served in order, also
/// when the socket is handed to the client's home shard with them.
#[test]
fn packets_pipelined_behind_connect() {
    each_cores(|cores| {
        let b = start(cores);
        for shard in 0..cores {
            let id = b.id_on("pipe", shard);
            let mut bytes = packet_bytes(&Packet::Connect(Box::new(connect_packet(&id, true))));
            bytes.extend(packet_bytes(&Packet::Subscribe(coremq::codec::Subscribe {
                pkid: 7,
                filters: vec![coremq::codec::SubscribeFilter::new(
                    format!("pipe/{shard}"),
                    QoS::AtLeastOnce,
                )],
                props: None,
            })));
            bytes.extend(packet_bytes(&Packet::Publish(coremq::codec::Publish {
                dup: false,
                qos: QoS::AtLeastOnce,
                retain: false,
                topic: format!("pipe/{shard}").into(),
                pkid: 8,
                payload: bytes::Bytes::from_static(b"self"),
                props: None,
            })));
            bytes.extend(packet_bytes(&Packet::PingReq));
            let mut c = Client::raw(b.addr);
            c.send_raw(&bytes);
            match c.recv() {
                Some(Packet::ConnAck(ack)) => {
                    assert_eq!(ack.code, Reason::SUCCESS)
                }
                other => panic!("expected CONNACK, got {other:?}"),
            }
            // The SUBACK may wait for the other shards (interest barrier);
            // the rest need not wait for it.
            let mut rest = Vec::new();
            for _ in 0..4 {
                rest.push(c.recv().expect("SUBACK, PUBACK, PUBLISH and PINGRESP"));
            }
            assert!(
                rest.iter()
                    .any(|p| matches!(p, Packet::SubAck(s) if s.pkid == 7)),
                "{rest:?}"
            );
            assert!(rest.contains(&Packet::PubAck(Ack::new(8))), "{rest:?}");
            assert!(rest.contains(&Packet::PingResp), "{rest:?}");
            assert!(
                rest.iter()
                    .any(|p| matches!(p, Packet::Publish(p) if p.payload.as_ref() == b"self")),
                "{rest:?}"
            );
        }
    });
}

/// A CONNECT that arrives one byte at a time is assembled (and handed off).
#[test]
fn connect_split_into_single_bytes() {
    each_cores(|cores| {
        let b = start(cores);
        for shard in 0..cores {
            let id = b.id_on("slow", shard);
            let bytes = packet_bytes(&Packet::Connect(Box::new(connect_packet(&id, true))));
            let mut c = Client::raw(b.addr);
            for byte in &bytes {
                c.send_raw(std::slice::from_ref(byte));
                std::thread::sleep(Duration::from_millis(3));
            }
            match c.recv() {
                Some(Packet::ConnAck(ack)) => {
                    assert_eq!(ack.code, Reason::SUCCESS)
                }
                other => panic!("expected CONNACK, got {other:?}"),
            }
            c.ping();
        }
    });
}

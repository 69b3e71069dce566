//! The MQTT 5 PUBLISH path over real sockets, at 1, 2 and 4 shards (the
//! publisher and the subscribers homed on different shards where there are
//! several): forwarded properties between MQTT 5 and 3.1.1 clients both
//! ways, message expiry, topic aliases both ways, the client's Maximum
//! Packet Size and Receive Maximum, the broker's Receive Maximum,
//! availability, payload format and the reasons of PUBACK/PUBREC.

mod common;
use common::*;
use coremq::codec::{Packet, Properties, Publish, QoS, Reason};
use coremq::Hooks;
use std::time::Duration;

fn props_publish(topic: &str, payload: &[u8], qos: QoS, pkid: u16, props: Properties) -> Publish {
    let mut p = publish_packet(topic, payload, qos, pkid, false, false);
    p.props = (props != Properties::default()).then(|| Box::new(props));
    p
}

fn app_props() -> Properties {
    Properties {
        payload_format_indicator: Some(1),
        content_type: Some("application/json".into()),
        response_topic: Some("replies/1".into()),
        correlation_data: Some(bytes::Bytes::from_static(b"\x01\x02")),
        user_properties: vec![
            ("z".into(), "1".into()),
            ("a".into(), "2".into()),
            ("z".into(), "0".into()),
        ],
        ..Properties::default()
    }
}

fn props_of(p: &Publish) -> Properties {
    p.props.as_deref().cloned().unwrap_or_default()
}

/// The last shard (the publisher's home is shard 0).
fn last(cores: usize) -> usize {
    cores - 1
}

#[test]
fn properties_between_v5_and_v311_clients_both_ways() {
    // [MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17]
    // [MQTT-3.3.2-18] [MQTT-3.3.2-20]: forwarded unaltered to MQTT 5
    // subscribers; a 3.1.1 subscriber gets the message without them.
    each_cores(|cores| {
        let b = start(cores);
        let (mut s5, _) = Client::connect5(
            b.addr,
            &b.id_on("s5", last(cores)),
            true,
            Properties::default(),
        );
        let (mut s3, _) = Client::connect(b.addr, &b.id_on("s3", cores / 2), true);
        s5.subscribe("mix/#", QoS::AtLeastOnce);
        s3.subscribe("mix/#", QoS::AtLeastOnce);
        let (mut p5, _) = Client::connect5(b.addr, &b.id_on("p5", 0), true, Properties::default());
        let mut props = app_props();
        props.topic_alias = Some(1);
        let reason =
            p5.publish_for_reason(props_publish("mix/5", b"{}", QoS::AtLeastOnce, 1, props));
        assert_eq!(reason, Reason::SUCCESS);
        let got = s5.recv_acked(1).remove(0);
        assert_eq!(props_of(&got), app_props(), "{cores} shards");
        let got = s3.recv_acked(1).remove(0);
        assert_eq!((&*got.topic, got.props), ("mix/5", None));
        // A 3.1.1 publisher's message reaches the MQTT 5 subscriber bare.
        let (mut p3, _) = Client::connect(b.addr, &b.id_on("p3", 0), true);
        p3.publish("mix/3", b"plain", QoS::AtLeastOnce, false);
        let got = s5.recv_acked(1).remove(0);
        assert_eq!(
            (&*got.topic, &got.payload[..], got.props),
            ("mix/3", &b"plain"[..], None)
        );
    });
}

#[test]
fn expired_messages_are_not_delivered_and_the_rest_carry_what_is_left() {
    // [MQTT-3.3.2-5] [MQTT-3.3.2-6]
    each_cores(|cores| {
        let b = start(cores);
        let id = b.id_on("ex", last(cores));
        let session = Properties {
            session_expiry_interval: Some(60),
            ..Properties::default()
        };
        let (mut s, _) = Client::connect5(b.addr, &id, true, session.clone());
        s.subscribe("ex/t", QoS::AtLeastOnce);
        s.disconnect_wait();
        let (mut p, _) = Client::connect5(b.addr, &b.id_on("exp", 0), true, Properties::default());
        for (payload, secs, pkid) in [(&b"short"[..], 1, 1), (b"long", 30, 2)] {
            let props = Properties {
                message_expiry_interval: Some(secs),
                ..Properties::default()
            };
            p.publish_for_reason(props_publish(
                "ex/t",
                payload,
                QoS::AtLeastOnce,
                pkid,
                props,
            ));
        }
        std::thread::sleep(Duration::from_millis(1_100));
        let (mut s, ack) = Client::connect5(b.addr, &id, false, session);
        assert!(ack.session_present);
        let got = s.recv_acked(1).remove(0);
        assert_eq!(&got.payload[..], b"long");
        let left = props_of(&got).message_expiry_interval.expect("expiry left");
        assert!((28..=29).contains(&left), "{left} s left");
        s.expect_silence(Duration::from_millis(200));
        let m = b.wait_metrics(|m| m.dropped_expired == 1);
        assert_eq!(m.dropped_expired, 1);
    });
}

#[test]
fn topic_aliases_both_ways() {
    // Inbound: §3.3.2.3.4, [MQTT-3.3.2-8/9] (0x94); outbound:
    // [MQTT-3.3.2-10/11/12], and a new connection starts with none.
    each_cores(|cores| {
        let b = start(cores);
        let wants = Properties {
            topic_alias_maximum: Some(8),
            ..Properties::default()
        };
        let sid = b.id_on("al-s", last(cores));
        let (mut s, _) = Client::connect5(b.addr, &sid, true, wants.clone());
        s.subscribe("al/#", QoS::AtMostOnce);
        let (mut p, _) = Client::connect5(b.addr, &b.id_on("al-p", 0), true, Properties::default());
        let alias = |topic: &str, a: u16| {
            let props = Properties {
                topic_alias: Some(a),
                ..Properties::default()
            };
            props_publish(topic, b"x", QoS::AtMostOnce, 0, props)
        };
        p.send(&Packet::Publish(alias("al/one", 3)));
        p.send(&Packet::Publish(alias("", 3)));
        let seen: Vec<(String, Option<u16>)> = (0..2)
            .map(|_| s.recv_publish().expect("PUBLISH"))
            .map(|m| (m.topic.to_string(), props_of(&m).topic_alias))
            .collect();
        assert_eq!(
            seen,
            [("al/one".to_string(), Some(1)), (String::new(), Some(1))]
        );
        drop(s);
        let (mut s, _) = Client::connect5(b.addr, &sid, true, wants);
        s.subscribe("al/#", QoS::AtMostOnce);
        p.send(&Packet::Publish(alias("", 3)));
        let m = s.recv_publish().expect("PUBLISH");
        assert_eq!((&*m.topic, props_of(&m).topic_alias), ("al/one", Some(1)));
        // Alias 0 is a Topic Alias invalid.
        p.send(&Packet::Publish(alias("al/x", 0)));
        assert_eq!(server_disconnect(&mut p), Some(Reason::TOPIC_ALIAS_INVALID));
        assert!(p.closed());
    });
}

#[test]
fn the_clients_maximum_packet_size_and_receive_maximum() {
    // [MQTT-3.1.2-24/25]: a PUBLISH over it is not sent to that client;
    // [MQTT-3.3.4-9]: no more unacknowledged QoS 1 than its Receive Maximum.
    each_cores(|cores| {
        let b = start(cores);
        let limits = Properties {
            maximum_packet_size: Some(64),
            receive_maximum: Some(1),
            ..Properties::default()
        };
        let (mut small, _) = Client::connect5(b.addr, &b.id_on("mps", last(cores)), true, limits);
        small.subscribe("mps/t", QoS::AtLeastOnce);
        let (mut other, _) = Client::connect(b.addr, &b.id_on("mps-o", cores / 2), true);
        other.subscribe("mps/t", QoS::AtLeastOnce);
        let (mut p, _) = Client::connect(b.addr, &b.id_on("mps-p", 0), true);
        p.publish("mps/t", &[b'x'; 100], QoS::AtLeastOnce, false);
        p.publish("mps/t", b"one", QoS::AtLeastOnce, false);
        p.publish("mps/t", b"two", QoS::AtLeastOnce, false);
        assert_eq!(other.recv_acked(3).len(), 3);
        let first = small.recv_publish().expect("the first small one");
        assert_eq!(&first.payload[..], b"one");
        // The second waits for the first's PUBACK.
        small.expect_silence(Duration::from_millis(300));
        small.ack(&first);
        let second = small.recv_publish().expect("the second");
        assert_eq!(&second.payload[..], b"two");
        let m = b.wait_metrics(|m| m.dropped_too_large == 1);
        assert_eq!(m.dropped_too_large, 1);
    });
}

#[test]
fn the_brokers_receive_maximum_is_0x93() {
    // [MQTT-3.3.4-8]: CONNACK says session.max_awaiting_rel; one more QoS 2
    // PUBLISH without PUBREL is over it.
    each_cores(|cores| {
        let mut cfg = config(cores);
        cfg.session.max_awaiting_rel = 2;
        let b = start_with(cfg, Hooks::new());
        let (mut p, ack) = Client::connect5(
            b.addr,
            &b.id_on("rm", last(cores)),
            true,
            Properties::default(),
        );
        assert_eq!(ack.props.and_then(|p| p.receive_maximum), Some(2));
        for pkid in 1..=3 {
            p.send(&Packet::Publish(publish_packet(
                "rm/t",
                b"x",
                QoS::ExactlyOnce,
                pkid,
                false,
                false,
            )));
        }
        assert_eq!(
            server_disconnect(&mut p),
            Some(Reason::RECEIVE_MAXIMUM_EXCEEDED)
        );
        assert!(p.closed());
    });
}

#[test]
fn retain_and_qos_not_offered_close_with_their_reason() {
    // §3.2.2.3.5 Retain Available (0x9A), §3.2.2.3.4 Maximum QoS (0x9B);
    // a 3.1.1 client is closed without a DISCONNECT.
    each_cores(|cores| {
        let mut cfg = config(cores);
        cfg.mqtt.retain_available = false;
        cfg.mqtt.maximum_qos = 1;
        let b = start_with(cfg, Hooks::new());
        let cases = [
            (
                publish_packet("av/t", b"x", QoS::AtMostOnce, 0, false, true),
                Reason::RETAIN_NOT_SUPPORTED,
            ),
            (
                publish_packet("av/t", b"x", QoS::ExactlyOnce, 1, false, false),
                Reason::QOS_NOT_SUPPORTED,
            ),
        ];
        for (i, (p, reason)) in cases.into_iter().enumerate() {
            let id = b.id_on(&format!("av{i}"), last(cores));
            let (mut c, _) = Client::connect5(b.addr, &id, true, Properties::default());
            c.send(&Packet::Publish(p.clone()));
            assert_eq!(server_disconnect(&mut c), Some(reason));
            assert!(c.closed());
            let (mut c3, _) = Client::connect(b.addr, &id, true);
            c3.send(&Packet::Publish(p));
            assert!(c3.closed(), "3.1.1 client closed");
        }
        assert_eq!(
            b.wait_metrics(|m| m.publishes_refused == 4)
                .publishes_refused,
            4
        );
    });
}

#[test]
fn puback_and_pubrec_reasons() {
    // §3.4.2.1 / §3.5.2.1: 0x10 no matching subscribers (a subscriber on
    // any shard counts), 0x87 refused by the message.publish hook, 0x99 a
    // payload that is not the UTF-8 its Payload Format Indicator says.
    each_cores(|cores| {
        let mut hooks = Hooks::new();
        hooks.on_message_publish(|_, m| (!m.topic.starts_with("deny/")).then_some(m));
        let b = start_with(config(cores), hooks);
        let (mut p, _) = Client::connect5(b.addr, &b.id_on("rs", 0), true, Properties::default());
        let plain =
            |topic: &str, qos, pkid| props_publish(topic, b"x", qos, pkid, Properties::default());
        assert_eq!(
            p.publish_for_reason(plain("rs/none", QoS::AtLeastOnce, 1)),
            Reason::NO_MATCHING_SUBSCRIBERS
        );
        assert_eq!(
            p.publish_for_reason(plain("rs/none", QoS::ExactlyOnce, 2)),
            Reason::NO_MATCHING_SUBSCRIBERS
        );
        let (mut s, _) = Client::connect(b.addr, &b.id_on("rs-s", last(cores)), true);
        s.subscribe("rs/some", QoS::AtMostOnce);
        assert_eq!(
            p.publish_for_reason(plain("rs/some", QoS::AtLeastOnce, 3)),
            Reason::SUCCESS
        );
        assert!(s.recv_publish().is_some());
        assert_eq!(
            p.publish_for_reason(plain("deny/x", QoS::AtLeastOnce, 4)),
            Reason::NOT_AUTHORIZED
        );
        assert_eq!(
            p.publish_for_reason(plain("deny/x", QoS::ExactlyOnce, 5)),
            Reason::NOT_AUTHORIZED
        );
        let utf8 = Properties {
            payload_format_indicator: Some(1),
            ..Properties::default()
        };
        let bad = props_publish("rs/some", b"\xc3\x28", QoS::AtLeastOnce, 6, utf8);
        assert_eq!(p.publish_for_reason(bad), Reason::PAYLOAD_FORMAT_INVALID);
        s.expect_silence(Duration::from_millis(200));
        // A 3.1.1 publisher's PUBACK is the plain one (the client helper
        // checks its exact bytes).
        let (mut p3, _) = Client::connect(b.addr, &b.id_on("rs3", 0), true);
        p3.publish("rs/none", b"x", QoS::AtLeastOnce, false);
    });
}

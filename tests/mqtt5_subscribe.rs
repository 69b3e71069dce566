//! MQTT 5 subscribing over real sockets, at 1, 2 and 4 shards (subscriber
//! and publisher homed on different shards): No Local, Retain As Published,
//! Retain Handling, subscription identifiers (one copy with every matching
//! one), SUBACK and UNSUBACK reason codes, and 3.1.1 SUBACK bytes unchanged.

mod common;
use common::*;
use coremq::codec::{Packet, Properties, Publish, QoS, Reason, SubAckCode};
use coremq::Hooks;
use std::time::Duration;

fn v5(b: &TestBroker, prefix: &str, shard: usize) -> Client {
    Client::connect5(b.addr, &b.id_on(prefix, shard), true, Properties::default()).0
}

/// A subscriber on shard 0 and a publisher on the last shard.
fn pair(b: &TestBroker) -> (Client, Client) {
    (v5(b, "sub", 0), v5(b, "pub", b.shards - 1))
}

fn q1(filter: &str) -> coremq::codec::SubscribeFilter {
    sub_opts(filter, QoS::AtLeastOnce, false, false, 0)
}

fn ids(p: &Publish) -> Vec<u32> {
    let mut ids = p
        .props
        .as_ref()
        .map_or_else(Vec::new, |p| p.subscription_identifiers.clone());
    ids.sort_unstable();
    ids
}

#[test]
fn no_local_and_its_protocol_error_on_a_shared_subscription() {
    // [MQTT-3.8.3-3] [MQTT-3.8.3-4]
    each_cores(|cores| {
        let b = start(cores);
        let (mut s, mut p) = pair(&b);
        let nl = sub_opts("t", QoS::AtLeastOnce, true, false, 0);
        assert_eq!(
            s.subscribe5(vec![nl], None),
            vec![SubAckCode::Granted(QoS::AtLeastOnce)]
        );
        // Its own message matches nobody: PUBACK 0x10 No matching subscribers.
        let own = publish_packet("t", b"own", QoS::AtLeastOnce, 77, false, false);
        assert_eq!(s.publish_for_reason(own), Reason::NO_MATCHING_SUBSCRIBERS);
        p.publish("t", b"theirs", QoS::AtLeastOnce, false);
        let got = s.recv_publish().expect("the other client's message");
        assert_eq!(text(&got), "theirs", "{cores} shards");
        s.ack(&got);
        s.expect_silence(Duration::from_millis(200));
        let shared = sub_opts("$share/g/t", QoS::AtLeastOnce, true, false, 0);
        s.send(&Packet::Subscribe(coremq::codec::Subscribe {
            pkid: 9,
            filters: vec![shared],
            props: None,
        }));
        match s.recv() {
            Some(Packet::Disconnect(d)) => assert_eq!(d.reason, Reason::PROTOCOL_ERROR),
            other => panic!("expected DISCONNECT 0x82, got {other:?}"),
        }
        assert!(s.closed());
    });
}

#[test]
fn retain_as_published_and_retain_handling() {
    // [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11] [MQTT-3.3.1-12] [MQTT-3.3.1-13]
    each_cores(|cores| {
        let b = start(cores);
        let (mut s, mut p) = pair(&b);
        // Its PUBACK (0x10: nobody subscribed yet) waits for every shard's store.
        let kept = publish_packet("r/1", b"kept", QoS::AtLeastOnce, 50, false, true);
        assert_eq!(p.publish_for_reason(kept), Reason::NO_MATCHING_SUBSCRIBERS);
        // 1: sent for the new subscription, not again when it exists.
        let rh1 = sub_opts("r/+", QoS::AtLeastOnce, false, true, 1);
        s.subscribe5(vec![rh1.clone()], None);
        let first = s.recv_publish().expect("retained on a new subscription");
        assert!(first.retain);
        s.ack(&first);
        s.subscribe5(vec![rh1], None);
        // 2: never; 0: on every subscribe.
        s.subscribe5(
            vec![sub_opts("r/1", QoS::AtLeastOnce, false, false, 2)],
            None,
        );
        s.expect_silence(Duration::from_millis(200));
        s.subscribe5(
            vec![sub_opts("r/#", QoS::AtLeastOnce, false, false, 0)],
            None,
        );
        let again = s.recv_publish().expect("retained for 0");
        s.ack(&again);
        // Live: r/+ asks Retain As Published, so the one copy keeps RETAIN.
        p.publish("r/1", b"live", QoS::AtLeastOnce, true);
        let live = s.recv_publish().expect("live");
        assert!(live.retain, "{cores} shards");
        s.ack(&live);
        s.expect_silence(Duration::from_millis(200));
        let mut old = Client::connect(b.addr, &b.id_on("old", 0), true).0;
        old.subscribe("r/2", QoS::AtMostOnce);
        p.publish("r/2", b"x", QoS::AtMostOnce, true);
        assert!(!old.recv_publish().expect("3.1.1 live").retain);
    });
}

#[test]
fn identifiers_of_overlapping_subscriptions_across_shards() {
    // [MQTT-3.3.4-3] [MQTT-3.3.4-4]: one copy carrying both identifiers,
    // published on another shard; a re-SUBSCRIBE replaces the subscription
    // [MQTT-3.8.4-3], so one without an identifier drops it.
    each_cores(|cores| {
        let b = start(cores);
        let (mut s, mut p) = pair(&b);
        s.subscribe5(vec![q1("d/+")], Some(1));
        s.subscribe5(vec![q1("d/#")], Some(268_435_455));
        p.publish("d/x", b"m", QoS::AtLeastOnce, false);
        let got = s.recv_publish().expect("one copy");
        assert_eq!(ids(&got), vec![1, 268_435_455], "{cores} shards");
        s.ack(&got);
        s.expect_silence(Duration::from_millis(200));
        s.subscribe5(vec![q1("d/#")], None);
        p.publish("d/x", b"n", QoS::AtMostOnce, false);
        assert_eq!(ids(&s.recv_publish().expect("again")), vec![1]);
    });
}

#[test]
fn suback_and_unsuback_reason_codes() {
    // §3.9.3, [MQTT-3.11.3-1] [MQTT-3.11.3-2]
    each_cores(|cores| {
        let mut cfg = config(cores);
        cfg.mqtt.maximum_qos = 1;
        cfg.mqtt.shared_subscriptions = false;
        cfg.mqtt.subscription_identifiers = false;
        cfg.limits.max_topic_levels = 3;
        let mut hooks = Hooks::new();
        hooks.on_client_subscribe(|_, reqs| {
            for r in reqs.iter_mut().filter(|r| r.filter == "secret") {
                r.rejected = true;
            }
        });
        let b = start_with(cfg, hooks);
        let mut s = v5(&b, "sub", b.shards - 1);
        let filters = vec![
            sub_opts("t", QoS::ExactlyOnce, false, false, 0),
            q1("secret"),
            q1("a/#/b"),
            q1("$share/g/t"),
            q1("a/b/c/d"),
        ];
        assert_eq!(
            s.subscribe5(filters, None),
            vec![
                SubAckCode::Granted(QoS::AtLeastOnce),
                SubAckCode::Refused(Reason::NOT_AUTHORIZED),
                SubAckCode::Refused(Reason::TOPIC_FILTER_INVALID),
                SubAckCode::Refused(Reason::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED),
                SubAckCode::Refused(Reason::QUOTA_EXCEEDED),
            ]
        );
        let m = b.wait_metrics(|m| m.subscriptions_refused_limit >= 1);
        assert_eq!(
            m.subscriptions_refused_limit, 1,
            "max_topic_levels is counted"
        );
        assert_eq!(
            s.subscribe5(vec![q1("u")], Some(4)),
            vec![SubAckCode::Refused(
                Reason::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED
            )]
        );
        let ack = s.unsubscribe_all(&["t", "nothing", "a/#/b"]);
        assert_eq!(
            ack.reasons,
            vec![
                Reason::SUCCESS,
                Reason::NO_SUBSCRIPTION_EXISTED,
                Reason::TOPIC_FILTER_INVALID
            ]
        );
    });
}

#[test]
fn wildcards_off_is_0xa2_and_0x80_for_3_1_1() {
    each_cores(|cores| {
        let mut cfg = config(cores);
        cfg.mqtt.wildcard_subscriptions = false;
        let b = start_with(cfg, Hooks::new());
        let mut s = v5(&b, "sub", 0);
        assert_eq!(
            s.subscribe5(vec![q1("a/+"), q1("a/b")], None),
            vec![
                SubAckCode::Refused(Reason::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED),
                SubAckCode::Granted(QoS::AtLeastOnce)
            ]
        );
        let mut old = Client::connect(b.addr, &b.id_on("old", b.shards - 1), true).0;
        assert_eq!(old.subscribe("a/#", QoS::AtLeastOnce), SubAckCode::Failure);
    });
}

#[test]
fn suback_bytes_for_3_1_1_are_unchanged() {
    // 3.1.1 §3.9.3: granted QoS or 0x80, byte for byte as before MQTT 5;
    // a QoS above maximum_qos is granted at maximum_qos.
    each_cores(|cores| {
        let mut cfg = config(cores);
        cfg.mqtt.maximum_qos = 1;
        cfg.limits.max_subscriptions_per_client = 3;
        let b = start_with(cfg, Hooks::new());
        // SUBSCRIBE pkid 5: "a" QoS 0, "b/#" QoS 1, "c/#/d" QoS 1, "$share/g/e" QoS 2,
        // "f" QoS 2 (over max_subscriptions_per_client).
        let mut raw = vec![0x82, 0, 0, 5];
        for (f, q) in [
            ("a", 0u8),
            ("b/#", 1),
            ("c/#/d", 1),
            ("$share/g/e", 2),
            ("f", 2),
        ] {
            raw.extend_from_slice(&(f.len() as u16).to_be_bytes());
            raw.extend_from_slice(f.as_bytes());
            raw.push(q);
        }
        raw[1] = (raw.len() - 2) as u8;
        let mut again = Client::connect(b.addr, &b.id_on("raw", b.shards - 1), true).0;
        again.send_raw(&raw);
        let mut got = vec![0u8; 9];
        use std::io::Read;
        again.stream.set_read_timeout(Some(WAIT)).unwrap();
        again.stream.read_exact(&mut got).expect("SUBACK bytes");
        assert_eq!(got, [0x90, 7, 0, 5, 0x00, 0x01, 0x80, 0x01, 0x80]);
        let m = b.wait_metrics(|m| m.subscriptions_refused_limit >= 1);
        assert_eq!(
            m.subscriptions_refused_limit, 1,
            "max_subscriptions_per_client is counted"
        );
    });
}

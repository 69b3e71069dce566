//! Configured limits: listener.max_connections, mqtt.max_retained,
//! mqtt.max_packet_size; on 1 and 2 shards.

mod common;
use common::*;
use coremq::codec::{Packet, QoS};
use coremq::Hooks;
use std::collections::BTreeMap;
use std::time::Duration;

/// listener.max_connections = 3: a 4th socket is closed at once (no
/// CONNACK) and counted; once one closes, a new connection is accepted.
#[test]
fn max_connections() {
    each_cores(|cores| {
        let mut cfg = config(cores);
        cfg.listener[0].max_connections = 3;
        let b = start_with(cfg, Hooks::new());
        let conns = || b.handle.as_ref().unwrap().connections();
        let mut open: Vec<Client> = (0..3)
            .map(|i| Client::connect(b.addr, &b.id_on(&format!("c{i}"), i % cores), true).0)
            .collect();
        assert_eq!(conns(), 3);
        for i in 0..2 {
            let mut extra = Client::raw(b.addr);
            extra.send(&Packet::Connect(Box::new(connect_packet(
                &format!("extra{i}"),
                true,
            ))));
            assert!(extra.recv_within(Duration::from_millis(200)).is_none());
            assert!(extra.closed(), "connection over the limit closed");
        }
        let m = b.wait_metrics(|m| m.connections_refused_limit >= 2);
        assert_eq!(m.connections_refused_limit, 2);
        // The limit holds only what is open: the three still work.
        for c in open.iter_mut() {
            c.ping();
        }
        open.remove(0).disconnect();
        assert!(wait_until(|| conns() == 2), "slot released");
        let (mut again, _) = Client::connect(b.addr, &b.id_on("again", cores - 1), true);
        again.ping();
        assert_eq!(conns(), 3);
        // A dropped socket (no DISCONNECT) frees its slot too.
        drop(again);
        assert!(wait_until(|| conns() == 2), "slot released on close");
        Client::connect(b.addr, "third", true).0.ping();
        assert_eq!(b.metrics().connections_refused_limit, 2);
    });
}

/// Subscribe on a fresh client per shard and collect every retained message.
fn retained_on_each_shard(b: &TestBroker, tag: &str) -> Vec<BTreeMap<String, String>> {
    (0..b.shards)
        .map(|shard| {
            let (mut c, _) = Client::connect(b.addr, &b.id_on(tag, shard), true);
            c.subscribe("r/#", QoS::AtMostOnce);
            let mut got = BTreeMap::new();
            while let Some(p) = c.recv_within(Duration::from_millis(300)) {
                let Packet::Publish(p) = p else {
                    panic!("unexpected {p:?}")
                };
                assert!(p.retain, "retained flag");
                let payload = String::from_utf8(p.payload.to_vec()).unwrap();
                assert!(
                    got.insert(p.topic.to_string(), payload).is_none(),
                    "sent once"
                );
            }
            got
        })
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(t, p)| (t.to_string(), p.to_string()))
        .collect()
}

/// mqtt.max_retained = 2: a third retained topic is delivered but not
/// retained (`retained_refused`); replacing or deleting an existing one works.
#[test]
fn max_retained() {
    each_cores(|cores| {
        let mut cfg = config(cores);
        cfg.mqtt.max_retained = 2;
        let b = start_with(cfg, Hooks::new());
        // Live subscribers on every shard: once they hold a message, their
        // shard's retained replica has applied it.
        let mut live: Vec<Client> = (0..cores)
            .map(|s| {
                let (mut c, _) = Client::connect(b.addr, &b.id_on("live", s), true);
                c.subscribe("r/#", QoS::AtLeastOnce);
                c
            })
            .collect();
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        let mut publish = |topic: &str, payload: &str| {
            publ.publish(topic, payload.as_bytes(), QoS::AtLeastOnce, true);
            for c in live.iter_mut() {
                let p = c.recv_publish().expect("live delivery");
                assert_eq!((&*p.topic, p.payload.as_ref()), (topic, payload.as_bytes()));
                assert!(!p.retain);
                c.ack(&p);
            }
        };
        publish("r/1", "a");
        publish("r/2", "b");
        publish("r/3", "c"); // delivered, not retained
        let m = b.wait_metrics(|m| m.retained_refused >= 1);
        // Counted once, by the shard the publisher is on.
        assert_eq!(m.retained_refused, 1, "{m:?}");
        let refused = m.retained_refused;
        for got in retained_on_each_shard(&b, "s1") {
            assert_eq!(got, map(&[("r/1", "a"), ("r/2", "b")]));
        }
        // Replacing an existing topic works at the limit.
        publish("r/1", "a2");
        for got in retained_on_each_shard(&b, "s2") {
            assert_eq!(got, map(&[("r/1", "a2"), ("r/2", "b")]));
        }
        // Deleting one makes room [MQTT-3.3.1-10].
        publish("r/2", "");
        publish("r/3", "c2");
        for got in retained_on_each_shard(&b, "s3") {
            assert_eq!(got, map(&[("r/1", "a2"), ("r/3", "c2")]));
        }
        let m = b.wait_metrics(|m| m.retained == 2 * cores as u64);
        assert_eq!(m.retained, 2 * cores as u64, "2 per replica");
        assert_eq!(m.retained_refused, refused);
    });
}

/// mqtt.max_packet_size, fixed header included: a packet of exactly the limit
/// passes, one byte more closes the connection (`packets_too_large`).
#[test]
fn max_packet_size() {
    each_cores(|cores| {
        let mut cfg = config(cores);
        cfg.mqtt.max_packet_size = 128;
        let b = start_with(cfg, Hooks::new());
        let (mut sub, _) = Client::connect(b.addr, &b.id_on("sub", cores - 1), true);
        sub.subscribe("t", QoS::AtMostOnce);
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        // PUBLISH QoS 0 on "t": 1 + 1 (remaining length) + 3 (topic) + payload.
        let fits = vec![b'x'; 123];
        let p = coremq::codec::Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "t".into(),
            pkid: 0,
            payload: bytes::Bytes::from(fits.clone()),
            props: None,
        };
        assert_eq!(packet_bytes(&Packet::Publish(p)).len(), 128);
        publ.publish("t", &fits, QoS::AtMostOnce, false);
        assert_eq!(sub.recv_publish().expect("at the limit").payload.len(), 123);
        publ.publish("t", &[b'y'; 124], QoS::AtMostOnce, false);
        assert!(publ.closed(), "one byte over the limit closes");
        sub.expect_silence(Duration::from_millis(200));
        // A CONNECT over the limit is refused the same way.
        let mut c = connect_packet(&"z".repeat(130), true);
        c.keep_alive = 5;
        let mut raw = Client::raw(b.addr);
        raw.send(&Packet::Connect(Box::new(c)));
        assert!(raw.closed());
        let m = b.wait_metrics(|m| m.packets_too_large >= 2);
        assert_eq!(m.packets_too_large, 2);
        sub.ping();
    });
}

/// A packet far larger than one socket read (64 KiB scratch) but under the
/// limit is reassembled and delivered intact, across shards.
#[test]
fn large_packet_under_the_limit() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut sub, _) = Client::connect(b.addr, &b.id_on("sub", cores - 1), true);
        sub.subscribe("big", QoS::AtLeastOnce);
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        publ.publish("big", &payload, QoS::AtLeastOnce, false);
        let p = sub.recv_publish().expect("large message");
        assert!(p.payload.as_ref() == payload.as_slice(), "payload intact");
        sub.ack(&p);
        assert_eq!(b.metrics().packets_too_large, 0);
    });
}

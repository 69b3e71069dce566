//! Shared subscriptions (`$share/{group}/{filter}`, MQTT 5 §4.8.2) for 3.1.1
//! clients over real sockets, with one, two and four shards. Members are
//! placed on chosen shards (`id_on`), publishers on shard 0, so with several
//! shards a group spans shards and most messages cross the mesh.

mod common;
use common::*;
use coremq::codec::{Publish, QoS, SubAckCode};
use coremq::config::SharedStrategy;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const Q1: QoS = QoS::AtLeastOnce;
const QUIET: Duration = Duration::from_millis(300);

fn start_strategy(cores: usize, strategy: SharedStrategy) -> TestBroker {
    let mut cfg = config(cores);
    cfg.mqtt.shared_subscription_strategy = strategy;
    start_with(cfg, coremq::Hooks::new())
}

/// `n` members of `share` (ids named after it), member i homed on shard i % shards.
fn members(b: &TestBroker, share: &str, n: usize, qos: QoS) -> Vec<Client> {
    (0..n)
        .map(|i| {
            let id = b.id_on(&format!("{share}-m{i}"), i % b.shards);
            let (mut c, _) = Client::connect(b.addr, &id, true);
            assert_eq!(c.subscribe(share, qos), SubAckCode::Granted(qos));
            c
        })
        .collect()
}

/// Every PUBLISH until `QUIET` passes with none, each acknowledged.
fn drain(c: &mut Client) -> Vec<Publish> {
    let mut got = Vec::new();
    while let Some(p) = c.recv_within(QUIET) {
        if let coremq::codec::Packet::Publish(p) = p {
            c.ack(&p);
            got.push(p);
        }
    }
    got
}

/// Publish `n` QoS 1 messages "0".."n-1" on `topic`.
fn publish_n(p: &mut Client, topic: &str, n: usize) {
    for i in 0..n {
        p.publish(topic, i.to_string().as_bytes(), Q1, false);
    }
}

// [MQTT-4.8.2-3]: each message goes to exactly one member of the group, at
// min(message QoS, granted QoS); round robin from one publisher spreads evenly.
#[test]
fn every_message_reaches_exactly_one_member_spread_evenly() {
    each_cores(|cores| {
        let b = start(cores);
        let mut ms = members(&b, "$share/g/rr/+", 4, Q1);
        let (mut p, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        publish_n(&mut p, "rr/t", 40);
        let mut seen = BTreeMap::new();
        for (i, m) in ms.iter_mut().enumerate() {
            let got = drain(m);
            assert_eq!(got.len(), 10, "member {i}, cores {cores}");
            for g in got {
                assert_eq!(g.qos, Q1);
                *seen.entry(text(&g)).or_insert(0) += 1;
            }
        }
        assert_eq!(seen.len(), 40, "cores {cores}");
        assert!(seen.values().all(|&n| n == 1), "cores {cores}: {seen:?}");
        let m = b.wait_metrics(|m| m.shared_delivered >= 40);
        assert_eq!(m.shared_delivered, 40);
    });
}

// [MQTT-4.8.2-3]: the granted QoS is respected; a publisher on another shard
// than the member reaches it.
#[test]
fn a_member_on_another_shard_gets_min_qos() {
    each_cores(|cores| {
        let b = start(cores);
        let id = b.id_on("far", cores - 1);
        let (mut m, _) = Client::connect(b.addr, &id, true);
        m.subscribe("$share/g/far", QoS::AtMostOnce);
        let (mut p, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        p.publish("far", b"x", QoS::ExactlyOnce, false);
        let got = m.recv_publish().expect("delivered");
        assert_eq!((got.qos, text(&got)), (QoS::AtMostOnce, "x".into()));
        m.expect_silence(QUIET);
    });
}

// A clean-session member that leaves with unacknowledged (QoS 1) and queued
// messages: they go to the other member, nothing is lost (§4.8.2: "SHOULD
// send the Application Message to another Client").
#[test]
fn a_member_leaving_mid_stream_hands_its_messages_to_another() {
    each_cores(|cores| {
        let mut cfg = config(cores);
        cfg.session.inflight_window = 4;
        let b = start_with(cfg, coremq::Hooks::new());
        let mut ms = members(&b, "$share/g/leave", 2, Q1);
        let mut stay = ms.pop().expect("two");
        let mut leaver = ms.pop().expect("two");
        let (mut p, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        publish_n(&mut p, "leave", 30);
        // The leaver reads its window and acknowledges two, then vanishes.
        let mut done = BTreeSet::new();
        for _ in 0..2 {
            let got = leaver.recv_publish().expect("leaver's share");
            leaver.ack(&got);
            done.insert(text(&got));
        }
        drop(leaver);
        let end = Instant::now() + WAIT;
        while done.len() < 30 && Instant::now() < end {
            if let Some(coremq::codec::Packet::Publish(got)) = stay.recv_within(QUIET) {
                stay.ack(&got);
                done.insert(text(&got));
            }
        }
        assert_eq!(done.len(), 30, "cores {cores}: {done:?}");
        let m = b.wait_metrics(|m| m.shared_redistributed >= 13);
        assert!(m.shared_redistributed >= 13, "cores {cores}: {m:?}");
        assert_eq!(m.shared_dropped_no_member, 0);
    });
}

#[test]
fn two_groups_on_one_filter_each_get_every_message_and_so_does_a_plain_subscriber() {
    each_cores(|cores| {
        let b = start(cores);
        let mut a = members(&b, "$share/a/two", 2, Q1);
        let mut g = members(&b, "$share/b/two", 3, Q1);
        let (mut plain, _) = Client::connect(b.addr, &b.id_on("plain", cores - 1), true);
        plain.subscribe("two", Q1);
        let (mut p, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        publish_n(&mut p, "two", 12);
        let count = |cs: &mut Vec<Client>| -> usize { cs.iter_mut().map(|c| drain(c).len()).sum() };
        assert_eq!(count(&mut a), 12, "group a, cores {cores}");
        assert_eq!(count(&mut g), 12, "group b, cores {cores}");
        assert_eq!(drain(&mut plain).len(), 12, "plain, cores {cores}");
    });
}

// MQTT 5 §4.8.2: retained messages are not sent for a new shared subscription.
#[test]
fn no_retained_messages_on_a_shared_subscribe() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut p, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        p.publish("ret/x", b"kept", Q1, true);
        let (mut m, _) = Client::connect(b.addr, &b.id_on("m", cores - 1), true);
        m.subscribe("$share/g/ret/#", Q1);
        m.expect_silence(QUIET);
        p.publish("ret/x", b"live", Q1, false);
        assert_eq!(text(&m.recv_publish().expect("live one")), "live");
    });
}

#[test]
fn hash_clientid_keeps_each_publisher_on_one_member() {
    each_cores(|cores| {
        let b = start_strategy(cores, SharedStrategy::HashClientid);
        let mut ms = members(&b, "$share/g/hc", 3, Q1);
        for (i, name) in ["p1", "p2", "p3", "p4"].iter().enumerate() {
            let (mut p, _) = Client::connect(b.addr, &b.id_on(name, i % cores), true);
            publish_n(&mut p, "hc", 5);
            let per: Vec<usize> = ms.iter_mut().map(|m| drain(m).len()).collect();
            let mut sorted = per.clone();
            sorted.sort();
            assert_eq!(sorted, vec![0, 0, 5], "{name}, cores {cores}: {per:?}");
        }
    });
}

#[test]
fn hash_topic_keeps_each_topic_on_one_member() {
    each_cores(|cores| {
        let b = start_strategy(cores, SharedStrategy::HashTopic);
        let mut ms = members(&b, "$share/g/ht/+", 3, Q1);
        for t in ["ht/a", "ht/b", "ht/c"] {
            for i in 0..cores {
                let (mut p, _) = Client::connect(b.addr, &b.id_on(&format!("p{t}"), i), true);
                publish_n(&mut p, t, 3);
            }
            let mut per: Vec<usize> = ms.iter_mut().map(|m| drain(m).len()).collect();
            per.sort();
            assert_eq!(per, vec![0, 0, 3 * cores], "{t}, cores {cores}");
        }
    });
}

#[test]
fn sticky_stays_with_one_member_until_it_leaves() {
    each_cores(|cores| {
        let b = start_strategy(cores, SharedStrategy::Sticky);
        let mut ms = members(&b, "$share/g/st", 3, Q1);
        let (mut p, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        publish_n(&mut p, "st", 10);
        let per: Vec<usize> = ms.iter_mut().map(|m| drain(m).len()).collect();
        let chosen = per
            .iter()
            .position(|&n| n == 10)
            .expect("one member got all");
        ms.remove(chosen).disconnect();
        std::thread::sleep(QUIET);
        publish_n(&mut p, "st", 10);
        let mut per: Vec<usize> = ms.iter_mut().map(|m| drain(m).len()).collect();
        per.sort();
        assert_eq!(per, vec![0, 10], "cores {cores}");
    });
}

#[test]
fn random_reaches_every_member() {
    each_cores(|cores| {
        let b = start_strategy(cores, SharedStrategy::Random);
        let mut ms = members(&b, "$share/g/rnd", 3, Q1);
        let (mut p, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        publish_n(&mut p, "rnd", 60);
        let per: Vec<usize> = ms.iter_mut().map(|m| drain(m).len()).collect();
        assert_eq!(per.iter().sum::<usize>(), 60, "cores {cores}");
        assert!(per.iter().all(|&n| n > 0), "cores {cores}: {per:?}");
    });
}

// [MQTT-4.8.2-1] [MQTT-4.8.2-2]: a share name must be non-empty, hold no
// '/', '+' or '#', and be followed by '/' and a valid filter: 0x80 otherwise.
#[test]
fn invalid_share_names_are_refused() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut c, _) = Client::connect(b.addr, &b.id_on("c", cores - 1), true);
        let bad = [
            "$share/g",
            "$share//t",
            "$share/+/t",
            "$share/#",
            "$share/g/a/#/x",
        ];
        for f in bad {
            assert_eq!(c.subscribe(f, Q1), SubAckCode::Failure, "{f}");
        }
        assert_eq!(c.subscribe("$share/ok/t", Q1), SubAckCode::Granted(Q1));
    });
}

#[test]
fn shared_subscriptions_off_refuses_them() {
    each_cores(|cores| {
        let mut cfg = config(cores);
        cfg.mqtt.shared_subscriptions = false;
        let b = start_with(cfg, coremq::Hooks::new());
        let (mut c, _) = Client::connect(b.addr, &b.id_on("c", 0), true);
        let codes = c.subscribe_many(&[("$share/g/t", Q1), ("t", Q1)]);
        assert_eq!(codes, vec![SubAckCode::Failure, SubAckCode::Granted(Q1)]);
    });
}

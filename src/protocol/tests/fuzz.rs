//! A seeded random pass over whole connections: byte streams made from
//! valid packet sequences, mutated and cut at random read boundaries, are
//! fed to a shard's state machine through the harness, beside a watcher
//! subscribed to everything. No input may panic the shard; everything it
//! writes must decode; once every connection is gone, no clean session, no
//! held input and no subscription of theirs is left. `COREMQ_FUZZ_ITERS`
//! runs longer by hand (default 3,000 streams).

use crate::codec::{self, Packet, QoS};
use crate::codec::{Ack, Disconnect};
use crate::config::Config;
use crate::shard::harness::{connect_packet, publish, subscribe, will, H};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A plausible session: CONNECT, then a mix of every client packet.
fn script(rng: &mut Rng) -> Vec<u8> {
    let mut packets = vec![connect_packet("fuzz", rng.below(2) == 0, will("w/fuzz"))];
    let topics = ["a", "a/b", "$SYS/x", "+/b", "#", "a/#"];
    for i in 0..rng.below(12) {
        let pkid = (i + 1) as u16;
        let qos = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce][rng.below(3)];
        let topic = topics[rng.below(topics.len())];
        packets.push(match rng.below(9) {
            0 => subscribe(
                pkid,
                &[(topic, qos), (topics[rng.below(6)], QoS::AtLeastOnce)],
            ),
            1 => Packet::Unsubscribe(codec::Unsubscribe {
                pkid,
                filters: vec![topic.into()],
                props: None,
            }),
            2 => Packet::PubAck(Ack::new(pkid)),
            3 => Packet::PubRec(Ack::new(pkid)),
            4 => Packet::PubRel(Ack::new(pkid)),
            5 => Packet::PubComp(Ack::new(pkid)),
            6 => Packet::PingReq,
            7 => Packet::Disconnect(Disconnect::normal()),
            _ => {
                let t = if topic.contains(['+', '#']) {
                    "a/b"
                } else {
                    topic
                };
                publish(
                    t,
                    b"payload",
                    qos,
                    if qos == QoS::AtMostOnce { 0 } else { pkid },
                    rng.below(4) == 0,
                )
            }
        });
    }
    let mut bytes = Vec::new();
    for p in &packets {
        codec::encode(p, crate::codec::ProtocolVersion::V311, &mut bytes);
    }
    bytes
}

/// Flip, insert or cut a few bytes.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    for _ in 0..rng.below(4) {
        if bytes.is_empty() {
            return;
        }
        let at = rng.below(bytes.len());
        match rng.below(3) {
            0 => bytes[at] = rng.next() as u8,
            1 => bytes.insert(at, rng.next() as u8),
            _ => bytes.truncate(at.max(1)),
        }
    }
}

#[test]
fn random_connections_never_break_the_shard() {
    let iters: usize = std::env::var("COREMQ_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000);
    let mut cfg = Config::default();
    cfg.session.max_awaiting_rel = 4;
    let mut h = H::with(cfg, 2);
    let (watch, _) = h.connect("watch", true);
    h.subscribe(watch, &[("#", QoS::AtLeastOnce)]);
    let mut rng = Rng(0x5EED_CAFE_F00D_1234);
    for _ in 0..iters {
        let mut bytes = script(&mut rng);
        if rng.below(3) > 0 {
            mutate(&mut rng, &mut bytes);
        }
        let conn = h.socket();
        let mut partial = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len());
            let (read, tail) = rest.split_at(n);
            rest = tail;
            if !h.feed(conn, &mut partial, read) {
                break;
            }
        }
        // Everything the shard wrote must decode (out() fails the test otherwise).
        h.out(conn);
        h.drop_socket(conn);
        h.answer_barriers();
        // Ack what the watcher got so its window never fills.
        for p in h.publishes(watch) {
            if p.qos == QoS::AtLeastOnce {
                let _ = h.send(watch, Packet::PubAck(Ack::new(p.pkid)));
            } else if p.qos == QoS::ExactlyOnce {
                let _ = h.send(watch, Packet::PubRec(Ack::new(p.pkid)));
            }
        }
        h.out(watch);
    }
    // The pass reached every part: accepted sessions, routed publishes,
    // and malformed input closed.
    let m = &h.shard.metrics;
    let malformed = h
        .closed
        .values()
        .filter(|r| **r == crate::shard::CloseReason::ProtocolError)
        .count();
    eprintln!(
        "fuzz: {iters} streams, {} connects, {} publishes, {malformed} closed as malformed",
        m.connects_accepted, m.publish_received
    );
    assert!(m.connects_accepted as usize > iters / 2);
    assert!(m.publish_received as usize > iters / 5);
    assert!(malformed > iters / 10);
    // Only the watcher is connected; no held input is left behind.
    assert_eq!(h.shard.conns.len(), 1);
    assert_eq!(h.shard.conns.input_held(), 0);
}

//! Per-listener rate limits over real sockets: `max_connection_rate` (with
//! `connection_rate_burst`, split over the shards) closes sockets over the
//! rate at once and counts them; `max_inbound_bytes_per_s` stops reading a
//! flooding client (counted pauses) so the broker takes its bytes at about
//! the rate, while other clients go on.

mod common;

use common::{config, start_with, Client};
use coremq::codec::{Packet, Publish, QoS};
use coremq::Hooks;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn connections_over_the_rate_are_closed_and_counted() {
    for shards in [1, 2] {
        let mut cfg = config(shards);
        cfg.listener[0].max_connection_rate = 1;
        cfg.listener[0].connection_rate_burst = 4;
        let b = start_with(cfg, Hooks::new());
        let started = Instant::now();
        let tries = 20u64;
        let mut accepted = 0u64;
        for i in 0..tries {
            let mut c = Client::raw(b.addr);
            c.send(&Packet::Connect(Box::new(common::connect_packet(
                &format!("r{i}"),
                true,
            ))));
            if matches!(c.recv(), Some(Packet::ConnAck(_))) {
                accepted += 1;
            }
        }
        // Each shard holds ceil(4 / shards) and refills at 1 / shards per
        // second: what passed is bounded by the burst plus the time taken.
        let per_shard_burst = 4u64.div_ceil(shards as u64);
        let bound = per_shard_burst * shards as u64 + started.elapsed().as_secs() + 1;
        assert!(
            accepted >= 1 && accepted <= bound,
            "{accepted} accepted, bound {bound}"
        );
        let m = b.wait_metrics(|m| m.connections_refused_rate >= tries - accepted);
        assert_eq!(m.connections_refused_rate, tries - accepted, "{m:?}");
        assert_eq!(m.connections_accepted, tries);
    }
}

/// A QoS 0 PUBLISH of `size` payload bytes, encoded.
fn publish_bytes(topic: &str, size: usize) -> Vec<u8> {
    let p = Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: topic.into(),
        pkid: 0,
        payload: vec![b'f'; size].into(),
        props: None,
    };
    let mut out = Vec::new();
    coremq::codec::encode(
        &Packet::Publish(p),
        coremq::codec::ProtocolVersion::V311,
        &mut out,
    );
    out
}

#[test]
fn a_flooding_publisher_is_held_to_its_byte_rate_while_others_go_on() {
    const RATE: u64 = 50_000;
    const BURST: u64 = 16_384;
    for shards in [1, 2] {
        let mut cfg = config(shards);
        cfg.listener[0].max_inbound_bytes_per_s = RATE;
        cfg.listener[0].inbound_burst_bytes = BURST;
        let b = start_with(cfg, Hooks::new());
        let (mut sub, _) = Client::connect(b.addr, &b.id_on("sub", shards - 1), true);
        sub.subscribe("flood", QoS::AtMostOnce);
        sub.subscribe("calm", QoS::AtMostOnce);
        let (flooder, _) = Client::connect(b.addr, &b.id_on("flood", 0), true);
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        // The flooder writes 1 KB publishes as fast as TCP lets it, up to 8 MB.
        let writer = {
            let stop = stop.clone();
            let mut sock = flooder.stream.try_clone().unwrap();
            sock.set_write_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            std::thread::spawn(move || {
                let packet = publish_bytes("flood", 1000);
                let mut sent = 0usize;
                while !stop.load(Ordering::Relaxed) && sent < 8 << 20 {
                    match sock.write_all(&packet) {
                        Ok(()) => sent += packet.len(),
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
                sent
            })
        };
        // Meanwhile another client on the same listener is served.
        let (mut calm, _) = Client::connect(b.addr, &b.id_on("calm", 0), true);
        let m = b.wait_metrics(|m| m.inbound_rate_pauses >= 1);
        assert!(m.inbound_rate_pauses >= 1, "the flooder was paused: {m:?}");
        calm.publish("calm", b"hello", QoS::AtLeastOnce, false);
        let mut flood_bytes = 0u64;
        let mut calm_seen = false;
        let window = Duration::from_secs(2);
        while started.elapsed() < window || !calm_seen {
            match sub.recv_within(Duration::from_millis(100)) {
                Some(Packet::Publish(p)) if &*p.topic == "flood" => {
                    flood_bytes += p.payload.len() as u64
                }
                Some(Packet::Publish(p)) if &*p.topic == "calm" => calm_seen = true,
                Some(_) => {}
                None if started.elapsed() > window + common::WAIT => break,
                None => {}
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let sent = writer.join().unwrap() as u64;
        assert!(calm_seen, "the other client's message went through");
        // What reached the subscriber was read at most at the rate (plus
        // the burst and one read's worth), far less than what was sent.
        let bound = BURST + (RATE as f64 * (elapsed + 0.5)) as u64 + 65_536;
        assert!(
            flood_bytes > 0 && flood_bytes <= bound,
            "{flood_bytes} delivered, bound {bound}"
        );
        assert!(
            sent > bound,
            "the flooder sent more ({sent}) than the rate lets in"
        );
        drop(flooder);
    }
}

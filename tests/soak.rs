//! A soak: well-behaved and hostile clients at once against the `coremq`
//! binary (2 shards) for `COREMQ_SOAK_SECS` (default 45 s; run it longer by
//! hand). The well-behaved ones lose nothing: every QoS 1 message a
//! publisher got a PUBACK for reaches every subscriber. The broker's memory
//! stays flat: its RSS at the end is within a bound of its RSS once the
//! load had settled. Every loop here is bounded in time.

mod common;
use common::binary::BrokerProcess;
use common::*;
use coremq::codec::Ack;
use coremq::codec::{Packet, Publish, QoS};
use std::collections::HashSet;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const PUBLISHERS: usize = 3;
const SUBSCRIBERS: usize = 3;

/// Publisher `p`: QoS 1 on soak/p, one message every 5 ms; returns the
/// payloads it got a PUBACK for.
fn publisher(
    addr: std::net::SocketAddr,
    p: usize,
    stop: Arc<AtomicBool>,
) -> JoinHandle<HashSet<String>> {
    std::thread::spawn(move || {
        let (mut c, _) = Client::connect(addr, &format!("soak-pub-{p}"), true);
        let mut acked = HashSet::new();
        let mut seq: u16 = 0;
        while !stop.load(Ordering::Relaxed) {
            seq = seq.wrapping_add(1).max(1);
            let payload = format!("{p}:{seq}:{}", acked.len());
            c.send(&Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtLeastOnce,
                retain: false,
                topic: format!("soak/{p}").into(),
                pkid: seq,
                payload: payload.clone().into(),
                props: None,
            }));
            match c.recv_within(Duration::from_secs(5)) {
                Some(Packet::PubAck(Ack { pkid: id, .. })) if id == seq => {
                    acked.insert(payload);
                }
                other => panic!("publisher {p}: expected PUBACK {seq}, got {other:?}"),
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        acked
    })
}

/// Subscriber `s`: persistent, QoS 1 on soak/+, acks everything until
/// `stop`, then drains; returns the payloads it received.
fn subscriber(
    addr: std::net::SocketAddr,
    s: usize,
    stop: Arc<AtomicBool>,
) -> JoinHandle<HashSet<String>> {
    let (mut c, _) = Client::connect(addr, &format!("soak-sub-{s}"), false);
    c.subscribe("soak/+", QoS::AtLeastOnce);
    let handle = std::thread::spawn(move || {
        let mut got = HashSet::new();
        let mut quiet_since = None;
        loop {
            match c.recv_within(Duration::from_millis(100)) {
                Some(Packet::Publish(m)) => {
                    got.insert(String::from_utf8_lossy(&m.payload).into_owned());
                    c.send(&Packet::PubAck(Ack::new(m.pkid)));
                    quiet_since = None;
                }
                Some(_) => {}
                None if stop.load(Ordering::Relaxed) => {
                    let since = *quiet_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_secs(2) {
                        return got;
                    }
                }
                None => {}
            }
        }
    });
    handle
}

/// Hostile clients, reconnecting whenever the broker closes them.
fn hostile(addr: std::net::SocketAddr, kind: usize, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut round = 0;
        while !stop.load(Ordering::Relaxed) {
            round += 1;
            let (mut c, _) = Client::connect(addr, &format!("hostile-{kind}-{round}"), true);
            c.stream
                .set_write_timeout(Some(Duration::from_millis(100)))
                .ok();
            let end = Instant::now() + Duration::from_secs(3);
            match kind {
                // PINGREQs, never reading.
                0 => {
                    let pings = [0xC0u8, 0x00].repeat(4096);
                    while Instant::now() < end && c.stream.write(&pings).is_ok() {}
                }
                // Garbage after CONNECT.
                1 => {
                    let _ = c.stream.write_all(&[0xFF; 64]);
                }
                // A SUBSCRIBE repeating wildcard filters, then a deep one.
                2 => {
                    let many: Vec<(&str, QoS)> =
                        (0..5_000).map(|_| ("soak/#", QoS::AtMostOnce)).collect();
                    let _ = c.subscribe_many(&many);
                    let deep = vec!["+"; 300].join("/");
                    let _ = c.subscribe_many(&[(&deep, QoS::AtMostOnce)]);
                }
                // A packet that never completes.
                _ => {
                    c.send_raw(&[0x30, 0xFF, 0xFF, 0x03, 0, 1, b'x']);
                }
            }
            while Instant::now() < end && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
        }
    })
}

#[test]
fn well_behaved_clients_lose_nothing_beside_hostile_ones_and_memory_stays_flat() {
    let secs: u64 = std::env::var("COREMQ_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(45);
    let b = BrokerProcess::start_with_config(
        2,
        Some("[mqtt]\nmax_outbox_bytes = 65536\n[limits]\noutput_stall_timeout_s = 2\npacket_timeout_s = 2\n"),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let subs: Vec<_> = (0..SUBSCRIBERS)
        .map(|s| subscriber(b.addr(), s, stop.clone()))
        .collect();
    let pubs: Vec<_> = (0..PUBLISHERS)
        .map(|p| publisher(b.addr(), p, stop.clone()))
        .collect();
    let bad: Vec<_> = (0..4).map(|k| hostile(b.addr(), k, stop.clone())).collect();
    let settle = Duration::from_secs((secs / 4).max(5));
    std::thread::sleep(settle);
    let settled = b.rss();
    std::thread::sleep(Duration::from_secs(secs) - settle);
    let end = b.rss();
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<HashSet<String>> = pubs.into_iter().map(|h| h.join().unwrap()).collect();
    bad.into_iter().for_each(|h| h.join().unwrap());
    let received: Vec<HashSet<String>> = subs.into_iter().map(|h| h.join().unwrap()).collect();
    let all_acked: HashSet<&String> = acked.iter().flatten().collect();
    assert!(
        all_acked.len() > 100,
        "the publishers made progress: {}",
        all_acked.len()
    );
    for (s, got) in received.iter().enumerate() {
        let lost = all_acked.iter().filter(|m| !got.contains(**m)).count();
        assert_eq!(
            lost,
            0,
            "subscriber {s} lost {lost} of {} acknowledged messages",
            all_acked.len()
        );
    }
    // Flat: at most 16 MiB above the settled figure.
    assert!(
        end <= settled + (16 << 20),
        "broker RSS went from {settled} B (settled) to {end} B"
    );
    b.stop();
}

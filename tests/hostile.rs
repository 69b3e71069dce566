//! Hostile clients, each tried as an attacker would with a plain socket: the
//! broker's memory stays under a bound derived from its configuration, other
//! clients keep being served and are never wrongly expired, and every
//! matching retained message still arrives. Memory is read from the broker
//! process's /proc (the `coremq` binary), so the bound is the broker's own.

mod common;
use common::binary::BrokerProcess;
use common::*;
use coremq::codec::Ack;
use coremq::codec::{self, Packet, Publish, QoS};
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The tests here load the machine on purpose: one at a time, so that one
/// test's flood does not starve another test's well-behaved client.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn encode(p: &Packet) -> Vec<u8> {
    let mut out = Vec::new();
    codec::encode(p, coremq::codec::ProtocolVersion::V311, &mut out);
    out
}

fn publish(topic: &str, payload: &[u8], retain: bool) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain,
        topic: topic.into(),
        pkid: 0,
        payload: bytes::Bytes::copy_from_slice(payload),
        props: None,
    })
}

/// Write `bytes` repeatedly for at most `within`, never reading; returns how
/// many bytes the socket took.
fn flood(stream: &mut TcpStream, bytes: &[u8], total: usize, within: Duration) -> usize {
    stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let end = Instant::now() + within;
    let mut sent = 0;
    while sent < total && Instant::now() < end {
        match stream.write(bytes) {
            Ok(n) => sent += n,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    sent
}

/// A client that pings every 200 ms with keepalive `ka` s, on its own
/// thread, until `stop`; returns how many PINGRESPs it got and whether it
/// was ever closed.
fn pinger(
    addr: std::net::SocketAddr,
    id: &str,
    ka: u16,
    stop: Duration,
) -> std::thread::JoinHandle<(usize, bool)> {
    let id = id.to_string();
    std::thread::spawn(move || {
        let mut connect = connect_packet(&id, true);
        connect.keep_alive = ka;
        let (mut c, ack) = Client::connect_with(addr, connect);
        assert_eq!(ack.code, codec::Reason::SUCCESS);
        let end = Instant::now() + stop;
        let mut pongs = 0;
        while Instant::now() < end {
            c.send(&Packet::PingReq);
            match c.recv_within(Duration::from_secs(3)) {
                Some(Packet::PingResp) => pongs += 1,
                _ => return (pongs, true),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        (pongs, false)
    })
}

#[test]
fn a_client_that_sends_pingreqs_and_never_reads_is_bounded_then_closed() {
    let _serial = serial();
    let b = BrokerProcess::start_with_config(
        1,
        Some("[mqtt]\nmax_outbox_bytes = 65536\n[limits]\noutput_stall_timeout_s = 2\n"),
    );
    let innocent = pinger(b.addr(), "innocent", 2, Duration::from_secs(6));
    let (mut attacker, _) = Client::connect(b.addr(), "attacker", true);
    let before = b.rss();
    // 64 MiB of PINGREQs: before the fix the broker read them all and kept
    // every PINGRESP it could not send (its RSS grew 1:1 with them).
    let pings = [0xC0u8, 0x00].repeat(32 * 1024);
    let sent = flood(
        &mut attacker.stream,
        &pings,
        64 << 20,
        Duration::from_secs(5),
    );
    let grown = b.rss().saturating_sub(before);
    // Bound: the outbox limit (64 KiB) and the incomplete-input share, plus
    // allocator slack; far below the 64 MiB offered.
    assert!(
        grown < 24 << 20,
        "broker RSS grew {grown} B after {sent} B of PINGREQs"
    );
    let end = Instant::now() + Duration::from_secs(8);
    while !b.log().contains("not reading?") && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        b.log().contains("not reading?"),
        "closed for its stalled output:\n{}",
        b.log()
    );
    let (pongs, closed) = innocent.join().unwrap();
    assert!(
        !closed && pongs > 10,
        "the innocent client was served: {pongs} pongs, closed {closed}"
    );
    b.stop();
}

#[test]
fn a_subscribe_repeating_a_wildcard_filter_does_not_stall_its_shard() {
    let _serial = serial();
    // One shard: the attacker, the innocent client and the retained store share it.
    let b = start(1);
    let (mut p, _) = Client::connect(b.addr, "pub", true);
    for i in 0..1_000 {
        p.send(&publish(&format!("r/{i}"), b"v", true));
    }
    p.ping();
    let innocent = pinger(b.addr, "innocent", 2, Duration::from_secs(4));
    std::thread::sleep(Duration::from_millis(300));
    let (mut attacker, _) = Client::connect(b.addr, "attacker", true);
    let filters: Vec<(&str, QoS)> = (0..20_000).map(|_| ("#", QoS::AtMostOnce)).collect();
    let codes = attacker.subscribe_many(&filters);
    assert_eq!(
        codes.len(),
        20_000,
        "[MQTT-3.8.4-5] a return code per filter"
    );
    let mut got = 0;
    while attacker.recv_within(Duration::from_millis(500)).is_some() {
        got += 1;
    }
    assert_eq!(got, 1_000, "each retained message once [MQTT-3.3.1-6]");
    let (pongs, closed) = innocent.join().unwrap();
    assert!(
        !closed,
        "the innocent client (keepalive 1 s) was never expired"
    );
    assert!(pongs > 5);
    assert_eq!(b.metrics().keepalive_timeouts, 0);
}

#[test]
fn every_matching_retained_message_arrives() {
    let _serial = serial();
    // [MQTT-3.3.1-6]: 10,001 at QoS 0 to a subscriber reading at full speed,
    // then 3,000 at QoS 1 through its window.
    each_cores(|cores| {
        let b = start(cores);
        let (mut p, _) = Client::connect(b.addr, "pub", true);
        for i in 0..10_001 {
            p.send(&publish(&format!("q0/{i}"), b"v", true));
        }
        for i in 0..3_000u16 {
            p.send(&Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtLeastOnce,
                retain: true,
                topic: format!("q1/{i}").into(),
                pkid: i + 1,
                payload: bytes::Bytes::from_static(b"v"),
                props: None,
            }));
        }
        let mut acks = 0;
        while acks < 3_000 {
            match p.recv() {
                Some(Packet::PubAck(_)) => acks += 1,
                other => panic!("publisher got {other:?} after {acks} PUBACKs"),
            }
        }
        let (mut s, _) = Client::connect(b.addr, "sub", true);
        s.subscribe("q0/+", QoS::AtMostOnce);
        let mut got = 0;
        while s.recv_within(Duration::from_secs(1)).is_some() {
            got += 1;
        }
        assert_eq!(got, 10_001, "{cores} shards, QoS 0");
        s.subscribe("q1/#", QoS::AtLeastOnce);
        let mut got = std::collections::HashSet::new();
        while let Some(Packet::Publish(m)) = s.recv_within(Duration::from_secs(1)) {
            got.insert(m.topic.to_string());
            s.send(&Packet::PubAck(Ack::new(m.pkid)));
        }
        assert_eq!(got.len(), 3_000, "{cores} shards, QoS 1");
        assert_eq!(b.metrics().dropped_queue_full, 0);
    });
}

#[test]
fn an_incomplete_packet_is_closed_after_packet_timeout() {
    let _serial = serial();
    let mut cfg = config(1);
    cfg.limits.packet_timeout_s = 1;
    let b = start_with(cfg, coremq::Hooks::new());
    let mut connect = connect_packet("slow", true);
    connect.keep_alive = 0;
    let (mut c, _) = Client::connect_with(b.addr, connect);
    // A PUBLISH announcing 1,000 bytes, of which 10 ever come.
    c.send_raw(&[0x30, 0xE8, 0x07, 0, 3, b'a', b'/', b'b', 1, 2, 3, 4, 5]);
    assert!(c.closed(), "closed once the packet was overdue");
    let m = b.wait_metrics(|m| m.packet_timeouts == 1);
    assert_eq!(m.packet_timeouts, 1);
}

#[test]
fn deep_and_long_filters_are_refused() {
    let _serial = serial();
    each_cores(|cores| {
        let b = start(cores);
        let (mut c, _) = Client::connect(b.addr, "deep", true);
        let deep = vec!["+"; 129].join("/");
        let long = format!("a/{}", "x".repeat(2_000));
        let codes = c.subscribe_many(&[
            (&deep, QoS::AtMostOnce),
            (&long, QoS::AtMostOnce),
            ("ok/#", QoS::AtMostOnce),
        ]);
        assert_eq!(
            codes,
            vec![
                codec::SubAckCode::Failure,
                codec::SubAckCode::Failure,
                codec::SubAckCode::Granted(QoS::AtMostOnce)
            ]
        );
        let m = b.wait_metrics(|m| m.subscriptions_refused_limit == 2);
        assert_eq!(m.subscriptions_refused_limit, 2);
    });
}

#[test]
fn small_payloads_do_not_pin_the_buffers_they_arrived_in() {
    let _serial = serial();
    // Each write: a 60 KB QoS 0 publish nobody wants and a 10-byte retained
    // one, read together. Before the fix each retained payload kept its
    // 60 KB read buffer alive: 1,500 of them pinned ~90 MB.
    let b = BrokerProcess::start(1);
    let (mut p, _) = Client::connect(b.addr(), "pub", true);
    let before = b.rss();
    let big = encode(&publish("nobody", &[7u8; 60_000], false));
    for i in 0..1_500 {
        let mut chunk = big.clone();
        chunk.extend(encode(&publish(&format!("tiny/{i}"), b"0123456789", true)));
        p.send_raw(&chunk);
    }
    p.ping();
    let grown = b.rss().saturating_sub(before);
    assert!(
        grown < 32 << 20,
        "broker RSS grew {grown} B for 15 KB of retained payloads"
    );
    let (mut s, _) = Client::connect(b.addr(), "sub", true);
    s.subscribe("tiny/#", QoS::AtMostOnce);
    let mut got = 0;
    while s.recv_within(Duration::from_millis(500)).is_some() {
        got += 1;
    }
    assert_eq!(got, 1_500);
    b.stop();
}

//! The will message (§3.1.2.5) and keepalive (§3.1.2.10), on 1 and 2 shards,
//! with the will's publisher and its subscriber on different shards.

mod common;
use common::*;
use coremq::codec::Disconnect;
use coremq::codec::{Connect, Packet, QoS};
use std::time::{Duration, Instant};

/// A CONNECT with a will on `topic` and the given keepalive.
fn with_will(id: &str, topic: &str, qos: QoS, retain: bool, keep_alive: u16) -> Connect {
    let mut c = connect_packet(id, true);
    c.will = Some(will(topic, "gone", qos, retain));
    c.keep_alive = keep_alive;
    c
}

/// A subscriber to `will/<name>` homed on the last shard, and a victim with a will
/// on `will/<name>` homed on shard 0.
fn setup(b: &TestBroker, name: &str, keep_alive: u16) -> (Client, Client) {
    let (mut sub, _) = Client::connect(
        b.addr,
        &b.id_on(&format!("watch-{name}"), b.shards - 1),
        true,
    );
    sub.subscribe(&format!("will/{name}"), QoS::ExactlyOnce);
    let c = with_will(
        &b.id_on(&format!("victim-{name}"), 0),
        &format!("will/{name}"),
        QoS::AtLeastOnce,
        false,
        keep_alive,
    );
    let (victim, ack) = Client::connect_with(b.addr, c);
    assert_eq!(ack.code, coremq::codec::Reason::SUCCESS);
    (sub, victim)
}

fn expect_will(sub: &mut Client, name: &str) {
    let p = sub
        .recv_publish()
        .unwrap_or_else(|| panic!("will for {name}"));
    assert_eq!(&*p.topic, format!("will/{name}"));
    assert_eq!(p.payload.as_ref(), b"gone");
    assert_eq!(p.qos, QoS::AtLeastOnce);
    assert!(!p.retain);
    sub.ack(&p);
}

/// [MQTT-3.1.2-8]: the client closes the socket without DISCONNECT.
#[test]
fn will_on_socket_close() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut sub, victim) = setup(&b, "close", 60);
        drop(victim);
        expect_will(&mut sub, "close");
        let m = b.wait_metrics(|m| m.wills_published >= 1);
        assert_eq!(m.wills_published, 1);
    });
}

/// [MQTT-3.14.4-3], [MQTT-3.1.2-10]: DISCONNECT discards the will.
#[test]
fn no_will_on_disconnect() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut sub, mut victim) = setup(&b, "disconnect", 60);
        victim.send(&Packet::Disconnect(Disconnect::normal()));
        // [MQTT-3.14.4-1]: the server closes the connection after DISCONNECT.
        assert!(victim.closed());
        sub.expect_silence(Duration::from_millis(500));
        // Counters are posted every 100 ms: these are current.
        let m = b.metrics();
        assert_eq!(m.wills_published, 0);
    });
}

/// [MQTT-3.1.2-24]: a client silent for 1.5× its keepalive is disconnected,
/// and its will is published.
#[test]
fn will_on_keepalive_expiry() {
    each_cores(|cores| {
        let b = start(cores);
        let start = Instant::now();
        let (mut sub, mut victim) = setup(&b, "keepalive", 1);
        // Not before the keepalive has passed ...
        victim.expect_silence(Duration::from_millis(900));
        // ... but soon after 1.5 s.
        assert!(victim.closed(), "silent client closed");
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1000),
            "closed early: {took:?}"
        );
        assert!(took < Duration::from_secs(4), "closed late: {took:?}");
        expect_will(&mut sub, "keepalive");
        let m = b.wait_metrics(|m| m.keepalive_timeouts >= 1 && m.wills_published >= 1);
        assert_eq!(m.keepalive_timeouts, 1);
        assert_eq!(m.wills_published, 1);
        // The subscriber (keepalive 60) is still served.
        sub.ping();
    });
}

/// §3.1.2.5: the server closes the connection for a protocol error: will.
#[test]
fn will_on_protocol_error() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut sub, mut victim) = setup(&b, "protocol", 60);
        victim.send_raw(&[0x00, 0x00]);
        assert!(victim.closed());
        expect_will(&mut sub, "protocol");
        // A second CONNECT is a protocol error too [MQTT-3.1.0-2].
        let (mut sub2, mut victim) = setup(&b, "second-connect", 60);
        victim.send(&Packet::Connect(Box::new(connect_packet("other", true))));
        assert!(victim.closed());
        expect_will(&mut sub2, "second-connect");
        let m = b.wait_metrics(|m| m.wills_published >= 2);
        assert_eq!(m.wills_published, 2);
    });
}

/// [MQTT-3.1.4-2]: a takeover closes the old connection without DISCONNECT,
/// so the old connection's will is published.
#[test]
fn will_on_takeover() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut sub, mut old) = setup(&b, "takeover", 60);
        let (mut new, _) = Client::connect(b.addr, &b.id_on("victim-takeover", 0), true);
        assert!(old.closed(), "old connection closed");
        expect_will(&mut sub, "takeover");
        new.ping();
        // The new connection has no will: its DISCONNECT publishes nothing.
        new.disconnect();
        sub.expect_silence(Duration::from_millis(300));
        let m = b.wait_metrics(|m| m.takeovers >= 1);
        assert_eq!((m.takeovers, m.wills_published), (1, 1));
    });
}

/// [MQTT-3.1.2-16], [MQTT-3.1.2-17]: will QoS and retain are honoured; a
/// live subscriber gets RETAIN 0 [MQTT-3.3.1-9], a later one the retained
/// will with RETAIN 1 [MQTT-3.3.1-8], on either shard.
#[test]
fn will_qos_and_retain() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut live2, _) = Client::connect(b.addr, &b.id_on("live2", b.shards - 1), true);
        live2.subscribe("status/#", QoS::ExactlyOnce);
        let (mut live0, _) = Client::connect(b.addr, &b.id_on("live0", 0), true);
        live0.subscribe("status/#", QoS::AtMostOnce);
        let c = Connect {
            will: Some(will("status/dev", "offline", QoS::ExactlyOnce, true)),
            ..connect_packet(&b.id_on("dev", 0), true)
        };
        let (dev, _) = Client::connect_with(b.addr, c);
        drop(dev);
        let p = live2.recv_publish().expect("will at QoS 2");
        assert_eq!(
            (&*p.topic, p.payload.as_ref(), p.qos, p.retain),
            ("status/dev", &b"offline"[..], QoS::ExactlyOnce, false)
        );
        live2.ack(&p);
        let p = live0.recv_publish().expect("will downgraded to QoS 0");
        assert_eq!((p.qos, p.retain), (QoS::AtMostOnce, false));
        for shard in 0..cores {
            let (mut later, _) =
                Client::connect(b.addr, &b.id_on(&format!("later{shard}"), shard), true);
            later.subscribe("status/+", QoS::AtLeastOnce);
            let p = later.recv_publish().expect("retained will");
            assert_eq!(
                (&*p.topic, p.payload.as_ref(), p.qos, p.retain),
                ("status/dev", &b"offline"[..], QoS::AtLeastOnce, true)
            );
            later.ack(&p);
        }
    });
}

/// [MQTT-3.1.2-23]: PINGREQ within the keepalive keeps the connection open
/// well past 1.5× the keepalive; when the pings stop, it is closed.
#[test]
fn pingreq_keeps_connection_alive() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut sub, mut victim) = setup(&b, "pinger", 1);
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(2000) {
            victim.ping();
            std::thread::sleep(Duration::from_millis(400));
        }
        victim.ping();
        assert_eq!(b.metrics().keepalive_timeouts, 0);
        // Now silent: closed, will published.
        assert!(victim.closed());
        expect_will(&mut sub, "pinger");
        let m = b.wait_metrics(|m| m.keepalive_timeouts >= 1);
        assert_eq!(m.keepalive_timeouts, 1);
    });
}

/// [MQTT-3.1.2-10 / §3.1.2.10]: keepalive 0 turns the mechanism off; a
/// keepalive-1 client silent just as long is closed meanwhile.
#[test]
fn keepalive_zero_disables() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut off, _) = Client::connect_with(
            b.addr,
            with_will(
                &b.id_on("off", cores - 1),
                "will/off",
                QoS::AtMostOnce,
                false,
                0,
            ),
        );
        let (mut on, _) = Client::connect_with(
            b.addr,
            with_will(&b.id_on("on", 0), "will/on", QoS::AtMostOnce, false, 1),
        );
        assert!(on.closed(), "keepalive 1 closed");
        // Silent for well over 1.5 s by now.
        off.expect_silence(Duration::from_millis(500));
        off.ping();
        let m = b.wait_metrics(|m| m.keepalive_timeouts >= 1);
        assert_eq!(m.keepalive_timeouts, 1);
    });
}

//! A subscriber that stops reading: the broker's writes to it block, its
//! outbox fills to `max_outbox_bytes`, QoS 0 beyond that is dropped and
//! counted, QoS 1 waits in its session queue; the publisher and other
//! subscribers are not slowed; when it reads again, every packet it gets is
//! intact (partial writes resumed at the right byte).
mod common;
use common::*;
use coremq::codec::{Packet, QoS};
use std::time::Duration;

#[test]
fn slow_subscriber_is_bounded_and_recovers_intact() {
    each_cores(|cores| {
        let mut cfg = config(cores);
        cfg.mqtt.max_outbox_bytes = 256 * 1024;
        let b = start_with(cfg, coremq::Hooks::new());
        let (mut slow, _) = Client::connect(b.addr, &b.id_on("slow", cores - 1), true);
        slow.subscribe("flood/#", QoS::AtLeastOnce);
        let (mut fast, _) = Client::connect(b.addr, &b.id_on("fast", 0), true);
        fast.subscribe("flood/#", QoS::AtMostOnce);
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("flooder", 0), true);
        let payload = vec![0xAB; 8 * 1024];
        // ~16 MB of QoS 0: far more than socket buffers plus the outbox.
        for i in 0..2000u32 {
            let mut p = payload.clone();
            p[..4].copy_from_slice(&i.to_be_bytes());
            publ.publish("flood/a", &p, QoS::AtMostOnce, false);
            if i % 200 == 0 {
                // The fast subscriber keeps up; drain it as we go.
                while fast.recv_within(Duration::from_millis(1)).is_some() {}
            }
        }
        publ.publish("flood/last", b"q1", QoS::AtLeastOnce, false);
        let m = b.wait_metrics(|m| m.dropped_qos0_slow > 0);
        assert!(
            m.dropped_qos0_slow > 0,
            "QoS 0 to the slow subscriber is dropped: {m:?}"
        );
        // Now read everything the slow one was sent: each packet must decode
        // (the codec panics on a torn packet) and carry an intact payload.
        let mut qos0 = 0;
        let mut last_seen = false;
        while let Some(p) = slow.recv_within(Duration::from_secs(2)) {
            if let Packet::Publish(p) = p {
                if &*p.topic == "flood/last" {
                    assert_eq!(p.payload.as_ref(), b"q1");
                    slow.ack(&p);
                    last_seen = true;
                    break;
                }
                assert_eq!(p.payload.len(), payload.len());
                assert!(p.payload[4..].iter().all(|&x| x == 0xAB), "payload intact");
                qos0 += 1;
            }
        }
        assert!(
            last_seen,
            "the QoS 1 message published after the flood arrives"
        );
        assert!(
            qos0 > 0 && qos0 < 2000,
            "some QoS 0 delivered, some dropped: {qos0}"
        );
        // The broker still serves everyone.
        publ.publish("flood/after", b"ok", QoS::AtLeastOnce, false);
        assert_eq!(slow.recv_publish().expect("after").payload.as_ref(), b"ok");
    });
}

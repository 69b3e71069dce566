//! Session limits and policies not covered elsewhere: the awaiting-PUBREL
//! bound, QoS 0 dropped first from a full queue when `store_qos0` is on, and
//! `retry_interval_s = 0` (re-send only on reconnect).
mod common;
use common::*;
use coremq::codec::Ack;
use coremq::codec::{Packet, QoS};
use coremq::Hooks;
use std::time::Duration;

/// A QoS 2 PUBLISH to `rel/x` with this packet id.
fn send_q2(c: &mut Client, pkid: u16) {
    c.send(&Packet::Publish(publish_packet(
        "rel/x",
        b"m",
        QoS::ExactlyOnce,
        pkid,
        false,
        false,
    )));
}

// More inbound QoS 2 messages awaiting PUBREL than `max_awaiting_rel`: the
// client is disconnected (a quota, logged and counted), the others go on.
#[test]
fn too_many_qos2_awaiting_pubrel_disconnects_the_client() {
    each_cores(|cores| {
        let mut cfg = config(cores);
        cfg.session.max_awaiting_rel = 3;
        let b = start_with(cfg, Hooks::new());
        let (mut other, _) = Client::connect(b.addr, &b.id_on("bystander", cores - 1), true);
        other.subscribe("rel/#", QoS::AtMostOnce);
        let (mut c, _) = Client::connect(b.addr, &b.id_on("hoarder", 0), true);
        for pkid in 1..=3u16 {
            send_q2(&mut c, pkid);
            assert_eq!(c.recv(), Some(Packet::PubRec(Ack::new(pkid))));
        }
        // Releasing one makes room again.
        c.send(&Packet::PubRel(Ack::new(1)));
        assert_eq!(c.recv(), Some(Packet::PubComp(Ack::new(1))));
        send_q2(&mut c, 4);
        assert_eq!(c.recv(), Some(Packet::PubRec(Ack::new(4))));
        // A fourth one outstanding is over the bound.
        send_q2(&mut c, 5);
        assert!(c.closed(), "hoarder disconnected");
        let m = b.wait_metrics(|m| m.protocol_errors >= 1);
        assert_eq!(m.protocol_errors, 1);
        // Four messages were routed (pkids 1-4), the fifth was not.
        let got: Vec<_> = (0..4)
            .map(|_| other.recv_publish().expect("routed"))
            .collect();
        assert_eq!(got.len(), 4);
        other.expect_silence(Duration::from_millis(300));
        let (mut again, _) = Client::connect(b.addr, &b.id_on("after", 0), true);
        again.ping();
    });
}

// With store_qos0 on, a full queue drops its oldest QoS 0 message before any
// QoS 1 message, whatever the drop policy.
#[test]
fn full_queue_drops_qos0_first_when_storing_qos0() {
    each_cores(|cores| {
        let mut cfg = config(cores);
        cfg.session.store_qos0 = true;
        cfg.session.max_mqueue_len = 3;
        let b = start_with(cfg, Hooks::new());
        let id = b.id_on("q0first", cores - 1);
        let (mut sub, _) = Client::connect(b.addr, &id, false);
        sub.subscribe("q/#", QoS::AtLeastOnce);
        sub.disconnect_wait();
        let (mut w, _) = Client::connect(b.addr, &b.id_on("q0witness", cores - 1), true);
        w.subscribe("q/#", QoS::AtMostOnce);
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("q0pub", 0), true);
        publ.publish("q/a", b"zero-1", QoS::AtMostOnce, false);
        publ.publish("q/a", b"one-1", QoS::AtLeastOnce, false);
        publ.publish("q/a", b"zero-2", QoS::AtMostOnce, false);
        publ.publish("q/a", b"one-2", QoS::AtLeastOnce, false); // full: zero-1 goes
        publ.publish("q/a", b"one-3", QoS::AtLeastOnce, false); // full: zero-2 goes
        for _ in 0..5 {
            w.recv_publish().expect("witness sees every message");
        }
        let m = b.wait_metrics(|m| m.dropped_queue_full >= 2);
        assert_eq!(m.dropped_queue_full, 2);
        let (mut sub, present) = Client::connect(b.addr, &id, false);
        assert!(present);
        let got: Vec<String> = sub.recv_acked(3).iter().map(text).collect();
        assert_eq!(got, ["one-1", "one-2", "one-3"]);
        sub.expect_silence(Duration::from_millis(300));
    });
}

// retry_interval_s = 0: an unacknowledged message is not re-sent while the
// client stays connected, and is re-sent (DUP=1, same id) when it reconnects.
#[test]
fn retry_interval_zero_resends_only_on_reconnect() {
    let mut cfg = config(2);
    cfg.session.retry_interval_s = 0;
    let b = start_with(cfg, Hooks::new());
    let id = b.id_on("noretry", 1);
    let (mut sub, _) = Client::connect(b.addr, &id, false);
    sub.subscribe("r0/#", QoS::AtLeastOnce);
    let (mut publ, _) = Client::connect(b.addr, &b.id_on("r0pub", 0), true);
    publ.publish("r0/x", b"once", QoS::AtLeastOnce, false);
    let first = sub.recv_publish().expect("delivered");
    assert!(!first.dup);
    sub.expect_silence(Duration::from_millis(2500));
    drop(sub);
    let (mut sub, present) = Client::connect(b.addr, &id, false);
    assert!(present);
    let again = sub.recv_publish().expect("re-sent on reconnect");
    assert!(again.dup);
    assert_eq!(again.pkid, first.pkid);
    sub.ack(&again);
}

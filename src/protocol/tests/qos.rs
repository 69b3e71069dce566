//! QoS 1 and 2 both ways, retry, resume, and the queue's drop policies.

use crate::codec::Ack;
use crate::codec::{Packet, QoS};
use crate::config::QueueDropPolicy;
use crate::session::event::SessionEvent;
use crate::shard::harness::{publish, small_config, H};
use crate::shard::TimerItem;

/// A subscriber on "t" at `qos` and a publisher, both connected.
fn pair(h: &mut H, qos: QoS) -> (crate::shard::ConnKey, crate::shard::ConnKey) {
    let (sub, _) = h.connect("sub", false);
    h.subscribe(sub, &[("t", qos)]);
    let (publisher, _) = h.connect("pub", true);
    (sub, publisher)
}

#[test]
fn qos1_inbound_is_acknowledged() {
    // [MQTT-4.3.2-2] PUBACK with the packet id.
    let mut h = H::new(1);
    let (_, p) = pair(&mut h, QoS::AtLeastOnce);
    let _ = h.send(p, publish("t", b"m", QoS::AtLeastOnce, 7, false));
    assert_eq!(h.out(p), vec![Packet::PubAck(Ack::new(7))]);
}

#[test]
fn qos1_outbound_is_retried_with_dup_until_acked() {
    let mut h = H::new(1);
    let (s, p) = pair(&mut h, QoS::AtLeastOnce);
    let _ = h.send(p, publish("t", b"m", QoS::AtLeastOnce, 1, false));
    let first = h.publishes(s);
    assert_eq!(first.len(), 1);
    assert!(!first[0].dup);
    let sk = h.shard.sessions.find("sub").expect("session");
    assert!(h.armed().contains(&TimerItem::Retry(sk)));
    // [MQTT-4.4.0-1] re-sent with DUP=1 and the same packet id.
    let retry_ms = h.shard.cfg.session.retry_interval_s * 1000;
    h.advance(retry_ms + 200);
    let again = h.publishes(s);
    assert_eq!(again.len(), 1);
    assert!(again[0].dup);
    assert_eq!(again[0].pkid, first[0].pkid);
    h.events();
    let _ = h.send(s, Packet::PubAck(Ack::new(first[0].pkid)));
    assert!(
        matches!(h.events().as_slice(), [SessionEvent::Acked { pkid, .. }] if *pkid == first[0].pkid)
    );
    h.advance(retry_ms + 200);
    assert!(h.publishes(s).is_empty(), "acknowledged: no more retries");
}

#[test]
fn qos2_outbound_flow_with_pubrel_retry() {
    // [MQTT-4.3.3-1]: PUBLISH, PUBREC, PUBREL, PUBCOMP.
    let mut h = H::new(1);
    let (s, p) = pair(&mut h, QoS::ExactlyOnce);
    let _ = h.send(p, publish("t", b"m", QoS::ExactlyOnce, 1, false));
    let pkid = h.publishes(s)[0].pkid;
    let _ = h.send(s, Packet::PubRec(Ack::new(pkid)));
    assert_eq!(h.out(s), vec![Packet::PubRel(Ack::new(pkid))]);
    let retry_ms = h.shard.cfg.session.retry_interval_s * 1000;
    h.advance(retry_ms + 200);
    assert_eq!(
        h.out(s),
        vec![Packet::PubRel(Ack::new(pkid))],
        "PUBREL re-sent"
    );
    // (A PUBACK for it closes the connection: see strict.rs, wrong_qos_ack.)
    let sk = h.shard.sessions.find("sub").expect("session");
    assert!(!h.shard.sessions.get(sk).expect("s").window_is_empty());
    let _ = h.send(s, Packet::PubComp(Ack::new(pkid)));
    assert!(h.shard.sessions.get(sk).expect("s").window_is_empty());
}

#[test]
fn qos2_inbound_is_routed_once() {
    // [MQTT-4.3.3-2]: a re-sent PUBLISH before PUBREL is not routed again.
    let mut h = H::new(1);
    let (s, p) = pair(&mut h, QoS::AtMostOnce);
    let _ = h.send(p, publish("t", b"m", QoS::ExactlyOnce, 9, false));
    assert_eq!(h.out(p), vec![Packet::PubRec(Ack::new(9))]);
    let _ = h.send(p, publish("t", b"m", QoS::ExactlyOnce, 9, false));
    assert_eq!(h.out(p), vec![Packet::PubRec(Ack::new(9))]);
    assert_eq!(h.publishes(s).len(), 1, "delivered once");
    assert_eq!(h.shard.metrics.qos2_duplicates, 1);
    h.events();
    let _ = h.send(p, Packet::PubRel(Ack::new(9)));
    assert_eq!(h.out(p), vec![Packet::PubComp(Ack::new(9))]);
    assert!(matches!(
        h.events().as_slice(),
        [SessionEvent::PubRelReceived { pkid: 9, .. }]
    ));
    // After PUBREL the id is free: a new message with it is routed.
    let _ = h.send(p, publish("t", b"n", QoS::ExactlyOnce, 9, false));
    assert_eq!(h.publishes(s).len(), 1);
}

#[test]
fn delivered_qos_is_the_lower_of_publish_and_subscription() {
    // [MQTT-3.8.4-6] / §3.3.5
    let mut h = H::new(1);
    let (s, p) = pair(&mut h, QoS::AtLeastOnce);
    let _ = h.send(p, publish("t", b"m", QoS::ExactlyOnce, 1, false));
    let _ = h.send(p, publish("t", b"m", QoS::AtMostOnce, 0, false));
    let got: Vec<QoS> = h.publishes(s).iter().map(|p| p.qos).collect();
    assert_eq!(got, vec![QoS::AtLeastOnce, QoS::AtMostOnce]);
}

#[test]
fn resume_resends_the_window_with_dup_and_the_queue_after_it() {
    let mut h = H::with(small_config(1, 10, QueueDropPolicy::Oldest), 1);
    let (s, p) = pair(&mut h, QoS::AtLeastOnce);
    let _ = h.send(p, publish("t", b"1", QoS::AtLeastOnce, 1, false));
    let first = h.publishes(s);
    h.drop_socket(s);
    let _ = h.send(p, publish("t", b"2", QoS::AtLeastOnce, 2, false));
    let (s2, present) = h.connect("sub", false);
    assert!(present);
    let again = h.publishes(s2);
    // [MQTT-4.4.0-1] the unacknowledged one first, DUP=1, same id; the
    // queued one waits for window room.
    assert_eq!(again.len(), 1);
    assert!(again[0].dup && again[0].pkid == first[0].pkid);
    let _ = h.send(s2, Packet::PubAck(Ack::new(first[0].pkid)));
    let next = h.publishes(s2);
    assert_eq!(next.len(), 1);
    assert_eq!(&next[0].payload[..], b"2");
    assert!(!next[0].dup);
}

/// Window 1, queue 2: the subscriber is offline, four messages arrive.
fn offline_queue(drop: QueueDropPolicy) -> Vec<Vec<u8>> {
    let mut h = H::with(small_config(1, 2, drop), 1);
    let (s, p) = pair(&mut h, QoS::AtLeastOnce);
    h.drop_socket(s);
    for (i, payload) in [b"1", b"2", b"3", b"4"].into_iter().enumerate() {
        let _ = h.send(
            p,
            publish("t", payload, QoS::AtLeastOnce, i as u16 + 1, false),
        );
    }
    assert_eq!(h.shard.metrics.dropped_queue_full, 2);
    let (s2, _) = h.connect("sub", false);
    h.read_all_publishes(s2)
        .iter()
        .map(|p| p.payload.to_vec())
        .collect()
}

#[test]
fn full_queue_drops_the_oldest() {
    assert_eq!(
        offline_queue(QueueDropPolicy::Oldest),
        vec![b"3".to_vec(), b"4".to_vec()]
    );
}

#[test]
fn full_queue_refuses_the_newest() {
    assert_eq!(
        offline_queue(QueueDropPolicy::Newest),
        vec![b"1".to_vec(), b"2".to_vec()]
    );
}

#[test]
fn offline_qos0_is_not_queued_by_default() {
    let mut h = H::new(1);
    let (s, p) = pair(&mut h, QoS::AtLeastOnce);
    h.drop_socket(s);
    let _ = h.send(p, publish("t", b"q0", QoS::AtMostOnce, 0, false));
    assert_eq!(h.shard.metrics.dropped_qos0_offline, 1);
    let (s2, _) = h.connect("sub", false);
    assert!(h.publishes(s2).is_empty());
}

#[test]
fn queue_is_bounded_in_bytes_too() {
    // 1,500 bytes of queue: the fourth 500-byte message drops the oldest.
    let mut cfg = small_config(1, 100, QueueDropPolicy::Oldest);
    cfg.session.max_mqueue_bytes = 1_500;
    let mut h = H::with(cfg, 1);
    let (s, p) = pair(&mut h, QoS::AtLeastOnce);
    h.drop_socket(s);
    static BIG: [u8; 499] = [b'x'; 499];
    for i in 0..4u16 {
        let _ = h.send(p, publish("t", &BIG, QoS::AtLeastOnce, i + 1, false));
    }
    assert_eq!(h.shard.metrics.dropped_queue_full, 1);
}

//! What one client can make the broker hold: subscriptions, sessions, wills,
//! keepalive, and keepalive judged fairly.

use crate::codec::{LastWill, Packet, Properties, QoS, Reason, SubAckCode};
use crate::config::Config;
use crate::shard::harness::{connect5_packet, connect_packet, H};
use crate::shard::CloseReason;
use bytes::Bytes;

#[test]
fn subscriptions_are_bounded_per_client() {
    let mut cfg = Config::default();
    cfg.limits.max_subscriptions_per_client = 2;
    let mut h = H::with(cfg, 1);
    let (s, _) = h.connect("s", true);
    let codes = h.subscribe(
        s,
        &[
            ("a", QoS::AtMostOnce),
            ("b", QoS::AtMostOnce),
            ("c", QoS::AtMostOnce),
        ],
    );
    assert_eq!(codes[2], SubAckCode::Failure, "the third is over the limit");
    // Re-subscribing to one it holds is a replacement, not a new one.
    assert_eq!(
        h.subscribe(s, &[("a", QoS::AtLeastOnce)]),
        vec![SubAckCode::Granted(QoS::AtLeastOnce)]
    );
    assert_eq!(h.shard.metrics.subscriptions_refused_limit, 1);
}

#[test]
fn deep_or_long_filters_are_refused() {
    let mut cfg = Config::default();
    cfg.limits.max_topic_levels = 4;
    cfg.limits.max_filter_len = 16;
    let mut h = H::with(cfg, 1);
    let (s, _) = h.connect("s", true);
    let long = "x".repeat(17);
    let codes = h.subscribe(
        s,
        &[
            ("a/b/c/d", QoS::AtMostOnce),
            ("a/b/c/d/e", QoS::AtMostOnce),
            (&long, QoS::AtMostOnce),
        ],
    );
    assert_eq!(
        codes,
        vec![
            SubAckCode::Granted(QoS::AtMostOnce),
            SubAckCode::Failure,
            SubAckCode::Failure
        ]
    );
}

#[test]
fn sessions_are_bounded_per_shard() {
    // max_sessions 3 over 2 shards: this shard holds 2.
    let mut cfg = Config::default();
    cfg.limits.max_sessions = 3;
    let mut h = H::with(cfg, 2);
    h.connect("a", false);
    h.connect("b", false);
    let (_, ack) = h.connect_with(connect_packet("c", false, None));
    assert_eq!(ack.code, Reason::SERVER_UNAVAILABLE);
    // A session that exists may still be resumed.
    let (_, ack) = h.connect_with(connect_packet("a", false, None));
    assert_eq!(ack.code, Reason::SUCCESS);
    assert!(ack.session_present);
}

#[test]
fn a_will_over_max_will_bytes_is_refused() {
    let mut cfg = Config::default();
    cfg.limits.max_will_bytes = 100;
    let mut h = H::with(cfg, 1);
    let will = LastWill {
        topic: "w".into(),
        payload: Bytes::from(vec![0u8; 100]),
        qos: QoS::AtMostOnce,
        retain: false,
        props: None,
    };
    let (_, ack) = h.connect_with(connect_packet("c", true, Some(will)));
    assert_eq!(ack.code, Reason::NOT_AUTHORIZED);
    assert_eq!(h.shard.metrics.wills_refused, 1);
}

/// MQTT 5 will properties count against `max_will_bytes`: a will of one
/// payload byte with a large user property is no way around the limit.
#[test]
fn will_properties_count_against_max_will_bytes() {
    let mut cfg = Config::default();
    cfg.limits.max_will_bytes = 100;
    let mut h = H::with(cfg, 1);
    let props = Properties {
        user_properties: vec![("k".into(), "v".repeat(1000))],
        ..Properties::default()
    };
    let will = LastWill {
        topic: "w".into(),
        payload: Bytes::from_static(b"x"),
        qos: QoS::AtMostOnce,
        retain: false,
        props: Some(Box::new(props)),
    };
    let (_, ack) = h.connect_with(connect5_packet(
        "c",
        true,
        Properties::default(),
        Some(will),
    ));
    assert_eq!(ack.code, Reason::QUOTA_EXCEEDED);
    assert_eq!(h.shard.metrics.wills_refused, 1);
}

#[test]
fn max_keepalive_holds_clients_that_ask_for_none() {
    let mut cfg = Config::default();
    cfg.limits.max_keepalive = 10;
    let mut h = H::with(cfg, 1);
    let mut connect = connect_packet("c", true, None);
    if let Packet::Connect(c) = &mut connect {
        c.keep_alive = 0;
    }
    let (conn, ack) = h.connect_with(connect);
    assert_eq!(ack.code, Reason::SUCCESS);
    h.advance(14_000);
    assert!(h.closed.is_empty(), "held for 10 s x 1.5");
    h.advance(2_000);
    assert_eq!(h.closed.get(&conn), Some(&CloseReason::KeepaliveTimeout));
}

#[test]
fn keepalive_is_not_judged_by_a_late_tick() {
    // The shard was busy for the whole keepalive: the client's bytes may be
    // waiting unread, so the late tick spares it; an on-time one does not.
    let mut h = H::new(1);
    let (c, _) = h.connect("c", true);
    h.shard.timers.stall(91_000);
    h.shard.tick(&mut Vec::new());
    assert!(h.shard.conns.get(c).is_some(), "spared by a late tick");
    assert_eq!(h.shard.metrics.keepalive_spared, 1);
    h.advance(61_000);
    assert_eq!(h.closed.get(&c), Some(&CloseReason::KeepaliveTimeout));
}

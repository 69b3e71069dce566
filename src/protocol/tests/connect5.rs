//! MQTT 5 CONNECT, CONNACK and DISCONNECT: session expiry and clean start,
//! assigned client ids, CONNACK properties, the client's receive maximum,
//! will delay, and the reasons of server-sent DISCONNECTs.

use crate::codec::{Ack, Disconnect, LastWill, Packet, Properties, QoS, Reason};
use crate::config::Config;
use crate::shard::harness::{connect5_packet, publish, H};
use crate::shard::{CloseReason, ConnKey};
use bytes::Bytes;

fn expiry(secs: u32) -> Properties {
    Properties {
        session_expiry_interval: Some(secs),
        ..Properties::default()
    }
}

/// A normal DISCONNECT that sets the session expiry interval to `secs`.
fn disconnect_setting(secs: u32) -> Disconnect {
    Disconnect {
        reason: Reason::NORMAL_DISCONNECTION,
        props: Some(Box::new(expiry(secs))),
    }
}

/// A will on "will/w" with these will properties.
fn will(props: Properties) -> Option<LastWill> {
    Some(LastWill {
        topic: "will/w".into(),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        props: Some(Box::new(props)),
    })
}

fn will_delay(secs: u32) -> Option<LastWill> {
    will(Properties {
        will_delay_interval: Some(secs),
        ..Properties::default()
    })
}

fn wills_seen(h: &mut H, watch: ConnKey) -> usize {
    h.publishes(watch)
        .iter()
        .filter(|p| &*p.topic == "will/w")
        .count()
}

fn watcher(h: &mut H) -> ConnKey {
    let (watch, _) = h.connect("watch", true);
    h.subscribe(watch, &[("will/#", QoS::AtLeastOnce)]);
    watch
}

#[test]
fn connack_states_the_broker_limits() {
    // §3.2.2.3: receive maximum, maximum packet size, topic alias maximum;
    // the defaults of maximum QoS / availability flags are left out.
    let mut h = H::new(1);
    let (_, ack) = h.connect5("c", true, Properties::default());
    let p = ack.props.expect("CONNACK properties");
    assert_eq!(p.receive_maximum, Some(100));
    assert_eq!(p.maximum_packet_size, Some(1 << 20));
    assert_eq!(p.topic_alias_maximum, Some(64));
    assert_eq!(p.maximum_qos, None);
    assert_eq!(p.retain_available, None);
    assert_eq!(p.assigned_client_identifier, None);
    assert_eq!(p.session_expiry_interval, None, "0 asked, 0 granted");
    assert!(!ack.session_present);
}

#[test]
fn connack_says_what_is_not_available() {
    let mut cfg = Config::default();
    cfg.mqtt.maximum_qos = 1;
    cfg.mqtt.retain_available = false;
    cfg.mqtt.wildcard_subscriptions = false;
    cfg.mqtt.subscription_identifiers = false;
    cfg.mqtt.shared_subscriptions = false;
    let mut h = H::with(cfg, 1);
    let (_, ack) = h.connect5("c", true, Properties::default());
    let p = ack.props.expect("CONNACK properties");
    assert_eq!(p.maximum_qos, Some(1));
    assert_eq!(p.retain_available, Some(0));
    assert_eq!(p.wildcard_subscription_available, Some(0));
    assert_eq!(p.subscription_identifier_available, Some(0));
    assert_eq!(p.shared_subscription_available, Some(0));
}

#[test]
fn empty_client_id_is_assigned_one() {
    // [MQTT-3.1.3-6] [MQTT-3.2.2-16], also with clean start 0.
    let mut h = H::new(1);
    let (_, ack) = h.connect5("", false, expiry(60));
    let id = ack.props.and_then(|p| p.assigned_client_identifier);
    let id = id.expect("assigned client identifier");
    assert!(!id.is_empty());
    assert!(h.shard.sessions.find(&id).is_some());
}

#[test]
fn session_expiry_keeps_a_session_and_clean_start_discards_it() {
    // [MQTT-3.1.2-23]: expiry > 0 keeps the session after the connection.
    let mut h = H::new(1);
    let (c, _) = h.connect5("c", true, expiry(30));
    h.drop_socket(c);
    assert!(h.shard.sessions.find("c").is_some(), "kept for 30 s");
    let (c, ack) = h.connect5("c", false, expiry(30));
    assert!(ack.session_present, "[MQTT-3.2.2-3]");
    h.drop_socket(c);
    // [MQTT-3.1.2-4]: clean start discards it.
    let (_, ack) = h.connect5("c", true, expiry(30));
    assert!(!ack.session_present, "[MQTT-3.2.2-2]");
    // It expires 30 s after the disconnect.
    let (c, _) = h.connect5("d", true, expiry(2));
    h.drop_socket(c);
    h.advance(2_500);
    assert!(h.shard.sessions.find("d").is_none(), "expired");
}

#[test]
fn zero_session_expiry_ends_with_the_connection() {
    let mut h = H::new(1);
    let (c, _) = h.connect5("c", false, Properties::default());
    h.drop_socket(c);
    assert!(h.shard.sessions.find("c").is_none());
}

#[test]
fn a_longer_expiry_than_configured_is_lowered_and_said() {
    let mut h = H::new(1);
    let (_, ack) = h.connect5("c", true, expiry(u32::MAX));
    let granted = ack.props.and_then(|p| p.session_expiry_interval);
    assert_eq!(granted, Some(7200), "session.expiry_s caps it");
}

#[test]
fn disconnect_changes_the_session_expiry() {
    // §3.14.2.2.2: DISCONNECT sets a new expiry.
    let mut h = H::new(1);
    let (c, _) = h.connect5("c", true, expiry(30));
    let d = disconnect_setting(0);
    assert_eq!(h.send(c, Packet::Disconnect(d)), Err(CloseReason::Normal));
    assert!(h.shard.sessions.find("c").is_none(), "ended at once");
}

#[test]
fn disconnect_may_not_raise_a_zero_expiry() {
    // [MQTT-3.14.2-2]: a protocol error, answered with DISCONNECT 0x82.
    let mut h = H::new(1);
    let (c, _) = h.connect5("c", true, Properties::default());
    let d = disconnect_setting(60);
    assert_eq!(
        h.send(c, Packet::Disconnect(d)),
        Err(CloseReason::ProtocolError)
    );
    assert_eq!(
        h.out(c),
        vec![Packet::Disconnect(Disconnect::with(Reason::PROTOCOL_ERROR))]
    );
    assert!(h.shard.sessions.find("c").is_none());
}

#[test]
fn disconnect_with_will_publishes_it_and_success_does_not() {
    // [MQTT-3.14.4-3]
    let mut h = H::new(1);
    let watch = watcher(&mut h);
    let packet = connect5_packet(
        "w",
        true,
        Properties::default(),
        will(Properties::default()),
    );
    let (w, _) = h.connect_with(packet.clone());
    let d = Disconnect::with(Reason::DISCONNECT_WITH_WILL);
    assert_eq!(
        h.send(w, Packet::Disconnect(d)),
        Err(CloseReason::ClientError)
    );
    assert_eq!(wills_seen(&mut h, watch), 1);
    let (w, _) = h.connect_with(packet);
    let _ = h.send(w, Packet::Disconnect(Disconnect::normal()));
    assert_eq!(wills_seen(&mut h, watch), 0);
    assert_eq!(h.out(w), vec![], "no DISCONNECT answers the client's");
}

#[test]
fn takeover_tells_the_old_connection_why() {
    // [MQTT-3.1.4-3]: DISCONNECT 0x8E to the connection taken over.
    let mut h = H::new(1);
    let (old, _) = h.connect5("c", true, expiry(60));
    let (_, ack) = h.connect5("c", false, expiry(60));
    assert!(ack.session_present);
    assert_eq!(
        h.out(old),
        vec![Packet::Disconnect(Disconnect::with(
            Reason::SESSION_TAKEN_OVER
        ))]
    );
}

#[test]
fn keepalive_timeout_is_disconnect_0x8d() {
    let mut h = H::new(1);
    let (c, _) = h.connect5("c", true, Properties::default());
    let watch = watcher(&mut h);
    h.advance(60_000);
    let _ = h.send(watch, Packet::PingReq);
    h.advance(31_000);
    assert_eq!(h.closed.get(&c), Some(&CloseReason::KeepaliveTimeout));
    assert_eq!(
        h.out(c),
        vec![Packet::Disconnect(Disconnect::with(
            Reason::KEEP_ALIVE_TIMEOUT
        ))]
    );
}

#[test]
fn server_keep_alive_is_sent_when_it_overrides() {
    // [MQTT-3.2.2-21] [MQTT-3.2.2-22]
    let mut cfg = Config::default();
    cfg.limits.max_keepalive = 10;
    let mut h = H::with(cfg, 1);
    let (_, ack) = h.connect5("c", true, Properties::default());
    assert_eq!(ack.props.and_then(|p| p.server_keep_alive), Some(10));
}

#[test]
fn response_information_when_asked_and_configured() {
    let mut cfg = Config::default();
    cfg.mqtt.response_information = "reply/".into();
    let mut h = H::with(cfg, 1);
    let ask = Properties {
        request_response_information: Some(1),
        ..Properties::default()
    };
    let (_, ack) = h.connect5("c", true, ask);
    let info = ack.props.and_then(|p| p.response_information);
    assert_eq!(info.as_deref(), Some("reply/c"));
    let (_, ack) = h.connect5("d", true, Properties::default());
    assert_eq!(ack.props.and_then(|p| p.response_information), None);
}

/// A subscriber "s" to "t" at QoS 1 with Receive Maximum 2, and a 3.1.1
/// publisher "p".
fn receive_maximum_2() -> (H, ConnKey, ConnKey) {
    let mut h = H::new(1);
    let ask = Properties {
        receive_maximum: Some(2),
        ..Properties::default()
    };
    let (s, _) = h.connect5("s", true, ask);
    h.subscribe(s, &[("t", QoS::AtLeastOnce)]);
    let (p, _) = h.connect("p", true);
    (h, s, p)
}

#[test]
fn client_receive_maximum_bounds_the_window() {
    // [MQTT-3.3.4-9]: at most Receive Maximum unacknowledged QoS 1/2 PUBLISHes.
    let (mut h, s, p) = receive_maximum_2();
    for id in 1..=5 {
        let _ = h.send(p, publish("t", b"m", QoS::AtLeastOnce, id, false));
    }
    let got = h.publishes(s);
    assert_eq!(got.len(), 2);
    let _ = h.send(s, Packet::PubAck(Ack::new(got[0].pkid)));
    assert_eq!(h.publishes(s).len(), 1, "one more per PUBACK");
}

#[test]
fn will_waits_out_its_delay() {
    // [MQTT-3.1.2-8] [MQTT-3.1.3-9]: published when the delay ends.
    let mut h = H::new(1);
    let watch = watcher(&mut h);
    let (w, _) = h.connect_with(connect5_packet("w", true, expiry(60), will_delay(5)));
    h.drop_socket(w);
    assert_eq!(wills_seen(&mut h, watch), 0, "not before the delay");
    h.advance(5_200);
    assert_eq!(wills_seen(&mut h, watch), 1);
}

#[test]
fn a_reconnect_within_the_delay_cancels_the_will() {
    // [MQTT-3.1.3-9]
    let mut h = H::new(1);
    let watch = watcher(&mut h);
    let (w, _) = h.connect_with(connect5_packet("w", true, expiry(60), will_delay(5)));
    h.drop_socket(w);
    h.advance(2_000);
    let _ = h.connect5("w", false, expiry(60));
    h.advance(5_000);
    assert_eq!(wills_seen(&mut h, watch), 0);
    assert_eq!(h.shard.metrics.wills_cancelled, 1);
}

#[test]
fn the_session_ending_first_publishes_the_will_then() {
    // The earlier of the delay and the session's end [MQTT-3.1.3-9].
    let mut h = H::new(1);
    let watch = watcher(&mut h);
    let (w, _) = h.connect_with(connect5_packet("w", true, expiry(2), will_delay(60)));
    h.drop_socket(w);
    assert_eq!(wills_seen(&mut h, watch), 0);
    h.advance(2_500);
    assert_eq!(wills_seen(&mut h, watch), 1, "at the session's expiry");
    // With no session expiry the will goes at once.
    let (w, _) = h.connect_with(connect5_packet("w", true, expiry(0), will_delay(60)));
    h.drop_socket(w);
    assert_eq!(wills_seen(&mut h, watch), 1);
}

#[test]
fn a_will_above_maximum_qos_is_refused() {
    // [MQTT-3.2.2-12]: CONNACK 0x9B.
    let mut cfg = Config::default();
    cfg.mqtt.maximum_qos = 0;
    let mut h = H::with(cfg, 1);
    let (_, ack) = h.connect_with(connect5_packet(
        "w",
        true,
        Properties::default(),
        will(Properties::default()),
    ));
    assert_eq!(ack.code, Reason::QOS_NOT_SUPPORTED);
    assert!(ack.props.and_then(|p| p.reason_string).is_some());
}

#[test]
fn a_small_receive_maximum_still_delivers_everything_in_order() {
    // [MQTT-3.3.4-9] §4.9: one more per PUBACK, nothing lost or reordered.
    let (mut h, s, p) = receive_maximum_2();
    let payloads: [&'static [u8]; 6] = [b"0", b"1", b"2", b"3", b"4", b"5"];
    for (i, m) in payloads.iter().enumerate() {
        let _ = h.send(p, publish("t", m, QoS::AtLeastOnce, i as u16 + 1, false));
    }
    let mut got = Vec::new();
    let mut unacked = h.publishes(s);
    while !unacked.is_empty() {
        assert!(unacked.len() <= 2, "{unacked:?}");
        for m in &unacked {
            got.push(m.payload.clone());
            let _ = h.send(s, Packet::PubAck(Ack::new(m.pkid)));
        }
        unacked = h.publishes(s);
    }
    assert_eq!(got, payloads.map(Bytes::from_static).to_vec());
}

#[test]
fn a_session_passes_between_versions() {
    // Mixed versions: a 3.1.1 client resumes (and takes over) an MQTT 5
    // session and the other way round; what waited is sent in the new
    // connection's encoding, the new connection's expiry applies.
    let mut h = H::new(1);
    let (c5, _) = h.connect5("c", true, expiry(60));
    h.subscribe(c5, &[("t", QoS::AtLeastOnce)]);
    let (c3, present) = h.connect("c", false);
    assert!(present, "3.1.1 takes the MQTT 5 session over");
    assert_eq!(
        h.out(c5),
        vec![Packet::Disconnect(Disconnect::with(
            Reason::SESSION_TAKEN_OVER
        ))]
    );
    h.drop_socket(c3);
    let (p, _) = h.connect("p", true);
    let _ = h.send(p, publish("t", b"queued", QoS::AtLeastOnce, 1, false));
    let (c5, ack) = h.connect5("c", false, expiry(0));
    assert!(ack.session_present, "MQTT 5 resumes the 3.1.1 session");
    let got = h.publishes(c5);
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].payload[..], b"queued");
    let _ = h.send(c5, Packet::PubAck(Ack::new(got[0].pkid)));
    h.drop_socket(c5);
    assert!(h.shard.sessions.find("c").is_none(), "its expiry is now 0");
}

#[test]
fn the_disconnect_rule_is_about_what_connect_asked() {
    // [MQTT-3.14.2-2] concerns the CONNECT's interval: one the broker capped
    // to 0 (session.expiry_s = 0) was not 0, so DISCONNECT may set one.
    let mut cfg = Config::default();
    cfg.session.expiry_s = 0;
    let mut h = H::with(cfg, 1);
    let (c, _) = h.connect5("c", true, expiry(100));
    let d = disconnect_setting(50);
    assert_eq!(h.send(c, Packet::Disconnect(d)), Err(CloseReason::Normal));
}

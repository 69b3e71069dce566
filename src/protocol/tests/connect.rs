//! CONNECT, takeover and resume.

use crate::codec::{Packet, QoS, Reason};
use crate::session::event::SessionEvent;
use crate::session::Expiry;
use crate::shard::harness::{connect_packet, publish, H};
use crate::shard::{CloseReason, TimerItem};

#[test]
fn connect_is_acknowledged_and_arms_keepalive() {
    let mut h = H::new(1);
    let (conn, present) = h.connect("a", true);
    assert!(!present, "[MQTT-3.2.2-1] a new session is not present");
    // Keepalive 60 s: due after the connect timer (10 s), which starts
    // the keepalive checks when it fires: one timer entry, not two.
    assert_eq!(h.armed(), [TimerItem::ConnectTimeout(conn)]);
    h.advance(10_000);
    assert_eq!(h.armed(), [TimerItem::Keepalive(conn)]);
    assert!(h.closed.is_empty());
    let events = h.events();
    assert!(matches!(
        events.as_slice(),
        [SessionEvent::Created { client_id, expiry: Expiry::OnDisconnect, .. }] if &**client_id == "a"
    ));
}

/// [MQTT-3.1.2-24] A keepalive due before the connect timer fires gets a
/// timer of its own; a deferred one still closes at one and a half times
/// the keepalive.
#[test]
fn keepalive_closes_on_time_whether_or_not_it_waited_for_the_connect_timer() {
    for (keep_alive, due_ms) in [(4u16, 6_000u64), (30, 45_000)] {
        let mut h = H::new(1);
        let mut connect = connect_packet("a", true, None);
        if let Packet::Connect(c) = &mut connect {
            c.keep_alive = keep_alive;
        }
        let (conn, _) = h.connect_with(connect);
        let own = h.armed().contains(&TimerItem::Keepalive(conn));
        assert_eq!(own, due_ms < 10_000, "keepalive {keep_alive} s");
        let mut at = 0;
        while at + 1_000 < due_ms {
            h.advance(1_000);
            at += 1_000;
            assert!(h.closed.is_empty(), "closed at {at} ms, before {due_ms}");
        }
        h.advance(due_ms - at + 200);
        assert_eq!(h.closed.get(&conn), Some(&CloseReason::KeepaliveTimeout));
    }
}

#[test]
fn first_packet_must_be_connect() {
    // [MQTT-3.1.0-1]
    let mut h = H::new(1);
    let conn = h.socket();
    let r = h.send(conn, Packet::PingReq);
    assert_eq!(r, Err(CloseReason::ProtocolError));
    assert!(h.shard.conns.get(conn).is_none(), "closed");
    assert!(h.events().is_empty(), "no session made");
}

#[test]
fn second_connect_is_a_protocol_error() {
    // [MQTT-3.1.0-2]
    let mut h = H::new(1);
    let (conn, _) = h.connect("a", true);
    let r = h.send(conn, connect_packet("a", true, None));
    assert_eq!(r, Err(CloseReason::ProtocolError));
}

#[test]
fn empty_client_id_needs_clean_session() {
    // [MQTT-3.1.3-8]
    let mut h = H::new(1);
    let (_, ack) = h.connect_with(connect_packet("", false, None));
    assert_eq!(ack.code, Reason::CLIENT_IDENTIFIER_NOT_VALID);
    // [MQTT-3.1.3-6] an assigned id, homed on this shard.
    let (conn, ack) = h.connect_with(connect_packet("", true, None));
    assert_eq!(ack.code, Reason::SUCCESS);
    let id = h.shard.conns.get(conn).and_then(|c| c.info().cloned());
    assert!(id.is_some_and(|i| i.client_id.starts_with("coremq-0-")));
}

#[test]
fn connect_timeout_closes_a_silent_socket() {
    let mut h = H::new(1);
    let conn = h.socket();
    h.advance(9_000);
    assert!(h.shard.conns.get(conn).is_some());
    h.advance(1_100);
    assert_eq!(h.closed.get(&conn), Some(&CloseReason::ConnectTimeout));
}

#[test]
fn takeover_closes_the_old_connection_and_resumes_the_session() {
    let mut h = H::new(1);
    let (old, _) = h.connect("a", false);
    h.subscribe(old, &[("t", QoS::AtLeastOnce)]);
    h.events();
    let (new, present) = h.connect("a", false);
    assert!(present, "[MQTT-3.2.2-2] the persistent session is resumed");
    assert_eq!(h.closed.get(&old), Some(&CloseReason::Takeover));
    // The old connection's end is journaled (the session's offline time
    // runs from it), then the resumption.
    assert!(matches!(
        h.events().as_slice(),
        [SessionEvent::Offline { .. }, SessionEvent::Resumed { .. }]
    ));
    // The subscription came along.
    let (publisher, _) = h.connect("p", true);
    let _ = h.send(publisher, publish("t", b"x", QoS::AtLeastOnce, 1, false));
    assert_eq!(h.publishes(new).len(), 1);
}

#[test]
fn clean_session_discards_the_old_one() {
    // [MQTT-3.1.2-6]
    let mut h = H::new(1);
    let (old, _) = h.connect("a", false);
    h.subscribe(old, &[("t", QoS::AtLeastOnce)]);
    h.drop_socket(old);
    h.events();
    let (new, present) = h.connect("a", true);
    assert!(!present);
    let events = h.events();
    assert!(matches!(
        events.as_slice(),
        [SessionEvent::Discarded { .. }, SessionEvent::Created { .. }]
    ));
    let (publisher, _) = h.connect("p", true);
    let _ = h.send(publisher, publish("t", b"x", QoS::AtLeastOnce, 1, false));
    assert!(h.publishes(new).is_empty(), "the old subscription is gone");
}

#[test]
fn offline_session_expires() {
    let mut h = H::new(1);
    let (conn, _) = h.connect("a", false);
    h.drop_socket(conn);
    let expiry_ms = h.shard.cfg.session.expiry_s * 1000;
    h.events();
    h.advance(expiry_ms - 1_000);
    assert!(h.shard.sessions.find("a").is_some());
    h.advance(1_200);
    assert!(h.shard.sessions.find("a").is_none());
    assert!(matches!(
        h.events().as_slice(),
        [SessionEvent::Expired { .. }]
    ));
}

#[test]
fn reconnect_within_expiry_cancels_it() {
    let mut h = H::new(1);
    let (conn, _) = h.connect("a", false);
    h.drop_socket(conn);
    h.advance(1_000);
    let (_, present) = h.connect("a", false);
    assert!(present);
    let expiry_ms = h.shard.cfg.session.expiry_s * 1000;
    h.advance(expiry_ms + 1_000);
    assert!(
        h.shard.sessions.find("a").is_some(),
        "online sessions never expire"
    );
}

//! The will on each kind of abnormal close, and none after DISCONNECT.

use crate::codec::Disconnect;
use crate::codec::{Packet, QoS};
use crate::shard::harness::{connect_packet, publish, will, H};
use crate::shard::CloseReason;

/// A will watcher and a client "w" with a will on "will/w".
fn setup() -> (H, crate::shard::ConnKey, crate::shard::ConnKey) {
    let mut h = H::new(1);
    let (watch, _) = h.connect("watch", true);
    h.subscribe(watch, &[("will/#", QoS::AtLeastOnce)]);
    let (w, _) = h.connect_with(connect_packet("w", true, will("will/w")));
    (h, watch, w)
}

fn wills_seen(h: &mut H, watch: crate::shard::ConnKey) -> usize {
    h.publishes(watch)
        .iter()
        .filter(|p| &*p.topic == "will/w" && &p.payload[..] == b"gone")
        .count()
}

#[test]
fn will_fires_when_the_socket_closes() {
    // [MQTT-3.1.2-8]
    let (mut h, watch, w) = setup();
    h.drop_socket(w);
    assert_eq!(wills_seen(&mut h, watch), 1);
}

#[test]
fn will_fires_on_a_protocol_error() {
    let (mut h, watch, w) = setup();
    let r = h.send(w, publish("bad", b"", QoS::AtLeastOnce, 1, false));
    assert!(r.is_ok());
    let r = h.send(w, connect_packet("w", true, None));
    assert_eq!(r, Err(CloseReason::ProtocolError));
    assert_eq!(wills_seen(&mut h, watch), 1);
}

#[test]
fn will_fires_on_keepalive_expiry() {
    // [MQTT-3.1.2-24] 1.5 × keepalive (60 s) of silence.
    let (mut h, watch, w) = setup();
    h.advance(60_000);
    assert_eq!(wills_seen(&mut h, watch), 0);
    // The watcher stays alive; "w" stays silent.
    let _ = h.send(watch, Packet::PingReq);
    h.advance(31_000);
    assert_eq!(h.closed.get(&w), Some(&CloseReason::KeepaliveTimeout));
    assert_eq!(wills_seen(&mut h, watch), 1);
}

#[test]
fn will_fires_on_takeover() {
    let (mut h, watch, w) = setup();
    let _ = h.connect("w", true);
    assert_eq!(h.closed.get(&w), Some(&CloseReason::Takeover));
    assert_eq!(wills_seen(&mut h, watch), 1);
}

#[test]
fn no_will_after_disconnect() {
    // [MQTT-3.14.4-3]
    let (mut h, watch, w) = setup();
    assert_eq!(
        h.send(w, Packet::Disconnect(Disconnect::normal())),
        Err(CloseReason::Normal)
    );
    assert_eq!(wills_seen(&mut h, watch), 0);
}

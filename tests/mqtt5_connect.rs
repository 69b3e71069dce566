//! MQTT 5 connecting and disconnecting over real sockets, at 1, 2 and 4
//! shards (client ids homed on another shard than the one accepting, so the
//! CONNECT travels with the socket): CONNACK properties, session expiry and
//! clean start, the DISCONNECT reasons both ways, will delay.

mod common;
use common::*;
use coremq::codec::{Disconnect, LastWill, Packet, Properties, QoS, Reason};
use std::time::Duration;

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

#[test]
fn connack_properties_and_assigned_client_id() {
    // §3.2.2.3; [MQTT-3.1.3-6] [MQTT-3.2.2-16]
    each_cores(|cores| {
        let b = start(cores);
        let (_c, ack) = Client::connect5(b.addr, "", true, Properties::default());
        let p = ack.props.expect("CONNACK properties");
        let id = p.assigned_client_identifier.expect("assigned id");
        assert!(!id.is_empty());
        assert_eq!(p.receive_maximum, Some(100));
        assert_eq!(p.topic_alias_maximum, Some(64));
        assert_eq!(p.maximum_packet_size, Some(1 << 20));
        // The assigned id is a session like any other: it can be resumed.
        let (_c2, ack) = Client::connect5(b.addr, &id, false, expiry(60));
        assert!(!ack.session_present, "its expiry was 0");
    });
}

#[test]
fn session_expiry_and_clean_start() {
    // [MQTT-3.1.2-4] [MQTT-3.1.2-23] [MQTT-3.2.2-2] [MQTT-3.2.2-3]
    each_cores(|cores| {
        let b = start(cores);
        let id = b.id_on("sx", cores - 1);
        let (mut c, _) = Client::connect5(b.addr, &id, true, expiry(30));
        c.subscribe("sx/t", QoS::AtLeastOnce);
        drop(c);
        let (mut p, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        p.publish("sx/t", b"queued", QoS::AtLeastOnce, false);
        let (mut c, ack) = Client::connect5(b.addr, &id, false, expiry(30));
        assert!(ack.session_present);
        let m = c.recv_publish().expect("the queued message");
        assert_eq!(&m.payload[..], b"queued");
        c.ack(&m);
        drop(c);
        let (_c, ack) = Client::connect5(b.addr, &id, true, expiry(30));
        assert!(!ack.session_present, "clean start discards it");
    });
}

#[test]
fn disconnect_sets_expiry_but_cannot_raise_zero() {
    // §3.14.2.2.2; [MQTT-3.14.2-2]: raising 0 is a protocol error (DISCONNECT 0x82).
    each_cores(|cores| {
        let b = start(cores);
        let id = b.id_on("dx", cores - 1);
        let (mut c, _) = Client::connect5(b.addr, &id, true, Properties::default());
        c.send(&Packet::Disconnect(disconnect_setting(60)));
        assert_eq!(server_disconnect(&mut c), Some(Reason::PROTOCOL_ERROR));
        assert!(c.closed());
        // 60 -> 0 on DISCONNECT ends the session at once.
        let (mut c, _) = Client::connect5(b.addr, &id, true, expiry(60));
        c.send(&Packet::Disconnect(disconnect_setting(0)));
        assert!(c.closed());
        let (_c, ack) = Client::connect5(b.addr, &id, false, expiry(60));
        assert!(!ack.session_present);
    });
}

#[test]
fn takeover_sends_0x8e_to_the_old_connection() {
    // [MQTT-3.1.4-3]
    each_cores(|cores| {
        let b = start(cores);
        let id = b.id_on("to", cores - 1);
        let (mut old, _) = Client::connect5(b.addr, &id, true, expiry(60));
        let (_new, ack) = Client::connect5(b.addr, &id, false, expiry(60));
        assert!(ack.session_present);
        assert_eq!(
            server_disconnect(&mut old),
            Some(Reason::SESSION_TAKEN_OVER)
        );
        assert!(old.closed());
    });
}

#[test]
fn malformed_and_too_large_packets_get_their_reason() {
    // §4.13: DISCONNECT 0x81 (malformed), 0x95 (packet too large), then close.
    each_cores(|cores| {
        let mut cfg = config(cores);
        cfg.mqtt.max_packet_size = 1024;
        let b = start_with(cfg, coremq::Hooks::new());
        let (mut c, _) = Client::connect5(b.addr, &b.id_on("m", 0), true, Properties::default());
        // PUBLISH with a property length running past the packet.
        c.send_raw(&[0x30, 0x05, 0x00, 0x01, b't', 0x09, 0x01]);
        assert_eq!(server_disconnect(&mut c), Some(Reason::MALFORMED_PACKET));
        assert!(c.closed());
        let (mut c, _) = Client::connect5(b.addr, &b.id_on("l", 0), true, Properties::default());
        c.publish("big", &[0u8; 2048], QoS::AtMostOnce, false);
        assert_eq!(server_disconnect(&mut c), Some(Reason::PACKET_TOO_LARGE));
        assert!(c.closed());
    });
}

fn will_connect(id: &str, clean: bool, delay: u32) -> coremq::codec::Connect {
    let mut c = connect5_packet(id, clean, expiry(60));
    c.will = Some(LastWill {
        props: Some(Box::new(Properties {
            will_delay_interval: Some(delay),
            ..Properties::default()
        })),
        ..will("w5/will", "gone", QoS::AtLeastOnce, false)
    });
    c
}

#[test]
fn will_delay_and_disconnect_with_will() {
    // [MQTT-3.1.2-8] [MQTT-3.1.3-9] [MQTT-3.14.4-3]
    each_cores(|cores| {
        let b = start(cores);
        let (mut watch, _) = Client::connect(b.addr, &b.id_on("watch", 0), true);
        watch.subscribe("w5/#", QoS::AtLeastOnce);
        let id = b.id_on("w", cores - 1);
        // A delay of 1 s: nothing at once, the will after it.
        let (c, _) = Client::connect_with(b.addr, will_connect(&id, true, 1));
        drop(c);
        watch.expect_silence(Duration::from_millis(500));
        let w = watch.recv_publish().expect("will after its delay");
        assert_eq!(&*w.topic, "w5/will");
        watch.ack(&w);
        // Back within the delay: no will.
        let (c, _) = Client::connect_with(b.addr, will_connect(&id, true, 2));
        drop(c);
        std::thread::sleep(Duration::from_millis(300));
        let (mut c, ack) = Client::connect_with(b.addr, will_connect(&id, false, 0));
        assert!(ack.session_present);
        watch.expect_silence(Duration::from_millis(2_500));
        // DISCONNECT 0x04 publishes the will (its delay is 0 now).
        c.send(&Packet::Disconnect(Disconnect::with(
            Reason::DISCONNECT_WITH_WILL,
        )));
        let w = watch.recv_publish().expect("will on DISCONNECT 0x04");
        assert_eq!(&w.payload[..], b"gone");
    });
}

#[test]
fn shutdown_sends_0x8b() {
    // §3.14.2.1: Server shutting down; a 3.1.1 client just sees the close.
    each_cores(|cores| {
        let b = start(cores);
        let (mut c5, _) = Client::connect5(
            b.addr,
            &b.id_on("s5", cores - 1),
            true,
            Properties::default(),
        );
        let (mut c4, _) = Client::connect(b.addr, &b.id_on("s4", 0), true);
        drop(b);
        assert_eq!(
            server_disconnect(&mut c5),
            Some(Reason::SERVER_SHUTTING_DOWN)
        );
        assert_eq!(c4.recv(), None, "no DISCONNECT for 3.1.1");
    });
}

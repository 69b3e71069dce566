//! `allow_anonymous` per listener: who may connect without credentials.

use crate::codec::{Packet, Reason};
use crate::config::{Anonymous, Config, ListenerConfig};
use crate::shard::harness::{connect_packet, H};
use crate::transport::Origin;
use std::net::IpAddr;

/// Two listeners: 0 with the default ("loopback"), 1 with `policy`.
fn shard(policy: Anonymous) -> H {
    let mut cfg = Config::default();
    cfg.listener.push(ListenerConfig {
        bind: "127.0.0.1:0".into(),
        allow_anonymous: policy,
        ..ListenerConfig::default()
    });
    H::with(cfg, 1)
}

fn on(listener: u16) -> Origin {
    Origin {
        listener,
        identity: None,
    }
}

const FAR: [u8; 4] = [10, 1, 2, 3];

fn code(h: &mut H, ip: impl Into<IpAddr>, origin: Origin, packet: Packet) -> Reason {
    let conn = h.socket_from(ip.into(), origin);
    h.connack_for(conn, packet).code
}

#[test]
fn the_default_lets_anonymous_clients_in_from_loopback_only() {
    let mut h = shard(Anonymous::Loopback);
    let anon = || connect_packet("a", true, None);
    assert_eq!(code(&mut h, [127, 0, 0, 1], on(0), anon()), Reason::SUCCESS);
    // CONNACK 0x05 Not authorized, then the connection is closed [MQTT-3.2.2-5].
    let conn = h.socket_from(FAR.into(), on(0));
    let ack = h.connack_for(conn, anon());
    assert_eq!(ack.code, Reason::NOT_AUTHORIZED);
    assert!(!ack.session_present, "[MQTT-3.2.2-4]");
    assert!(h.shard.conns.get(conn).is_none(), "closed");
    assert_eq!(h.shard.metrics.auth_anonymous_refused, 1);
}

#[test]
fn each_listener_has_its_own_policy() {
    let mut h = shard(Anonymous::Always);
    let anon = || connect_packet("a", true, None);
    assert_eq!(code(&mut h, FAR, on(1), anon()), Reason::SUCCESS);
    let mut h = shard(Anonymous::Never);
    assert_eq!(
        code(&mut h, [127, 0, 0, 1], on(1), anon()),
        Reason::NOT_AUTHORIZED
    );
    assert_eq!(code(&mut h, [127, 0, 0, 1], on(0), anon()), Reason::SUCCESS);
}

#[test]
fn a_certificate_identity_is_not_anonymous() {
    let mut h = shard(Anonymous::Never);
    let cert = Origin {
        listener: 1,
        identity: Some("device-7".into()),
    };
    let anon = connect_packet("a", true, None);
    assert_eq!(code(&mut h, FAR, cert, anon), Reason::SUCCESS);
}

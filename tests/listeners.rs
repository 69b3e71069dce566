//! Several listeners at once: each is bound and served by every shard,
//! with its own allow_anonymous and its own max_connections.

mod common;

use common::{config, connect_packet, start_with, Client};
use coremq::codec::Reason;
use coremq::config::{Anonymous, ListenerConfig};
use coremq::hooks::{AuthDecision, Refusal};
use coremq::Hooks;

/// An authenticate hook that lets alice/pw in, on whichever listener.
fn alice_hook() -> Hooks {
    let mut hooks = Hooks::new();
    hooks.set_authenticate(|req| {
        let ok =
            req.username.as_deref() == Some("alice") && req.password.as_deref() == Some(&b"pw"[..]);
        Box::pin(async move {
            match ok {
                true => AuthDecision::Allow,
                false => AuthDecision::Refuse(Refusal::BadCredentials),
            }
        })
    });
    hooks
}

fn two_listeners(shards: usize, hooks: Hooks) -> common::TestBroker {
    let mut cfg = config(shards);
    cfg.listener[0].allow_anonymous = Anonymous::Always;
    cfg.listener.push(ListenerConfig {
        bind: "127.0.0.1:0".into(),
        allow_anonymous: Anonymous::Never,
        max_connections: 2,
        ..ListenerConfig::default()
    });
    start_with(cfg, hooks)
}

#[test]
fn each_listener_applies_its_own_allow_anonymous() {
    for shards in [1, 2] {
        let b = two_listeners(shards, alice_hook());
        let h = b.handle.as_ref().unwrap();
        let (open, closed) = (h.listener_addr(0).unwrap(), h.listener_addr(1).unwrap());
        assert_eq!(open, h.local_addr());
        assert_ne!(open.port(), closed.port());
        assert!(h.listener_addr(2).is_none());
        for home in 0..shards {
            let id = b.id_on("anon", home);
            let (_c, ack) = Client::connect_with(open, connect_packet(&id, true));
            assert_eq!(ack.code, Reason::SUCCESS, "listener 0, shard {home}");
            // [MQTT-3.2.2-5]: refused with a non-zero CONNACK, then closed.
            let (mut c, ack) = Client::connect_with(closed, connect_packet(&id, true));
            assert_eq!(ack.code, Reason::NOT_AUTHORIZED, "listener 1, shard {home}");
            assert!(c.closed());
            let mut named = connect_packet(&id, true);
            named.username = Some("alice".into());
            named.password = Some(b"pw".to_vec().into());
            let (_c, ack) = Client::connect_with(closed, named);
            assert_eq!(ack.code, Reason::SUCCESS, "credentials the hook accepts");
        }
        let m = b.wait_metrics(|m| m.auth_anonymous_refused >= shards as u64);
        assert_eq!(m.auth_anonymous_refused, shards as u64);
    }
}

#[test]
fn max_connections_counts_per_listener() {
    for shards in [1, 2] {
        let b = two_listeners(shards, alice_hook());
        let h = b.handle.as_ref().unwrap();
        let (open, limited) = (h.listener_addr(0).unwrap(), h.listener_addr(1).unwrap());
        let mut held = Vec::new();
        for i in 0..2 {
            let mut c = connect_packet(&format!("l1-{i}"), true);
            c.username = Some("alice".into());
            c.password = Some(b"pw".to_vec().into());
            let (c, ack) = Client::connect_with(limited, c);
            assert_eq!(ack.code, Reason::SUCCESS);
            held.push(c);
        }
        let mut third = Client::raw(limited);
        assert!(third.closed(), "listener 1 is at its max_connections (2)");
        // Listener 0 is not: its own count.
        for i in 0..3 {
            held.push(Client::connect(open, &format!("l0-{i}"), true).0);
        }
        assert_eq!(h.connections(), 5, "node-wide count over both listeners");
        let m = b.wait_metrics(|m| m.connections_refused_limit >= 1);
        assert_eq!(m.connections_refused_limit, 1);
    }
}

#[test]
fn with_no_method_a_user_name_does_not_get_around_allow_anonymous() {
    for shards in [1, 2] {
        let b = two_listeners(shards, Hooks::new());
        let closed = b.handle.as_ref().unwrap().listener_addr(1).unwrap();
        for home in 0..shards {
            let mut named = connect_packet(&b.id_on("label", home), true);
            named.username = Some("anything".into());
            let (mut c, ack) = Client::connect_with(closed, named);
            assert_eq!(ack.code, Reason::NOT_AUTHORIZED, "shard {home}");
            assert!(c.closed());
        }
    }
}

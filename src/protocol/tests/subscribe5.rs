//! MQTT 5 SUBSCRIBE side: subscription options (No Local, Retain As
//! Published, Retain Handling), subscription identifiers on deliveries
//! (queued, windowed, re-sent, from a peer shard), SUBACK and UNSUBACK
//! reason codes, `maximum_qos`, and the replay of options.

use crate::codec::{Ack, Disconnect, Packet, Properties, Publish, QoS, Reason, SubAckCode};
use crate::codec::{Subscribe, SubscribeFilter, UnsubAck, Unsubscribe};
use crate::config::Config;
use crate::hooks::Hooks;
use crate::message::Message;
use crate::shard::harness::{publish, subscribe, H};
use crate::shard::mesh::MeshMsg;
use crate::shard::{CloseReason, ConnKey};
use std::sync::Arc;

/// One filter with its MQTT 5 options.
fn opt(filter: &str, qos: QoS, no_local: bool, rap: bool, rh: u8) -> SubscribeFilter {
    SubscribeFilter {
        filter: filter.into(),
        qos,
        no_local,
        retain_as_published: rap,
        retain_handling: rh,
    }
}

/// A plain QoS 1 filter.
fn f1(filter: &str) -> SubscribeFilter {
    opt(filter, QoS::AtLeastOnce, false, false, 0)
}

/// An MQTT 5 SUBSCRIBE with an optional subscription identifier.
fn subscribe5(pkid: u16, filters: Vec<SubscribeFilter>, id: Option<u32>) -> Packet {
    let props = id.map(|id| {
        Box::new(Properties {
            subscription_identifiers: vec![id],
            ..Properties::default()
        })
    });
    Packet::Subscribe(Subscribe {
        pkid,
        filters,
        props,
    })
}

/// Send a SUBSCRIBE and return its SUBACK codes (what follows stays unread).
fn suback(h: &mut H, c: ConnKey, packet: Packet) -> Vec<SubAckCode> {
    h.subscribe_with(c, packet)
}

/// Send an UNSUBSCRIBE (packet id 4) of `filters`.
fn unsubscribe(h: &mut H, c: ConnKey, filters: &[&str]) {
    let filters = filters.iter().map(|f| f.to_string()).collect();
    let packet = Unsubscribe {
        pkid: 4,
        filters,
        props: None,
    };
    let _ = h.send(c, Packet::Unsubscribe(packet));
}

fn v5(h: &mut H, id: &str) -> ConnKey {
    h.connect5(id, true, Properties::default()).0
}

/// The subscription identifiers of a PUBLISH, sorted.
fn ids(p: &Publish) -> Vec<u32> {
    let mut ids = p
        .props
        .as_ref()
        .map_or_else(Vec::new, |p| p.subscription_identifiers.clone());
    ids.sort_unstable();
    ids
}

#[test]
fn no_local_skips_the_publishers_own_messages() {
    // [MQTT-3.8.3-3]
    let mut h = H::new(1);
    let c = v5(&mut h, "me");
    let codes = suback(
        &mut h,
        c,
        subscribe5(1, vec![opt("t", QoS::AtLeastOnce, true, false, 0)], None),
    );
    assert_eq!(codes, vec![SubAckCode::Granted(QoS::AtLeastOnce)]);
    let _ = h.send(c, publish("t", b"own", QoS::AtMostOnce, 0, false));
    assert!(h.publishes(c).is_empty(), "own message came back");
    let other = v5(&mut h, "other");
    let _ = h.send(other, publish("t", b"theirs", QoS::AtMostOnce, 0, false));
    assert_eq!(&h.publishes(c)[0].payload[..], b"theirs");
    // Another subscription without No Local still delivers its one copy.
    suback(&mut h, c, subscribe5(2, vec![f1("#")], None));
    let _ = h.send(c, publish("t", b"own2", QoS::AtMostOnce, 0, false));
    let got = h.publishes(c);
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].payload[..], b"own2");
}

#[test]
fn no_local_on_a_shared_subscription_is_a_protocol_error() {
    // [MQTT-3.8.3-4]: DISCONNECT 0x82, nothing of the packet subscribed.
    let mut h = H::new(1);
    let c = v5(&mut h, "me");
    let filters = vec![
        f1("ok"),
        opt("$share/g/t", QoS::AtLeastOnce, true, false, 0),
    ];
    assert_eq!(
        h.send(c, subscribe5(1, filters, None)),
        Err(CloseReason::ProtocolError)
    );
    assert_eq!(
        h.out(c),
        vec![Packet::Disconnect(Disconnect::with(Reason::PROTOCOL_ERROR))]
    );
    assert_eq!(h.shard.metrics.protocol_errors, 1);
    let sk = h.shard.sessions.find("me");
    assert!(sk.is_none_or(|sk| h.shard.router.granted("ok", sk).is_none()));
}

#[test]
fn retain_as_published_keeps_the_flag_of_live_deliveries() {
    // [MQTT-3.3.1-12] set: the published RETAIN; [MQTT-3.3.1-13] clear: 0.
    let mut h = H::new(1);
    let keep = v5(&mut h, "keep");
    let clear = v5(&mut h, "clear");
    let old = h.connect("old", true).0;
    suback(
        &mut h,
        keep,
        subscribe5(1, vec![opt("t", QoS::AtMostOnce, false, true, 0)], None),
    );
    suback(
        &mut h,
        clear,
        subscribe5(1, vec![opt("t", QoS::AtMostOnce, false, false, 0)], None),
    );
    h.subscribe(old, &[("t", QoS::AtMostOnce)]);
    let p = v5(&mut h, "pub");
    let _ = h.send(p, publish("t", b"r", QoS::AtMostOnce, 0, true));
    assert!(h.publishes(keep)[0].retain);
    assert!(!h.publishes(clear)[0].retain);
    assert!(
        !h.publishes(old)[0].retain,
        "3.1.1 live deliveries: RETAIN 0"
    );
}

#[test]
fn retain_handling_0_1_2() {
    // [MQTT-3.3.1-9] 0: on every subscribe; [MQTT-3.3.1-10] 1: only for a
    // new subscription; [MQTT-3.3.1-11] 2: never.
    let mut h = H::new(1);
    let p = v5(&mut h, "pub");
    let _ = h.send(p, publish("t", b"kept", QoS::AtMostOnce, 0, true));
    let c = v5(&mut h, "sub");
    let retained_after = |h: &mut H, rh: u8| {
        let filter = opt("t", QoS::AtMostOnce, false, false, rh);
        suback(h, c, subscribe5(1, vec![filter], None));
        h.publishes(c).len()
    };
    assert_eq!(retained_after(&mut h, 0), 1);
    assert_eq!(retained_after(&mut h, 0), 1, "0: again on a re-subscribe");
    assert_eq!(retained_after(&mut h, 1), 0, "1: the subscription existed");
    assert_eq!(retained_after(&mut h, 2), 0);
    unsubscribe(&mut h, c, &["t"]);
    h.out(c);
    assert_eq!(retained_after(&mut h, 2), 0, "2: never");
    unsubscribe(&mut h, c, &["t"]);
    h.out(c);
    assert_eq!(retained_after(&mut h, 1), 1, "1: a new subscription");
}

#[test]
fn overlapping_subscriptions_give_one_copy_with_every_identifier() {
    // [MQTT-3.3.4-3] [MQTT-3.3.4-4] [MQTT-3.3.4-5]
    let mut h = H::new(1);
    let c = v5(&mut h, "sub");
    suback(&mut h, c, subscribe5(1, vec![f1("a/+")], Some(7)));
    suback(&mut h, c, subscribe5(2, vec![f1("a/b")], Some(268_435_455)));
    suback(&mut h, c, subscribe5(3, vec![f1("#")], None));
    let p = v5(&mut h, "pub");
    let _ = h.send(p, publish("a/b", b"m", QoS::AtLeastOnce, 1, false));
    let got = h.publishes(c);
    assert_eq!(got.len(), 1, "one copy");
    assert_eq!(ids(&got[0]), vec![7, 268_435_455]);
    // A re-SUBSCRIBE without an identifier removes it.
    suback(&mut h, c, subscribe5(4, vec![f1("a/b")], None));
    let _ = h.send(c, Packet::PubAck(Ack::new(got[0].pkid)));
    let _ = h.send(p, publish("a/b", b"n", QoS::AtLeastOnce, 2, false));
    assert_eq!(ids(&h.publishes(c)[0]), vec![7]);
}

#[test]
fn identifiers_stay_with_queued_and_resent_messages() {
    // A queued message is sent, and re-sent with DUP, with its identifiers.
    let mut cfg = Config::default();
    cfg.session.inflight_window = 1;
    let mut h = H::with(cfg, 1);
    let c = h
        .connect5(
            "sub",
            false,
            Properties {
                session_expiry_interval: Some(60),
                ..Properties::default()
            },
        )
        .0;
    suback(&mut h, c, subscribe5(1, vec![f1("a/+")], Some(1)));
    suback(&mut h, c, subscribe5(2, vec![f1("a/b")], Some(2)));
    let p = v5(&mut h, "pub");
    let _ = h.send(p, publish("a/b", b"1", QoS::AtLeastOnce, 1, false));
    let _ = h.send(p, publish("a/c", b"2", QoS::AtLeastOnce, 2, false));
    let first = h.publishes(c);
    assert_eq!(first.len(), 1, "window of one");
    assert_eq!(ids(&first[0]), vec![1, 2]);
    let _ = h.send(c, Packet::PubAck(Ack::new(first[0].pkid)));
    let second = h.publishes(c);
    assert_eq!(
        (ids(&second[0]), &second[0].payload[..]),
        (vec![1], &b"2"[..])
    );
    h.drop_socket(c);
    let _ = h.send(p, publish("a/b", b"3", QoS::AtLeastOnce, 3, false));
    let (c2, ack) = h.connect_with(crate::shard::harness::connect5_packet(
        "sub",
        false,
        Properties {
            session_expiry_interval: Some(60),
            ..Properties::default()
        },
        None,
    ));
    assert!(ack.session_present);
    let resent = h.publishes(c2);
    assert!(resent[0].dup, "{resent:?}");
    assert_eq!(ids(&resent[0]), vec![1]);
    let _ = h.send(c2, Packet::PubAck(Ack::new(resent[0].pkid)));
    let queued = h.publishes(c2);
    assert_eq!(
        (ids(&queued[0]), &queued[0].payload[..]),
        (vec![1, 2], &b"3"[..])
    );
}

#[test]
fn a_peers_message_carries_this_shards_identifiers() {
    let mut h = H::new(2);
    let c = v5(&mut h, "sub");
    suback(&mut h, c, subscribe5(1, vec![f1("t/#")], Some(5)));
    suback(&mut h, c, subscribe5(2, vec![f1("t/+")], Some(6)));
    let msg = Message {
        id: h.shard.ids.next_id(),
        topic: "t/x".into(),
        payload: bytes::Bytes::from_static(b"remote"),
        qos: QoS::AtLeastOnce,
        retain: false,
        from: "elsewhere".into(),
        props: None,
    };
    h.peer_sends(1, MeshMsg::Publish(Arc::new(msg)));
    let got = h.publishes(c);
    assert_eq!(got.len(), 1);
    assert_eq!(ids(&got[0]), vec![5, 6]);
}

#[test]
fn retained_on_subscribe_and_shared_deliveries_carry_the_identifier() {
    let mut h = H::new(1);
    let p = v5(&mut h, "pub");
    let _ = h.send(p, publish("r", b"kept", QoS::AtMostOnce, 0, true));
    let c = v5(&mut h, "sub");
    suback(&mut h, c, subscribe5(1, vec![f1("r")], Some(9)));
    let retained = h.publishes(c);
    assert!(retained[0].retain);
    assert_eq!(ids(&retained[0]), vec![9]);
    suback(&mut h, c, subscribe5(2, vec![f1("$share/g/s")], Some(10)));
    assert!(
        h.publishes(c).is_empty(),
        "no retained for a shared subscription"
    );
    let _ = h.send(p, publish("s", b"x", QoS::AtMostOnce, 0, false));
    assert_eq!(ids(&h.publishes(c)[0]), vec![10]);
}

#[test]
fn suback_reason_codes() {
    // §3.9.3: each refusal says why to an MQTT 5 client.
    let mut cfg = Config::default();
    cfg.mqtt.maximum_qos = 1;
    cfg.limits.max_filter_len = 10;
    let mut hooks = Hooks::new();
    hooks.on_client_subscribe(|_, reqs| {
        for r in reqs.iter_mut().filter(|r| r.filter == "secret") {
            r.rejected = true;
        }
    });
    let mut h = H::with(cfg, 1);
    h.shard.hooks = Arc::new(hooks);
    let c = v5(&mut h, "sub");
    let filters = vec![
        opt("q2", QoS::ExactlyOnce, false, false, 0),
        f1("secret"),
        f1("a/#/b"),
        f1("$share/g+/t"),
        f1("much/too/long"),
    ];
    assert_eq!(
        suback(&mut h, c, subscribe5(1, filters, None)),
        vec![
            SubAckCode::Granted(QoS::AtLeastOnce),
            SubAckCode::Refused(Reason::NOT_AUTHORIZED),
            SubAckCode::Refused(Reason::TOPIC_FILTER_INVALID),
            SubAckCode::Refused(Reason::TOPIC_FILTER_INVALID),
            SubAckCode::Refused(Reason::QUOTA_EXCEEDED),
        ]
    );
    assert_eq!(h.shard.metrics.subscriptions_refused_limit, 1);
}

#[test]
fn suback_says_what_is_not_supported() {
    let mut cfg = Config::default();
    cfg.mqtt.shared_subscriptions = false;
    cfg.mqtt.wildcard_subscriptions = false;
    cfg.mqtt.subscription_identifiers = false;
    let mut h = H::with(cfg, 1);
    let c = v5(&mut h, "sub");
    let filters = vec![f1("$share/g/t"), f1("a/+"), f1("#")];
    assert_eq!(
        suback(&mut h, c, subscribe5(1, filters, None)),
        vec![
            SubAckCode::Refused(Reason::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED),
            SubAckCode::Refused(Reason::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED),
            SubAckCode::Refused(Reason::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED),
        ]
    );
    assert_eq!(
        suback(&mut h, c, subscribe5(2, vec![f1("plain")], Some(3))),
        vec![SubAckCode::Refused(
            Reason::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED
        )]
    );
    // 3.1.1: the same refusals are 0x80 on the wire.
    let old = h.connect("old", true).0;
    let _ = h.send(old, subscribe(1, &[("a/+", QoS::AtMostOnce)]));
    let bytes = h.shard.conns.get_mut(old).map(|c| c.take_unsent());
    assert_eq!(bytes, Some(vec![0x90, 3, 0, 1, 0x80]));
}

#[test]
fn maximum_qos_bounds_the_granted_qos_for_3_1_1_too() {
    // 3.1.1 §3.9.3: the SUBACK says the QoS granted, here `maximum_qos`.
    let mut cfg = Config::default();
    cfg.mqtt.maximum_qos = 1;
    let mut h = H::with(cfg, 1);
    let (c, _) = h.connect("old", true);
    assert_eq!(
        h.subscribe(c, &[("t", QoS::ExactlyOnce), ("u", QoS::AtMostOnce)]),
        vec![
            SubAckCode::Granted(QoS::AtLeastOnce),
            SubAckCode::Granted(QoS::AtMostOnce)
        ]
    );
    let sk = h.shard.sessions.find("old").expect("session");
    let granted = h.shard.router.granted("t", sk).map(|o| o.qos());
    assert_eq!(granted, Some(QoS::AtLeastOnce));
}

#[test]
fn unsuback_has_a_reason_per_filter() {
    // [MQTT-3.11.3-1] one reason per filter; [MQTT-3.11.3-2] 0x11 when
    // there was no subscription; 0x8F for an invalid filter.
    let mut h = H::new(1);
    let c = v5(&mut h, "sub");
    suback(
        &mut h,
        c,
        subscribe5(1, vec![f1("t"), f1("$share/g/s")], None),
    );
    unsubscribe(&mut h, c, &["t", "u", "a/#/b", "$share/g/s"]);
    let want = UnsubAck {
        pkid: 4,
        reasons: vec![
            Reason::SUCCESS,
            Reason::NO_SUBSCRIPTION_EXISTED,
            Reason::TOPIC_FILTER_INVALID,
            Reason::SUCCESS,
        ],
        props: None,
    };
    assert_eq!(h.out(c), vec![Packet::UnsubAck(want)]);
}

#[test]
fn replay_restores_the_options_and_identifiers() {
    // Options and the identifiers of queued deliveries survive a replay.
    let mut cfg = Config::default();
    cfg.session.inflight_window = 1;
    let mut live = H::with(cfg.clone(), 1);
    let expiry = Properties {
        session_expiry_interval: Some(60),
        ..Properties::default()
    };
    let c = live.connect5("sub", false, expiry).0;
    let filters = vec![
        opt("a/+", QoS::AtLeastOnce, true, true, 2),
        f1("$share/g/a/b"),
    ];
    suback(&mut live, c, subscribe5(1, filters, None));
    let filters = vec![opt("a/b", QoS::ExactlyOnce, false, true, 1)];
    suback(&mut live, c, subscribe5(2, filters, Some(42)));
    let p = v5(&mut live, "pub");
    for pkid in 1..4 {
        let _ = live.send(p, publish("a/b", b"m", QoS::ExactlyOnce, pkid, true));
    }
    live.drop_socket(c);
    let mut rebuilt = H::with(cfg, 1);
    rebuilt.shard.replay(live.events());
    let durable = live.durable();
    assert_eq!(durable, rebuilt.durable());
    let sk = live.shard.sessions.find("sub").expect("session kept");
    let opts = live.shard.router.granted("a/b", sk).expect("subscribed");
    assert_eq!(
        (
            opts.qos(),
            opts.no_local(),
            opts.retain_as_published(),
            opts.id()
        ),
        (QoS::ExactlyOnce, false, true, Some(42))
    );
}

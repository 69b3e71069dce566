//! Every hook registered through `Hooks`, observed through shared state, on
//! 1 and 2 shards; each runs with `ClientInfo.shard` = the client's home.

mod common;
use bytes::Bytes;
use common::*;
use coremq::codec::Ack;
use coremq::codec::{Packet, QoS, SubAckCode};
use coremq::hooks::ClientInfo;
use coremq::message::Message;

use coremq::Hooks;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the hooks saw: (client id, ClientInfo.shard, details).
#[derive(Default, Debug)]
struct Seen {
    connected: Vec<(String, usize)>,
    subscribe: Vec<(String, usize, Vec<String>)>,
    unsubscribe: Vec<(String, usize, Vec<String>)>,
    published: Vec<(String, usize, String)>,
    acked: Vec<(String, usize, String, Vec<u8>)>,
    disconnected: Vec<(String, usize, String)>,
}

type Shared = Arc<Mutex<Seen>>;

fn who(c: &ClientInfo) -> (String, usize) {
    (c.client_id.to_string(), c.shard)
}

/// Hooks that record every call and:
/// * subscribe: rewrite `alias/+` to `real/+`, reject `forbidden/...`;
/// * unsubscribe: rewrite `alias/+` to `real/+`;
/// * publish: upper-case the payload on `upper/...`, drop `drop/...`.
fn recording_hooks() -> (Hooks, Shared) {
    let seen: Shared = Arc::default();
    let mut h = Hooks::new();
    let s = seen.clone();
    h.on_client_connected(move |c| s.lock().unwrap().connected.push(who(c)));
    let s = seen.clone();
    h.on_client_subscribe(move |c, reqs| {
        let (id, shard) = who(c);
        let filters = reqs.iter().map(|r| r.filter.clone()).collect();
        s.lock().unwrap().subscribe.push((id, shard, filters));
        for r in reqs.iter_mut() {
            if r.filter == "alias/+" {
                r.filter = "real/+".into();
            }
            if r.filter.starts_with("forbidden/") {
                r.rejected = true;
            }
        }
    });
    let s = seen.clone();
    h.on_client_unsubscribe(move |c, filters| {
        let (id, shard) = who(c);
        s.lock()
            .unwrap()
            .unsubscribe
            .push((id, shard, filters.clone()));
        for f in filters.iter_mut() {
            if f == "alias/+" {
                *f = "real/+".into();
            }
        }
    });
    let s = seen.clone();
    h.on_message_publish(move |c, msg: Message| {
        let (id, shard) = who(c);
        s.lock()
            .unwrap()
            .published
            .push((id, shard, msg.topic.to_string()));
        if msg.topic.starts_with("drop/") {
            return None;
        }
        if msg.topic.starts_with("upper/") {
            let payload = Bytes::from(msg.payload.to_ascii_uppercase());
            return Some(Message { payload, ..msg });
        }
        Some(msg)
    });
    let s = seen.clone();
    h.on_message_acked(move |c, msg| {
        let (id, shard) = who(c);
        s.lock()
            .unwrap()
            .acked
            .push((id, shard, msg.topic.to_string(), msg.payload.to_vec()));
    });
    let s = seen.clone();
    h.on_client_disconnected(move |c, reason| {
        let (id, shard) = who(c);
        s.lock()
            .unwrap()
            .disconnected
            .push((id, shard, reason.to_string()));
    });
    (h, seen)
}

/// Every recorded shard is the home of the recorded client id.
fn assert_home_shards(seen: &Shared, shards: usize) {
    let s = seen.lock().unwrap();
    let all = s
        .connected
        .iter()
        .cloned()
        .chain(s.subscribe.iter().map(|(i, sh, _)| (i.clone(), *sh)))
        .chain(s.unsubscribe.iter().map(|(i, sh, _)| (i.clone(), *sh)))
        .chain(s.published.iter().map(|(i, sh, _)| (i.clone(), *sh)))
        .chain(s.acked.iter().map(|(i, sh, _, _)| (i.clone(), *sh)))
        .chain(s.disconnected.iter().map(|(i, sh, _)| (i.clone(), *sh)));
    for (id, shard) in all {
        assert_eq!(shard, coremq::home_shard(&id, shards), "{id}: hook shard");
    }
}

fn disconnect_reason(seen: &Shared, id: &str) -> Option<String> {
    let s = seen.lock().unwrap();
    s.disconnected
        .iter()
        .find(|(i, _, _)| i == id)
        .map(|(_, _, r)| r.clone())
}

fn wait_reason(seen: &Shared, id: &str, reason: &str) {
    assert!(
        wait_until(|| disconnect_reason(seen, id).is_some()),
        "{id}: client.disconnected"
    );
    assert_eq!(disconnect_reason(seen, id).as_deref(), Some(reason), "{id}");
}

#[test]
fn connected_and_disconnected_hooks_with_reasons() {
    each_cores(|cores| {
        let (hooks, seen) = recording_hooks();
        let b = start_with(config(cores), hooks);
        for shard in 0..cores {
            let id = |what: &str| b.id_on(&format!("{what}{shard}"), shard);
            let (normal, _) = Client::connect(b.addr, &id("normal"), true);
            assert!(seen
                .lock()
                .unwrap()
                .connected
                .contains(&(id("normal"), shard)));
            normal.disconnect();
            wait_reason(&seen, &id("normal"), "normal");

            let (dropped, _) = Client::connect(b.addr, &id("dropped"), true);
            drop(dropped);
            wait_reason(&seen, &id("dropped"), "socket_closed");

            let (mut bad, _) = Client::connect(b.addr, &id("bad"), true);
            bad.send_raw(&[0xF0, 0x00]);
            wait_reason(&seen, &id("bad"), "malformed");

            let (_old, _) = Client::connect(b.addr, &id("twice"), true);
            let (_new, _) = Client::connect(b.addr, &id("twice"), true);
            wait_reason(&seen, &id("twice"), "takeover");

            let mut c = connect_packet(&id("idle"), true);
            c.keep_alive = 1;
            let (_idle, _) = Client::connect_with(b.addr, c);
            wait_reason(&seen, &id("idle"), "keepalive_timeout");
        }
        // A refused CONNECT is neither connected nor disconnected.
        let (mut refused, ack) = Client::connect_with(b.addr, connect_packet("", false));
        assert_ne!(ack.code, coremq::codec::Reason::SUCCESS);
        assert!(refused.closed());
        // Per shard: normal, dropped, bad, twice ×2, idle, each connected
        // and disconnected once (the second "twice" when dropped above);
        // handoffs are not reported.
        assert!(wait_until(
            || seen.lock().unwrap().disconnected.len() >= 6 * cores
        ));
        std::thread::sleep(Duration::from_millis(200));
        let s = seen.lock().unwrap();
        assert_eq!(s.connected.len(), 6 * cores, "{:?}", s.connected);
        assert_eq!(s.disconnected.len(), 6 * cores, "{:?}", s.disconnected);
        drop(s);
        assert_home_shards(&seen, cores);
    });
}

/// `client.subscribe` rewrites `alias/+` → `real/+` and rejects
/// `forbidden/x` (SUBACK 0x80); `client.unsubscribe` rewrites too.
#[test]
fn subscribe_and_unsubscribe_hooks_rewrite_and_reject() {
    each_cores(|cores| {
        let (hooks, seen) = recording_hooks();
        let b = start_with(config(cores), hooks);
        let sub_id = b.id_on("sub", cores - 1);
        let (mut sub, _) = Client::connect(b.addr, &sub_id, true);
        let codes = sub.subscribe_many(&[
            ("alias/+", QoS::AtLeastOnce),
            ("forbidden/x", QoS::AtMostOnce),
            ("plain", QoS::AtMostOnce),
        ]);
        assert_eq!(
            codes,
            vec![
                SubAckCode::Granted(QoS::AtLeastOnce),
                SubAckCode::Failure,
                SubAckCode::Granted(QoS::AtMostOnce)
            ]
        );
        assert_eq!(
            seen.lock().unwrap().subscribe,
            vec![(
                sub_id.clone(),
                cores - 1,
                vec!["alias/+".into(), "forbidden/x".into(), "plain".into()]
            )]
        );
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        publ.publish("forbidden/x", b"no", QoS::AtLeastOnce, false);
        publ.publish("alias/1", b"no", QoS::AtLeastOnce, false);
        publ.publish("real/1", b"yes", QoS::AtLeastOnce, false);
        let p = sub.recv_publish().expect("rewritten subscription");
        assert_eq!((&*p.topic, p.payload.as_ref()), ("real/1", &b"yes"[..]));
        sub.ack(&p);
        sub.expect_silence(Duration::from_millis(200));
        // Unsubscribing the alias removes the rewritten filter.
        sub.unsubscribe("alias/+");
        assert_eq!(
            seen.lock().unwrap().unsubscribe,
            vec![(sub_id.clone(), cores - 1, vec!["alias/+".to_string()])]
        );
        publ.publish("real/2", b"gone", QoS::AtLeastOnce, false);
        publ.publish("plain", b"still", QoS::AtMostOnce, false);
        let p = sub.recv_publish().expect("plain still subscribed");
        assert_eq!((&*p.topic, p.payload.as_ref()), ("plain", &b"still"[..]));
        sub.expect_silence(Duration::from_millis(200));
        assert_home_shards(&seen, cores);
    });
}

/// `message.publish` modifies a payload and drops messages (the publisher is
/// still acknowledged; counter `dropped_by_hook`); it also sees wills.
#[test]
fn publish_hook_modifies_and_drops() {
    each_cores(|cores| {
        let (hooks, seen) = recording_hooks();
        let b = start_with(config(cores), hooks);
        let (mut sub, _) = Client::connect(b.addr, &b.id_on("sub", cores - 1), true);
        sub.subscribe_many(&[("upper/+", QoS::AtLeastOnce), ("drop/+", QoS::AtLeastOnce)]);
        let pub_id = b.id_on("pub", 0);
        let mut c = connect_packet(&pub_id, true);
        c.will = Some(will("drop/will", "bye", QoS::AtLeastOnce, false));
        let (mut publ, _) = Client::connect_with(b.addr, c);
        publ.publish("upper/a", b"shout", QoS::AtLeastOnce, false);
        let p = sub.recv_publish().expect("modified message");
        assert_eq!(p.payload.as_ref(), b"SHOUT");
        sub.ack(&p);
        // Dropped at each QoS; publish() asserts PUBACK / PUBREC / PUBCOMP.
        publ.publish("drop/0", b"x", QoS::AtMostOnce, false);
        publ.publish("drop/1", b"x", QoS::AtLeastOnce, false);
        publ.publish("drop/2", b"x", QoS::ExactlyOnce, false);
        // Retained and dropped: not stored either.
        publ.publish("drop/r", b"x", QoS::AtLeastOnce, true);
        drop(publ); // the will on drop/will is dropped too
        sub.expect_silence(Duration::from_millis(300));
        let m = b.wait_metrics(|m| m.dropped_by_hook >= 5);
        assert_eq!(m.dropped_by_hook, 5, "{m:?}");
        assert_eq!(m.retained, 0);
        let (mut later, _) = Client::connect(b.addr, "later", true);
        later.subscribe("drop/#", QoS::AtLeastOnce);
        later.expect_silence(Duration::from_millis(200));
        let topics: Vec<String> = seen
            .lock()
            .unwrap()
            .published
            .iter()
            .map(|(id, _, t)| {
                assert_eq!(id, &pub_id);
                t.clone()
            })
            .collect();
        assert_eq!(
            topics,
            [
                "upper/a",
                "drop/0",
                "drop/1",
                "drop/2",
                "drop/r",
                "drop/will"
            ]
        );
        assert_home_shards(&seen, cores);
    });
}

/// `message.acked` fires on PUBACK (QoS 1) and PUBCOMP (QoS 2), not on PUBREC
/// and never for QoS 0, on the subscriber's home shard.
#[test]
fn acked_hook_fires_on_puback_and_pubcomp() {
    each_cores(|cores| {
        let (hooks, seen) = recording_hooks();
        let b = start_with(config(cores), hooks);
        let sub_id = b.id_on("sub", cores - 1);
        let (mut sub, _) = Client::connect(b.addr, &sub_id, true);
        sub.subscribe("t/+", QoS::ExactlyOnce);
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        let acked = || seen.lock().unwrap().acked.clone();

        publ.publish("t/0", b"zero", QoS::AtMostOnce, false);
        assert_eq!(sub.recv_publish().expect("qos 0").qos, QoS::AtMostOnce);

        publ.publish("t/1", b"one", QoS::AtLeastOnce, false);
        let p = sub.recv_publish().expect("qos 1");
        std::thread::sleep(Duration::from_millis(150));
        assert!(acked().is_empty(), "no ack yet: {:?}", acked());
        sub.send(&Packet::PubAck(Ack::new(p.pkid)));
        assert!(wait_until(|| acked().len() == 1));
        assert_eq!(
            acked(),
            vec![(sub_id.clone(), cores - 1, "t/1".into(), b"one".to_vec())]
        );

        publ.publish("t/2", b"two", QoS::ExactlyOnce, false);
        let p = sub.recv_publish().expect("qos 2");
        sub.send(&Packet::PubRec(Ack::new(p.pkid)));
        let id = p.pkid;
        assert!(sub
            .recv_match(|q| *q == Packet::PubRel(Ack::new(id)))
            .is_some());
        assert_eq!(acked().len(), 1, "PUBREC does not complete QoS 2");
        sub.send(&Packet::PubComp(Ack::new(id)));
        assert!(wait_until(|| acked().len() == 2));
        assert_eq!(
            acked()[1],
            (sub_id.clone(), cores - 1, "t/2".into(), b"two".to_vec())
        );
        // Acknowledging an unknown id fires nothing.
        sub.send(&Packet::PubAck(Ack::new(999)));
        sub.ping();
        assert_eq!(acked().len(), 2);
        assert_home_shards(&seen, cores);
    });
}

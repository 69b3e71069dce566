//! `$SYS/brokers/<node>/...`: the values agree with what the test did, the
//! optional client events, and `sys.interval_s = 0`. The values are QoS 0,
//! not retained, published every `sys.interval_s` by shard 0 from every
//! shard's answers over the mesh. (That `$SYS` needs an ACL rule once ACLs
//! are on is checked by tests/acl.rs; that `#` does not match it
//! [MQTT-4.7.2-1] by tests/http_metrics.rs.)

mod common;
use common::*;
use coremq::codec::{Packet, QoS};
use coremq::Hooks;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Whole rounds of `$SYS/brokers/<node>/<key>` values (a round runs from
/// one `version` to the next) until one satisfies `done` (or 20 s).
fn sys_values(
    w: &mut Client,
    done: impl Fn(&HashMap<String, String>) -> bool,
) -> HashMap<String, String> {
    let (mut round, mut last) = (HashMap::new(), HashMap::new());
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end && !done(&last) {
        if let Some(Packet::Publish(p)) = w.recv_within(Duration::from_millis(500)) {
            let key = p.topic.splitn(4, '/').nth(3).unwrap_or_default().to_owned();
            if key == "version" && !round.is_empty() {
                last = std::mem::take(&mut round);
            }
            round.insert(key, String::from_utf8_lossy(&p.payload).into_owned());
        }
    }
    last
}

fn is(values: &HashMap<String, String>, key: &str, want: &str) -> bool {
    values.get(key).map(String::as_str) == Some(want)
}

/// Connect N, subscribe M, publish K, overflow a queue: `$SYS` says so.
#[test]
fn values_agree_with_the_traffic() {
    let mut cfg = config(2);
    cfg.sys.interval_s = 1;
    cfg.session.max_mqueue_len = 3;
    let b = start_with(cfg, Hooks::new());
    let (mut w, _) = Client::connect(b.addr, &b.id_on("watcher", 0), true);
    w.subscribe("$SYS/brokers/#", QoS::AtMostOnce);
    let (mut a, _) = Client::connect(b.addr, &b.id_on("a", 1), true);
    a.subscribe_many(&[("t/1", QoS::AtMostOnce), ("t/+", QoS::AtLeastOnce)]);
    let (mut q, _) = Client::connect(b.addr, &b.id_on("queued", 1), false);
    q.subscribe("q/#", QoS::AtLeastOnce);
    q.disconnect();
    let (_c, _) = Client::connect(b.addr, &b.id_on("idle", 0), false);
    // K = 5 messages nobody subscribed to, and 5 to the offline session
    // whose queue holds 3: 2 dropped as the queue fills.
    for i in 0..5u8 {
        a.publish("x/y", &[i], QoS::AtLeastOnce, false);
        a.publish("q/1", &[i], QoS::AtLeastOnce, false);
    }
    let v = sys_values(&mut w, |v| {
        is(v, "messages/received", "10") && is(v, "messages/dropped/queue_full", "2")
    });
    let expect = [
        ("clients/connected", "3"),
        ("sessions/count", "4"),
        ("sessions/persistent", "2"),
        ("sessions/offline", "1"),
        // watcher 1, a 2, queued 1
        ("subscriptions/count", "4"),
        // $SYS/brokers/#, t/1, t/+, q/#
        ("topics/count", "4"),
        ("retained/count", "0"),
        ("messages/received", "10"),
        ("messages/dropped/queue_full", "2"),
        ("messages/dropped/no_subscribers", "5"),
        ("packets/received/connect", "4"),
        ("packets/received/subscribe", "3"),
        ("packets/sent/connack", "4"),
        ("packets/sent/puback", "10"),
        ("version", env!("CARGO_PKG_VERSION")),
    ];
    for (key, want) in expect {
        assert_eq!(
            v.get(key).map(String::as_str),
            Some(want),
            "{key}; all: {v:?}"
        );
    }
    assert!(
        v["datetime"].ends_with('Z') && v["datetime"].len() == 20,
        "{v:?}"
    );
    assert!(v["sysdescr"].starts_with("coremq "), "{v:?}");
    assert!(
        v["bytes/received"].parse::<u64>().is_ok_and(|n| n > 0),
        "{v:?}"
    );
    let per_shard: u64 = (0..2)
        .map(|i| {
            v[&format!("shards/{i}/messages/received")]
                .parse::<u64>()
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(per_shard, 10, "{v:?}");
}

/// `sys.client_events`: JSON on `clients/<id>/connected` and
/// `.../disconnected` (with the reason), as emqttd published them.
#[test]
fn client_events() {
    let mut cfg = config(2);
    cfg.sys.client_events = true;
    let b = start_with(cfg, Hooks::new());
    let (mut w, _) = Client::connect(b.addr, "watcher", true);
    w.subscribe("$SYS/brokers/+/clients/#", QoS::AtMostOnce);
    let (c, _) = Client::connect(b.addr, "ev-1", true);
    let p = w.recv_publish().expect("connected event");
    assert!(p.topic.ends_with("/clients/ev-1/connected"), "{}", p.topic);
    let j: serde_json::Value = serde_json::from_slice(&p.payload).expect("JSON");
    assert_eq!(j["clientid"], "ev-1");
    assert_eq!(j["ipaddress"], "127.0.0.1");
    assert_eq!(j["proto_ver"], 4);
    c.disconnect();
    let p = w.recv_publish().expect("disconnected event");
    assert!(
        p.topic.ends_with("/clients/ev-1/disconnected"),
        "{}",
        p.topic
    );
    // Wildcards and `/` in a client id are percent-encoded: one level, no
    // wildcard in a topic name [MQTT-3.3.2-2].
    let (odd, _) = Client::connect(b.addr, "a/b+#", true);
    let p = w.recv_publish().expect("connected event");
    assert!(
        p.topic.ends_with("/clients/a%2Fb%2B%23/connected"),
        "{}",
        p.topic
    );
    odd.disconnect();
    let p = w.recv_publish().expect("disconnected event");
    assert!(
        p.topic.ends_with("/clients/a%2Fb%2B%23/disconnected"),
        "{}",
        p.topic
    );
    let j: serde_json::Value = serde_json::from_slice(&p.payload).expect("JSON");
    assert_eq!(
        (&j["clientid"], &j["reason"]),
        (&"a/b+#".into(), &"normal".into()),
        "{j}"
    );
}

/// `sys.interval_s = 0`: no `$SYS` values at all.
#[test]
fn interval_zero_publishes_nothing() {
    let mut cfg = config(1);
    cfg.sys.interval_s = 0;
    let b = start_with(cfg, Hooks::new());
    let (mut w, _) = Client::connect(b.addr, "watcher", true);
    w.subscribe("$SYS/#", QoS::AtMostOnce);
    w.expect_silence(Duration::from_millis(2500));
}

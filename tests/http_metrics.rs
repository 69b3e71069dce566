//! `GET /metrics` read by the Prometheus project's own OpenMetrics parser
//! (Python's `prometheus_client`; scripts/test.sh installs it), checked
//! against the test's own MQTT traffic; and the `$SYS/brokers/<node>/...`
//! topics, which report the same traffic and which a `#` subscription
//! does not match [MQTT-4.7.2-1].

mod common;
use common::http::broker_with;
use common::*;
use coremq::codec::{Packet, QoS};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The parser, reading the exposition from stdin and printing
/// `{sample name: {"k=\"v\",...": value}}` as JSON; exit 3 if the module is missing.
const PARSER: &str = r#"
import sys, json
try:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
except ImportError as e:
    print("prometheus_client is missing: %s" % e, file=sys.stderr)
    sys.exit(3)
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
        out.setdefault(s.name, {})[labels] = s.value
print(json.dumps(out))
"#;

type Samples = BTreeMap<String, BTreeMap<String, f64>>;

/// Parse an OpenMetrics exposition with prometheus_client's parser.
fn parse_openmetrics(text: &str) -> Samples {
    let mut child = Command::new("python3")
        .args(["-c", PARSER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}): this test needs Python 3 with prometheus-client (scripts/test.sh installs it)")
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to python3");
    let out = child.wait_with_output().expect("python3 runs");
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) {
        panic!(
            "Python's prometheus_client is not installed ({}); scripts/test.sh installs it, \
             or: python3 -m pip install prometheus-client",
            err.trim()
        );
    }
    assert!(
        out.status.success(),
        "prometheus_client's OpenMetrics parser refused /metrics:\n{err}\n--- the text ---\n{text}"
    );
    serde_json::from_slice(&out.stdout).expect("the parser's JSON")
}

/// The sum of a sample over its labels (None if absent).
fn total(s: &Samples, name: &str) -> Option<f64> {
    s.get(name).map(|m| m.values().sum())
}

/// The families the node reports once (no shard label).
const NODE_WIDE: &[&str] = &[
    "coremq_clients_connected",
    "coremq_sessions_persistent",
    "coremq_sessions_offline",
    "coremq_subscriptions",
    "coremq_topics",
    "coremq_retained_messages",
    "coremq_memory_bytes",
    "coremq_memory_limit_bytes",
    "coremq_open_fds",
    "coremq_max_fds",
    "coremq_alarms_active",
    "coremq_uptime_seconds",
];

/// K messages from one client received by another, then `/metrics`:
/// valid OpenMetrics (content type, `# EOF` at the end, the parser takes
/// it), publish_received summed over shards = K, publish_sent >= K,
/// clients_connected = 2, bytes_received > 0, and every per-shard family
/// has one sample per shard.
fn metrics_match_traffic(shards: usize) {
    const K: usize = 9;
    let (b, http) = broker_with(shards, |_| {});
    let (mut sub, _) = Client::connect(b.addr, &b.id_on("msub", 0), true);
    sub.subscribe("m/t", QoS::AtLeastOnce);
    let (mut publ, _) = Client::connect(b.addr, &b.id_on("mpub", shards - 1), true);
    for i in 0..K {
        publ.publish("m/t", format!("{i}").as_bytes(), QoS::AtLeastOnce, false);
    }
    for p in sub.recv_acked(K) {
        assert_eq!(&*p.topic, "m/t");
    }

    let end = Instant::now() + Duration::from_secs(8);
    let (ctype, text, s) = loop {
        let r = http::get(http, "/metrics");
        let text = String::from_utf8(r.body.clone()).expect("a UTF-8 response");
        assert_eq!(r.status, 200, "{text}");
        assert!(
            r.header("transfer-encoding").is_none(),
            "a chunked body was not expected: {r:?}"
        );
        let ctype = r.header("content-type").unwrap_or_default().to_owned();
        let s = parse_openmetrics(&text);
        if total(&s, "coremq_publish_received_total") == Some(K as f64) {
            break (ctype, text, s);
        }
        assert!(
            Instant::now() < end,
            "coremq_publish_received_total never summed to {K}: {:?}",
            s.get("coremq_publish_received_total")
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        ctype.starts_with("application/openmetrics-text;"),
        "content type {ctype:?}"
    );
    assert!(
        text.ends_with("# EOF\n") || text.ends_with("# EOF"),
        "ends with # EOF"
    );
    let sent = total(&s, "coremq_publish_sent_total").expect("publish_sent");
    assert!(sent >= K as f64, "publish_sent {sent} < {K}");
    assert_eq!(
        total(&s, "coremq_clients_connected"),
        Some(2.0),
        "{:?}",
        s.get("coremq_clients_connected")
    );
    let bytes = total(&s, "coremq_bytes_received_total").expect("bytes_received");
    assert!(bytes > 0.0, "bytes_received {bytes}");
    assert_eq!(total(&s, "coremq_connections_open"), Some(2.0));

    let want: BTreeSet<String> = (0..shards).map(|i| format!("shard=\"{i}\"")).collect();
    for name in [
        "coremq_publish_received_total",
        "coremq_publish_sent_total",
        "coremq_bytes_received_total",
        "coremq_connections_open",
        "coremq_sessions",
        "coremq_shard_busy_ratio",
    ] {
        assert!(s.contains_key(name), "{name} is exposed");
    }
    for n in NODE_WIDE {
        let labels = s.get(*n).unwrap_or_else(|| panic!("{n} is exposed"));
        assert_eq!(
            labels.keys().collect::<Vec<_>>(),
            [""],
            "{n}: one sample, no labels"
        );
    }
    for (name, labels) in &s {
        if NODE_WIDE.contains(&name.as_str()) {
            continue;
        }
        let got: BTreeSet<String> = labels.keys().cloned().collect();
        assert_eq!(got, want, "{name}: one sample per shard");
    }
    // The per-shard samples add up to the node's own figures.
    let node: Value = {
        let r = http::get(http, "/api/v1/node");
        assert_eq!(r.status, 200);
        r.json()
    };
    assert_eq!(node["messages_received"], K, "{node}");
}

/// See [`metrics_match_traffic`]: on 2 shards.
#[test]
fn metrics_match_traffic_on_two_shards() {
    metrics_match_traffic(2);
}

/// See [`metrics_match_traffic`]: on 1 shard.
#[test]
fn metrics_match_traffic_on_one_shard() {
    metrics_match_traffic(1);
}

/// Collect `$SYS` values seen by `c` until `done` holds (or 10 s pass):
/// the latest value per topic (the `$SYS/brokers/<node>/` prefix kept).
fn sys_values(
    c: &mut Client,
    mut done: impl FnMut(&BTreeMap<String, String>) -> bool,
) -> BTreeMap<String, String> {
    let end = Instant::now() + Duration::from_secs(10);
    let mut latest = BTreeMap::new();
    while Instant::now() < end {
        if let Some(Packet::Publish(p)) = c.recv_within(Duration::from_millis(200)) {
            assert!(!p.retain, "$SYS values are not retained: {p:?}");
            latest.insert(p.topic.to_string(), text(&p));
            if done(&latest) {
                return latest;
            }
        }
    }
    panic!("$SYS values never as expected; last seen: {latest:?}");
}

/// The value of `$SYS/brokers/<node>/<suffix>` in `latest`.
fn sys_get<'a>(latest: &'a BTreeMap<String, String>, suffix: &str) -> Option<&'a str> {
    latest
        .iter()
        .find(|(t, _)| t.starts_with("$SYS/brokers/") && t.ends_with(&format!("/{suffix}")))
        .map(|(_, v)| v.as_str())
}

/// With `sys.interval_s = 1`, a subscriber to `$SYS/brokers/+/...` sees
/// clients/connected equal to the clients connected, messages/received
/// reach the K messages published, and version equal to the crate's
/// version, under the node id the API reports.
#[test]
fn sys_topics_report_the_traffic() {
    const K: usize = 6;
    let (b, http) = broker_with(2, |c| c.sys.interval_s = 1);
    let (mut watch, _) = Client::connect(b.addr, &b.id_on("sysw", 0), true);
    for f in ["clients/connected", "messages/received", "version"] {
        watch.subscribe(&format!("$SYS/brokers/+/{f}"), QoS::AtMostOnce);
    }
    let (mut publ, _) = Client::connect(b.addr, &b.id_on("sysp", 1), true);
    for i in 0..K {
        publ.publish("sys/t", format!("{i}").as_bytes(), QoS::AtLeastOnce, false);
    }
    let latest = sys_values(&mut watch, |l| {
        sys_get(l, "clients/connected") == Some("2")
            && sys_get(l, "messages/received") == Some(&K.to_string())
            && sys_get(l, "version").is_some()
    });
    for (topic, v) in &latest {
        match topic.rsplit_once("/brokers/").map(|(_, r)| r) {
            Some(r) if r.ends_with("clients/connected") => {
                assert!(v.parse::<u64>().is_ok_and(|n| n <= 2), "{topic} = {v}")
            }
            Some(r) if r.ends_with("messages/received") => {
                assert!(
                    v.parse::<u64>().is_ok_and(|n| n <= K as u64),
                    "{topic} = {v}"
                )
            }
            _ => {}
        }
    }
    assert_eq!(sys_get(&latest, "version"), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(env!("CARGO_PKG_VERSION"), "0.1.0");
    let r = http::get(http, "/api/v1/node");
    assert_eq!(r.status, 200);
    let node = r.json();
    assert_eq!(node["version"], env!("CARGO_PKG_VERSION"));
    let prefix = format!("$SYS/brokers/{}/", node["node"]);
    assert!(
        latest.keys().all(|t| t.starts_with(&prefix)),
        "every topic under {prefix}: {latest:?}"
    );
}

/// `$SYS` topics are published (a `$SYS/#` subscriber gets them), but a
/// plain `#` (or `+/brokers/#`) subscription does not match them
/// [MQTT-4.7.2-1]; it does get an ordinary message published after.
#[test]
fn sys_not_matched_by_hash() {
    let (b, _http) = broker_with(2, |c| c.sys.interval_s = 1);
    let (mut all, _) = Client::connect(b.addr, &b.id_on("hash", 1), true);
    all.subscribe_many(&[("#", QoS::AtMostOnce), ("+/brokers/#", QoS::AtMostOnce)]);
    let (mut sys, _) = Client::connect(b.addr, &b.id_on("sysall", 0), true);
    sys.subscribe("$SYS/#", QoS::AtMostOnce);
    // Two rounds of $SYS (interval 1 s) reach the $SYS/# subscriber.
    let mut rounds = BTreeSet::new();
    let end = Instant::now() + Duration::from_secs(10);
    while rounds.len() < 2 {
        assert!(Instant::now() < end, "no two rounds of $SYS within 10 s");
        if let Some(Packet::Publish(p)) = sys.recv_within(Duration::from_millis(200)) {
            assert!(p.topic.starts_with("$SYS/brokers/"), "{p:?}");
            if p.topic.ends_with("/uptime") {
                rounds.insert(text(&p));
            }
        }
    }
    let (mut publ, _) = Client::connect(b.addr, &b.id_on("hashp", 0), true);
    publ.publish("plain/x", b"ordinary", QoS::AtLeastOnce, false);
    let p = all.recv_publish().expect("the ordinary message");
    assert_eq!(
        &*p.topic, "plain/x",
        "a '#' subscription got a $SYS message before the ordinary one"
    );
    all.expect_silence(Duration::from_millis(1500));
}

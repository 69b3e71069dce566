//! Alarms, each raised and cleared by provoking it, as an operator sees
//! them: JSON on `$SYS/brokers/<node>/alarms/alert` and `.../alarms/clear`
//! (the seeds' emqttd alarm topics) and in `GET /api/v1/alarms`.
//!
//! connections near the maximum (with its hysteresis: no clear between the
//! clear level and the watermark), a slow subscriber, a saturated shard and
//! a mailbox in overflow (in-process brokers), memory over its share and
//! file descriptors near the limit (the binary, with a small descriptor
//! limit and glibc's mmap threshold fixed so freed payloads leave the RSS).
//! The full-disk alarm is checked by tests/storage_full.rs.

mod common;
use common::binary::{BrokerProcess, Tuning};
use common::*;
use coremq::codec::QoS;
use coremq::Hooks;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Alarms are checked every second; this bounds every wait for one.
const ALARM_WAIT: Duration = Duration::from_secs(20);

/// An operator subscribed to the alarm topics.
fn watcher(addr: SocketAddr, id: &str) -> Client {
    let (mut c, _) = Client::connect(addr, id, true);
    c.subscribe("$SYS/brokers/+/alarms/#", QoS::AtMostOnce);
    c
}

/// The next alarm message on `…/alarms/{kind}` whose id starts with
/// `prefix`, within [`ALARM_WAIT`]; other alarm messages are skipped.
fn next_alarm(c: &mut Client, kind: &str, prefix: &str) -> Option<serde_json::Value> {
    let end = Instant::now() + ALARM_WAIT;
    while Instant::now() < end {
        let Some(coremq::codec::Packet::Publish(p)) = c.recv_within(Duration::from_millis(500))
        else {
            continue;
        };
        let json: serde_json::Value = serde_json::from_slice(&p.payload).expect("alarm JSON");
        let id = json["id"].as_str().unwrap_or_default();
        if p.topic.ends_with(&format!("/alarms/{kind}")) && id.starts_with(prefix) {
            return Some(json);
        }
    }
    None
}

fn with_http(mut cfg: coremq::Config) -> coremq::Config {
    cfg.http.enabled = true;
    cfg.http.bind = "127.0.0.1:0".into();
    cfg
}

/// connections_high: raised at the watermark, still up between the clear
/// level and the watermark, cleared below the clear level; listed by the API.
#[test]
fn connections_near_the_maximum() {
    let mut cfg = with_http(config(2));
    cfg.listener[0].max_connections = 10;
    cfg.alarms.connections_high_watermark = 0.8; // raised at 8 of 10
    cfg.alarms.clear_margin = 0.2; // cleared below 0.8 × 0.8: 6.4 of 10
    let b = start_with(cfg, Hooks::new());
    let http = b
        .handle
        .as_ref()
        .and_then(|h| h.http_addr())
        .expect("http on");
    let mut w = watcher(b.addr, "alarm-watcher");
    let mut others: Vec<Client> = (0..7)
        .map(|i| Client::connect(b.addr, &format!("c{i}"), true).0)
        .collect();
    let raised = next_alarm(&mut w, "alert", "connections_high").expect("raised at 8 of 10");
    assert_eq!(raised["severity"], "warning", "{raised}");
    assert!(
        raised["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("8 of 10"),
        "{raised}"
    );
    let listed = http::get(http, "/api/v1/alarms").json();
    assert!(
        listed["active"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["id"] == "connections_high")),
        "{listed}"
    );
    // 7 of 10 is under the watermark but over the clear level: still raised.
    if let Some(c) = others.pop() {
        c.disconnect();
    }
    w.expect_silence(Duration::from_millis(2500));
    if let Some(c) = others.pop() {
        c.disconnect();
    }
    let cleared = next_alarm(&mut w, "clear", "connections_high").expect("cleared at 6 of 10");
    assert_eq!(cleared["raised_at"], raised["raised_at"]);
    assert!(cleared["cleared_at"].as_u64().is_some(), "{cleared}");
    let listed = http::get(http, "/api/v1/alarms").json();
    assert_eq!(
        listed["active"].as_array().map(Vec::len),
        Some(0),
        "{listed}"
    );
    assert!(
        listed["cleared"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["id"] == "connections_high")),
        "{listed}"
    );
}

/// slow_subscriber: an offline persistent session whose queue reaches
/// `slow_subscriber_queue`; cleared once it is drained and quiet_s passed.
#[test]
fn slow_subscriber() {
    let mut cfg = config(2);
    cfg.alarms.slow_subscriber_queue = 5;
    cfg.alarms.quiet_s = 1;
    let b = start_with(cfg, Hooks::new());
    let mut w = watcher(b.addr, "alarm-watcher");
    let (mut slow, _) = Client::connect(b.addr, "slowpoke", false);
    slow.subscribe("slow/#", QoS::AtLeastOnce);
    slow.disconnect();
    let (mut p, _) = Client::connect(b.addr, "pub", true);
    for i in 0..10u8 {
        p.publish("slow/x", &[i], QoS::AtLeastOnce, false);
    }
    let raised = next_alarm(&mut w, "alert", "slow_subscriber/").expect("raised");
    let summary = raised["summary"].as_str().unwrap_or_default();
    assert!(summary.contains("\"slowpoke\" with 10"), "{raised}");
    let (mut back, present) = Client::connect(b.addr, "slowpoke", false);
    assert!(present);
    for _ in 0..10 {
        let m = back.recv_publish().expect("queued message");
        back.ack(&m);
    }
    let cleared = next_alarm(&mut w, "clear", "slow_subscriber/").expect("cleared");
    assert_eq!(cleared["id"], raised["id"]);
}

/// shard_saturated: a shard kept busy (a message.publish hook spinning 40
/// ms per message, 20 messages a second) for saturated_checks checks; and
/// mailbox_overflow: a flood to that busy shard through 2-batch mailboxes.
/// Both clear once the load stops.
#[test]
fn saturated_shard_and_mailbox_overflow() {
    let mut cfg = config(2);
    cfg.alarms.shard_busy_watermark = 0.5;
    cfg.alarms.saturated_checks = 2;
    cfg.alarms.quiet_s = 1;
    cfg.runtime.mailbox_capacity = 2;
    let mut hooks = Hooks::new();
    hooks.on_message_publish(|_, m| {
        if &*m.topic == "spin" {
            let end = Instant::now() + Duration::from_millis(40);
            while Instant::now() < end {
                std::hint::spin_loop();
            }
        }
        Some(m)
    });
    let b = start_with(cfg, hooks);
    let mut w = watcher(b.addr, &b.id_on("watcher", 0));
    let spin_id = b.id_on("spinner", 1);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (addr, stop2) = (b.addr, stop.clone());
    let spinner = std::thread::spawn(move || {
        let (mut s, _) = Client::connect(addr, &spin_id, true);
        let end = Instant::now() + Duration::from_secs(40);
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < end {
            s.publish("spin", b"x", QoS::AtMostOnce, false);
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let raised = next_alarm(&mut w, "alert", "shard_saturated/shard-1");
    // The flood: a publisher on shard 0, its subscriber on the busy shard 1.
    let (mut sub, _) = Client::connect(b.addr, &b.id_on("sub", 1), true);
    sub.subscribe("flood", QoS::AtMostOnce);
    let (mut flood, _) = Client::connect(b.addr, &b.id_on("flood", 0), true);
    for _ in 0..20_000 {
        flood.publish("flood", &[0; 64], QoS::AtMostOnce, false);
    }
    flood.ping();
    let overflow = next_alarm(&mut w, "alert", "mailbox_overflow/shard-0");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    spinner.join().expect("spinner");
    let raised = raised.expect("shard 1 saturated");
    assert!(
        raised["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("busy"),
        "{raised}"
    );
    assert!(overflow.is_some(), "mailbox 0 → 1 overflowed");
    assert!(next_alarm(&mut w, "clear", "mailbox_overflow/shard-0").is_some());
    assert!(next_alarm(&mut w, "clear", "shard_saturated/shard-1").is_some());
    drop(sub);
}

/// memory_high: 40 retained 1 MB messages take the RSS over half of a
/// 100 MB limit; deleting them brings it back under the clear level.
#[test]
fn memory_over_its_share() {
    let toml = "[mqtt]\nmax_packet_size = 2097152\n[storage]\nenabled = false\n\
                [alarms]\nmemory_limit_bytes = 100000000\nmemory_high_watermark = 0.5\n";
    let tuning = Tuning {
        // glibc returns each freed 1 MB block to the kernel at once.
        env: vec![
            ("MALLOC_MMAP_THRESHOLD_".into(), "65536".into()),
            (
                "GLIBC_TUNABLES".into(),
                "glibc.malloc.mmap_threshold=65536".into(),
            ),
        ],
        nofile: None,
    };
    let b = BrokerProcess::start_tuned(2, Some(toml), &tuning);
    let mut w = watcher(b.addr(), "alarm-watcher");
    assert!(
        b.rss() < 45_000_000,
        "starts under the clear level: {} B",
        b.rss()
    );
    let (mut p, _) = Client::connect(b.addr(), "filler", true);
    let big = vec![7u8; 1 << 20];
    for i in 0..40 {
        p.publish(&format!("big/{i}"), &big, QoS::AtLeastOnce, true);
    }
    let raised = next_alarm(&mut w, "alert", "memory_high")
        .unwrap_or_else(|| panic!("raised at {} B; log:\n{}", b.rss(), b.log()));
    assert!(
        raised["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("memory"),
        "{raised}"
    );
    for i in 0..40 {
        p.publish(&format!("big/{i}"), b"", QoS::AtLeastOnce, true);
    }
    let cleared = next_alarm(&mut w, "clear", "memory_high");
    assert!(
        cleared.is_some(),
        "cleared at {} B; log:\n{}",
        b.rss(),
        b.log()
    );
}

/// fd_high: with a limit of 256 descriptors, 130 more connections take the
/// broker over half of it; closing most of them clears the alarm.
#[test]
fn descriptors_near_the_limit() {
    let toml = "[alarms]\nfd_high_watermark = 0.5\n";
    let tuning = Tuning {
        env: vec![],
        nofile: Some(256),
    };
    let b = BrokerProcess::start_tuned(2, Some(toml), &tuning);
    let mut w = watcher(b.addr(), "alarm-watcher");
    let mut conns: Vec<Client> = (0..130)
        .map(|i| Client::connect(b.addr(), &format!("fd{i}"), true).0)
        .collect();
    let raised = next_alarm(&mut w, "alert", "fd_high")
        .unwrap_or_else(|| panic!("raised; log:\n{}", b.log()));
    assert!(
        raised["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("of 256"),
        "{raised}"
    );
    conns.truncate(20);
    assert!(next_alarm(&mut w, "clear", "fd_high").is_some(), "cleared");
}

/// shard_unresponsive: a shard stuck for 7 s (a hook that does not return)
/// misses the check's 5 s deadline; once it answers again it clears.
#[test]
fn unresponsive_shard() {
    let mut hooks = Hooks::new();
    hooks.on_message_publish(|_, m| {
        if &*m.topic == "stall" {
            std::thread::sleep(Duration::from_secs(7));
        }
        Some(m)
    });
    let b = start_with(config(2), hooks);
    let mut w = watcher(b.addr, &b.id_on("watcher", 0));
    let (mut s, _) = Client::connect(b.addr, &b.id_on("staller", 1), true);
    s.publish("stall", b"x", QoS::AtMostOnce, false);
    let raised = next_alarm(&mut w, "alert", "shard_unresponsive/shard-1").expect("raised");
    assert_eq!(raised["severity"], "critical", "{raised}");
    assert!(next_alarm(&mut w, "clear", "shard_unresponsive/shard-1").is_some());
}

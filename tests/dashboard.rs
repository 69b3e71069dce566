//! The web dashboard (`GET /dashboard` on the management HTTP listener) in
//! headless Chromium, against the `coremq` binary with `[http] enabled`:
//! three MQTT clients connect and one publishes to a topic another
//! subscribes to; Chromium loads the page with a virtual-time budget (the
//! page polls `/api/v1/node` every second, the clients and alarms every two)
//! and prints the DOM, which the test reads by the page's element ids; the
//! connections alarm (raised at 3 of 5 connections) is listed as active. A
//! client kicked through the HTTP API (`DELETE /api/v1/clients/ID`) is gone
//! from the next load's clients table and the alarm is among the cleared
//! ones. A second test takes a screenshot to `target/dashboard.png` (for the
//! README).
//!
//! Fails, not skips, where Chromium (/usr/bin/chromium) is missing:
//! `scripts/test.sh` installs it.

mod common;
use common::binary::{run_bounded, BrokerProcess, TempDir};
use common::http::{delete, get};
use common::Client;
use coremq::codec::QoS;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bound on one Chromium run, its start included.
const BROWSER_WAIT: Duration = Duration::from_secs(60);
/// Bound on the broker's figures reaching what the test made happen.
const API_WAIT: Duration = Duration::from_secs(10);
/// Messages published (alternately QoS 0 and 1).
const K: usize = 20;
const TOPIC: &str = "dash/t";
const IDS: [&str; 3] = ["dash-idle", "dash-pub", "dash-sub"];

/// The broker's configuration: the management listener on a free loopback
/// port (no credentials: allowed on loopback), and the connections alarm
/// raised at 3 of 5 connections (60 %), cleared at 2 (40 %, under
/// 50 % × (1 - 0.1)).
const CONFIG: &str = r#"
[listener]
bind = "127.0.0.1:0"
max_connections = 5

[alarms]
connections_high_watermark = 0.5
clear_margin = 0.1

[http]
enabled = true
bind = "127.0.0.1:0"
"#;

/// The broker at 2 shards with [`CONFIG`]; the MQTT listener is
/// `--listen 127.0.0.1:0`. Returns the broker and the HTTP address.
fn start_broker() -> (BrokerProcess, SocketAddr) {
    let b = BrokerProcess::start_with_config(2, Some(CONFIG));
    assert!(
        b.wait_log(API_WAIT, |_| b.http_addr().is_some()),
        "no `http listening on 127.0.0.1:PORT` line within {API_WAIT:?}; the log:\n{}",
        b.log()
    );
    let http = b.http_addr().expect("http address");
    (b, http)
}

/// The number after `"key":` in a JSON text (the first occurrence).
fn json_u64(json: &str, key: &str) -> Option<u64> {
    let pat = format!("\"{key}\"");
    let rest = json[json.find(&pat)? + pat.len()..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Wait (at most [`API_WAIT`]) until `GET path` answers 200 with a body
/// that satisfies `f`; panics with the last answer otherwise.
fn wait_api(http: SocketAddr, path: &str, what: &str, f: impl Fn(&str) -> bool) {
    let end = Instant::now() + API_WAIT;
    loop {
        let r = get(http, path);
        let (status, body) = (r.status, r.text());
        if status == 200 && f(&body) {
            return;
        }
        assert!(
            Instant::now() < end,
            "GET {path}: not {what} within {API_WAIT:?}; last answer {status}: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Run headless Chromium on `url` with `args` until it exits (at most
/// [`BROWSER_WAIT`]; its process group is killed after); returns its stdout.
/// Panics with its stderr if it does not exit in time or fails.
fn chromium(url: &str, args: &[String]) -> String {
    let profile = TempDir::new("coremq-dashboard-chromium");
    let mut cmd = common::chromium::headless(&profile.path);
    cmd.arg("--hide-scrollbars").args(args).arg(url);
    match run_bounded(cmd, BROWSER_WAIT) {
        (Some(0), stdout, _) => stdout,
        (Some(code), _, stderr) => {
            panic!("chromium {args:?} {url} failed (exit {code}); stderr:\n{stderr}")
        }
        (None, _, stderr) => panic!(
            "chromium {args:?} {url} did not finish within {BROWSER_WAIT:?}; stderr:\n{stderr}"
        ),
    }
}

/// The DOM of `url` after `budget_ms` of virtual time.
fn dump_dom(url: &str, budget_ms: u32) -> String {
    chromium(
        url,
        &[
            format!("--virtual-time-budget={budget_ms}"),
            "--dump-dom".to_string(),
        ],
    )
}

/// The text of the element with this id, up to its first child tag.
fn text_by_id(dom: &str, id: &str) -> Option<String> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let start = at + dom[at..].find('>')? + 1;
    let end = start + dom[start..].find('<')?;
    Some(
        dom[start..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&amp;", "&"),
    )
}

/// The element's text read as a whole number (group separators ignored).
fn number_by_id(dom: &str, id: &str) -> Option<u64> {
    let t = text_by_id(dom, id)?;
    let digits: String = t.chars().filter(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The `data-client-id` of every row of `#clients-table`, in page order.
fn client_rows(dom: &str) -> Vec<String> {
    let Some(at) = dom.find("id=\"clients-table\"") else {
        return Vec::new();
    };
    let table = &dom[at..];
    let table = &table[..table.find("</table>").unwrap_or(table.len())];
    let mut rows = Vec::new();
    let mut rest = table;
    while let Some(i) = rest.find("data-client-id=\"") {
        rest = &rest[i + "data-client-id=\"".len()..];
        let end = rest.find('"').unwrap_or(rest.len());
        rows.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    rows
}

/// The `data-alarm-id` of each `.alarm` element in `#alarms-active` (the
/// recently cleared ones follow it, in `#alarms-cleared`).
fn active_alarms(dom: &str) -> Vec<String> {
    let Some(at) = dom.find("id=\"alarms-active\"") else {
        return Vec::new();
    };
    let section = &dom[at..];
    let section = &section[..section
        .find("id=\"alarms-cleared\"")
        .unwrap_or(section.len())];
    section
        .split("<div ")
        .filter(|tag| tag.starts_with("class=\"alarm"))
        .filter_map(|tag| {
            let rest = &tag[tag.find("data-alarm-id=\"")? + "data-alarm-id=\"".len()..];
            Some(rest[..rest.find('"')?].to_string())
        })
        .collect()
}

/// How many `/api/v1/node` polls succeeded (`<body data-polls="N">`).
fn polls(dom: &str) -> u64 {
    let Some(at) = dom.find("data-polls=\"") else {
        return 0;
    };
    let rest = &dom[at + "data-polls=\"".len()..];
    rest[..rest.find('"').unwrap_or(0)].parse().unwrap_or(0)
}

/// The three test clients: `dash-sub` subscribed to [`TOPIC`] (QoS 1),
/// `dash-pub`, which published [`K`] messages to it (QoS 0 and 1
/// alternately), all of them received and acknowledged, and `dash-idle`.
fn three_clients(addr: SocketAddr) -> Vec<Client> {
    let (mut sub, _) = Client::connect(addr, "dash-sub", true);
    sub.subscribe(TOPIC, QoS::AtLeastOnce);
    let (mut publ, _) = Client::connect(addr, "dash-pub", true);
    let (idle, _) = Client::connect(addr, "dash-idle", true);
    for i in 0..K {
        let qos = if i % 2 == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        publ.publish(TOPIC, format!("m{i}").as_bytes(), qos, false);
    }
    for i in 0..K {
        let p = sub
            .recv_publish()
            .unwrap_or_else(|| panic!("dash-sub: message {i} of {K} did not arrive"));
        sub.ack(&p);
    }
    vec![idle, publ, sub]
}

#[test]
fn dashboard_shows_the_broker_and_kicks_a_client() {
    let (broker, http) = start_broker();
    let mut clients = three_clients(broker.addr());
    wait_api(
        http,
        "/api/v1/node",
        "3 connections and K messages received",
        |j| {
            json_u64(j, "connections") == Some(3)
                && json_u64(j, "messages_received").is_some_and(|n| n >= K as u64)
        },
    );
    wait_api(http, "/api/v1/alarms", "connections_high active", |j| {
        j.split("\"cleared\"")
            .next()
            .unwrap_or("")
            .contains("connections_high")
    });
    let url = format!("http://{http}/dashboard");

    let dom = dump_dom(&url, 5000);
    let ctx = || format!("the DOM:\n{dom}\nthe broker's log:\n{}", broker.log());
    assert!(polls(&dom) >= 2, "fewer than 2 node polls; {}", ctx());
    assert_eq!(
        text_by_id(&dom, "status").as_deref(),
        Some("live"),
        "{}",
        ctx()
    );
    assert_eq!(number_by_id(&dom, "connections"), Some(3), "{}", ctx());
    let received = number_by_id(&dom, "messages-received");
    assert!(
        received.is_some_and(|n| n >= K as u64),
        "#messages-received {received:?} < {K}; {}",
        ctx()
    );
    let sent = number_by_id(&dom, "messages-sent");
    assert!(
        sent.is_some_and(|n| n >= K as u64),
        "#messages-sent {sent:?} < {K}; {}",
        ctx()
    );
    assert_eq!(number_by_id(&dom, "shards"), Some(2), "{}", ctx());
    assert_eq!(client_rows(&dom), IDS, "{}", ctx());
    assert_eq!(number_by_id(&dom, "clients-count"), Some(3), "{}", ctx());
    for id in ["sessions", "subscriptions", "retained", "memory", "uptime"] {
        assert!(text_by_id(&dom, id).is_some(), "no #{id}; {}", ctx());
    }
    for id in ["msg-in-rate", "msg-out-rate", "drop-rate"] {
        let rate = text_by_id(&dom, id).unwrap_or_default();
        assert!(
            rate.starts_with(|c: char| c.is_ascii_digit()),
            "#{id} is {rate:?}, not a rate; {}",
            ctx()
        );
    }
    assert!(dom.contains("id=\"shards-table\""), "{}", ctx());
    assert_eq!(active_alarms(&dom), ["connections_high"], "{}", ctx());

    // Kick dash-idle through the API: its connection closes, and the next
    // load lists the other two.
    let r = delete(http, "/api/v1/clients/dash-idle");
    assert_eq!(
        r.status,
        204,
        "DELETE /api/v1/clients/dash-idle: {}",
        r.text()
    );
    let mut idle = clients.remove(0);
    assert!(
        idle.closed(),
        "dash-idle was kicked but its socket stays open"
    );
    wait_api(http, "/api/v1/node", "2 connections", |j| {
        json_u64(j, "connections") == Some(2)
    });
    wait_api(http, "/api/v1/alarms", "connections_high cleared", |j| {
        j.contains("\"active\":[]") && j.contains("connections_high")
    });
    let dom = dump_dom(&url, 3000);
    let ctx = || format!("the DOM:\n{dom}\nthe broker's log:\n{}", broker.log());
    assert_eq!(
        text_by_id(&dom, "status").as_deref(),
        Some("live"),
        "{}",
        ctx()
    );
    assert_eq!(client_rows(&dom), ["dash-pub", "dash-sub"], "{}", ctx());
    assert_eq!(number_by_id(&dom, "connections"), Some(2), "{}", ctx());
    assert!(active_alarms(&dom).is_empty(), "{}", ctx());
    let cleared = &dom[dom.find("id=\"alarms-cleared\"").unwrap_or(dom.len())..];
    assert!(
        cleared.contains("data-alarm-id=\"connections_high\""),
        "connections_high is not among the cleared alarms; {}",
        ctx()
    );
    drop(clients);
    broker.stop();
}

#[test]
fn dashboard_screenshot() {
    let (broker, http) = start_broker();
    let addr = broker.addr();
    let clients = three_clients(addr);
    wait_api(http, "/api/v1/node", "3 connections", |j| {
        json_u64(j, "connections") == Some(3)
    });
    // Traffic while the page runs, so its rates and charts show some.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let traffic = std::thread::spawn(move || {
        let (mut c, _) = Client::connect(addr, "dash-traffic", true);
        let mut i = 0u64;
        while !flag.load(Ordering::Relaxed) {
            c.publish(TOPIC, format!("t{i}").as_bytes(), QoS::AtMostOnce, false);
            i += 1;
            if i % 20 == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    });
    let png: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard.png");
    std::fs::create_dir_all(png.parent().unwrap()).expect("target dir");
    let _ = std::fs::remove_file(&png);
    chromium(
        &format!("http://{http}/dashboard"),
        &[
            "--virtual-time-budget=20000".to_string(),
            "--window-size=1280,1000".to_string(),
            format!("--screenshot={}", png.display()),
        ],
    );
    stop.store(true, Ordering::Relaxed);
    traffic.join().expect("traffic thread");
    let bytes =
        std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", png.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        png.display()
    );
    assert!(
        bytes.len() > 10 * 1024,
        "{}: {} bytes, a blank page?",
        png.display(),
        bytes.len()
    );
    drop(clients);
    broker.stop();
}

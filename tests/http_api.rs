//! The management HTTP API (`[http]`), over real HTTP/1.1 on a loopback
//! socket: every endpoint of the contract, its errors, credentials, and a
//! listener that stays usable (and leaves MQTT alone) under slow, idle and
//! garbage connections. Brokers run on 2 shards, so listings and figures
//! are gathered over the mesh; the node figures also on 1 shard.

mod common;
use base64::Engine;
use common::http::*;
use common::*;
use coremq::codec::{Connect, QoS};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

// ---- Test helpers ----

/// Percent-encode everything but the unreserved characters.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Poll `f` (every 50 ms, up to 8 s) until it gives Ok; panics with its last Err.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let end = Instant::now() + Duration::from_secs(8);
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() > end => panic!("{what}: not so within 8 s; last: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

// ---- Brokers and MQTT helpers ----

/// A broker on `shards` shards with the HTTP listener on a free loopback
/// port (max_body_bytes 1024), changed by `f`; and the HTTP address.
fn broker_with(shards: usize, f: impl FnOnce(&mut coremq::Config)) -> (TestBroker, SocketAddr) {
    http::broker_with(shards, |cfg| {
        cfg.http.max_body_bytes = 1024;
        f(cfg);
    })
}

fn broker(shards: usize) -> (TestBroker, SocketAddr) {
    broker_with(shards, |_| {})
}

/// One message crosses from a new publisher to a new subscriber (on
/// different shards): MQTT still flows.
fn mqtt_flows(b: &TestBroker, tag: &str) {
    let (mut sub, _) = Client::connect(b.addr, &b.id_on(&format!("{tag}-s"), 0), true);
    sub.subscribe(&format!("flow/{tag}"), QoS::AtLeastOnce);
    let (mut publ, _) = Client::connect(b.addr, &b.id_on(&format!("{tag}-p"), b.shards - 1), true);
    publ.publish(&format!("flow/{tag}"), b"still", QoS::AtLeastOnce, false);
    let p = sub.recv_publish().expect("MQTT message delivered");
    assert_eq!(p.payload.as_ref(), b"still");
}

/// The rows of a listing (`data`) and its `meta.count`.
fn rows(v: &Value) -> (Vec<Value>, u64) {
    let data = v["data"].as_array().expect("data array").clone();
    (data, v["meta"]["count"].as_u64().expect("meta.count"))
}

fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["client_id"].as_str().expect("client_id").to_owned())
        .collect()
}

fn with_user(id: &str, user: &str) -> Connect {
    Connect {
        username: Some(user.into()),
        ..connect_packet(id, true)
    }
}

// ---- Tests ----

/// `/health/live` is 200 `{"status":"live"}` and `/health/ready` 200
/// `{"status":"ready"}` (every shard answered); another method is 405.
#[test]
fn health_live_and_ready() {
    let (_b, http) = broker(2);
    let v = ok_json(get(http, "/health/live"), "live");
    assert_eq!(v, json!({"status": "live"}));
    let v = ok_json(get(http, "/health/ready"), "ready");
    assert_eq!(v, json!({"status": "ready"}));
    assert_error(
        &request(http, "POST", "/health/live", &[], b"{}"),
        405,
        "method_not_allowed",
    );
    assert_error(&get(http, "/health/nothing"), 404, "not_found");
}

/// `GET /` redirects to `/dashboard`, which is an HTML page.
#[test]
fn root_redirects_to_the_dashboard() {
    let (_b, http) = broker(2);
    let r = get(http, "/");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("/dashboard"));
    let r = get(http, "/dashboard");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .is_some_and(|v| v.starts_with("text/html")));
    assert!(r.text().contains("<html") || r.text().contains("<!"));
}

/// The node's figures after known traffic: 3 clients (2 with clean
/// session 0), 4 subscriptions on 3 distinct filters, K messages published:
/// connections 3, sessions 3, sessions_persistent 2, subscriptions 4,
/// topics 3, messages_received >= K, and one per_shard entry per shard
/// whose connections sum to `sockets`.
fn node_figures(shards: usize) {
    const K: u64 = 7;
    let (b, http) = broker(shards);
    let (mut p1, _) = Client::connect(b.addr, &b.id_on("np1", 0), false);
    let (mut p2, _) = Client::connect(b.addr, &b.id_on("np2", shards - 1), false);
    let (mut c3, _) = Client::connect(b.addr, &b.id_on("nc3", shards - 1), true);
    p1.subscribe("n/a", QoS::AtLeastOnce);
    p1.subscribe("n/b/+", QoS::AtMostOnce);
    p2.subscribe("n/a", QoS::AtLeastOnce);
    c3.subscribe("n/#", QoS::AtMostOnce);
    for i in 0..K {
        c3.publish("n/z", format!("m{i}").as_bytes(), QoS::AtLeastOnce, false);
    }
    let v = eventually("node figures", || {
        let v = ok_json(get(http, "/api/v1/node"), "node");
        let want = [
            ("connections", 3),
            ("sessions", 3),
            ("sessions_persistent", 2),
            ("subscriptions", 4),
            ("topics", 3),
        ];
        for (k, n) in want {
            if v[k] != n {
                return Err(format!("{k} = {} (want {n}) in {v}", v[k]));
            }
        }
        if v["messages_received"].as_u64().unwrap_or(0) < K {
            return Err(format!("messages_received < {K}: {v}"));
        }
        Ok(v)
    });
    assert_eq!(v["shards"], shards, "{v}");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["sessions_offline"], 0, "{v}");
    assert!(v["uptime_s"].is_u64() && v["datetime"].is_string(), "{v}");
    assert!(v["metrics"]["publish_received"].as_u64() >= Some(K), "{v}");
    let per = v["per_shard"].as_array().expect("per_shard");
    assert_eq!(per.len(), shards, "one per_shard entry per shard: {v}");
    let mut sum = 0;
    for (i, s) in per.iter().enumerate() {
        assert_eq!(s["shard"], i, "per_shard in shard order: {v}");
        sum += s["connections"].as_u64().expect("per_shard connections");
    }
    assert_eq!(
        Some(sum),
        v["sockets"].as_u64(),
        "per_shard connections sum: {v}"
    );
    assert!(sum >= 3, "at least the 3 MQTT sockets: {v}");
    let per_received: u64 = per
        .iter()
        .map(|s| s["messages_received"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(Some(per_received), v["messages_received"].as_u64(), "{v}");
}

/// See [`node_figures`]: on 2 shards (answers gathered over the mesh).
#[test]
fn node_figures_follow_traffic_on_two_shards() {
    node_figures(2);
}

/// See [`node_figures`]: on 1 shard.
#[test]
fn node_figures_follow_traffic_on_one_shard() {
    node_figures(1);
}

/// The clients listing: sorted by client id, paged (limit 2: 2 rows of a
/// count of 3, page 2: the third), filtered by client id substring, user
/// name and shard; one client's row; 404 (JSON) for an unknown one.
#[test]
fn clients_list_pages_filters_and_one() {
    let (b, http) = broker(2);
    let (a, cb, cc) = (b.id_on("cl-a", 0), b.id_on("cl-b", 1), b.id_on("cl-c", 1));
    let (_ca, ack) = Client::connect_with(b.addr, with_user(&a, "alice"));
    assert_eq!(
        ack.code,
        coremq::codec::Reason::SUCCESS,
        "CONNACK with a user name"
    );
    let (mut c_b, _) = Client::connect(b.addr, &cb, true);
    c_b.subscribe("cl/x", QoS::AtLeastOnce);
    let (_c_c, _) = Client::connect(b.addr, &cc, false);

    let v = ok_json(get(http, "/api/v1/clients"), "clients");
    let (all, n) = rows(&v);
    assert_eq!(n, 3, "{v}");
    assert_eq!(
        ids(&all),
        vec![a.clone(), cb.clone(), cc.clone()],
        "sorted: {v}"
    );

    let v = ok_json(get(http, "/api/v1/clients?limit=2"), "page 1");
    let (r, n) = rows(&v);
    assert_eq!((ids(&r), n), (vec![a.clone(), cb.clone()], 3), "{v}");
    assert_eq!(v["meta"]["page"], 1);
    assert_eq!(v["meta"]["limit"], 2);
    let v = ok_json(get(http, "/api/v1/clients?page=2&limit=2"), "page 2");
    let (r, n) = rows(&v);
    assert_eq!((ids(&r), n), (vec![cc.clone()], 3), "{v}");
    let v = ok_json(get(http, "/api/v1/clients?page=3&limit=2"), "page 3");
    assert_eq!(rows(&v), (vec![], 3), "{v}");

    let v = ok_json(get(http, "/api/v1/clients?client_id=cl-b"), "by id");
    assert_eq!(rows(&v).1, 1, "{v}");
    assert_eq!(ids(&rows(&v).0), vec![cb.clone()]);
    let v = ok_json(get(http, "/api/v1/clients?username=alice"), "by user");
    let (r, n) = rows(&v);
    assert_eq!((ids(&r), n), (vec![a.clone()], 1), "{v}");
    assert_eq!(r[0]["username"], "alice");
    let v = ok_json(get(http, "/api/v1/clients?username=bob"), "no such user");
    assert_eq!(rows(&v), (vec![], 0));
    let v = ok_json(get(http, "/api/v1/clients?shard=1"), "by shard");
    assert_eq!(ids(&rows(&v).0), vec![cb.clone(), cc.clone()], "{v}");
    assert_error(&get(http, "/api/v1/clients?limit=0"), 400, "bad_request");
    assert_error(&get(http, "/api/v1/clients?page=x"), 400, "bad_request");
    // A listing reaches at most row 10,000 (each shard builds page × limit
    // rows), and a page number that would overflow is a plain 400.
    assert_error(
        &get(http, "/api/v1/clients?page=11&limit=1000"),
        400,
        "bad_request",
    );
    let huge = format!("/api/v1/topics?page={}", u64::MAX);
    assert_error(&get(http, &huge), 400, "bad_request");

    let v = ok_json(get(http, &format!("/api/v1/clients/{}", enc(&cb))), "one");
    assert_eq!(v["client_id"], cb);
    assert_eq!(v["username"], Value::Null);
    assert_eq!(v["shard"], 1);
    assert_eq!(v["protocol"], 4);
    assert_eq!(v["keepalive"], 60);
    assert_eq!(v["clean_start"], true);
    assert_eq!(v["subscriptions"], 1);
    assert!(
        v["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{v}"
    );
    let v = ok_json(get(http, &format!("/api/v1/clients/{}", enc(&cc))), "one");
    assert_eq!(v["clean_start"], false, "{v}");
    assert_error(&get(http, "/api/v1/clients/nobody-here"), 404, "not_found");
}

/// `DELETE /api/v1/clients/{id}` closes that client's socket (204), then
/// 404s; an unknown id is 404. A client id with '/' and spaces is
/// addressed percent-encoded (GET, subscriptions, DELETE).
#[test]
fn delete_client_kicks_it() {
    let (b, http) = broker(2);
    let id = b.id_on("kick", 1);
    let (mut c, _) = Client::connect(b.addr, &id, true);
    let r = delete(http, &format!("/api/v1/clients/{id}"));
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(c.closed(), "the kicked client's socket is closed");
    eventually("kicked client gone", || {
        let r = get(http, &format!("/api/v1/clients/{id}"));
        (r.status == 404).then_some(()).ok_or(r.text())
    });
    assert_error(
        &delete(http, &format!("/api/v1/clients/{id}")),
        404,
        "not_found",
    );
    assert_error(&delete(http, "/api/v1/clients/nobody"), 404, "not_found");

    let odd = "dev/a b";
    let (mut c, _) = Client::connect(b.addr, odd, true);
    c.subscribe("odd/t", QoS::AtLeastOnce);
    let path = format!("/api/v1/clients/{}", enc(odd));
    assert!(path.contains("%2F") && path.contains("%20"), "{path}");
    let v = ok_json(get(http, &path), "odd id");
    assert_eq!(v["client_id"], odd);
    let v = ok_json(get(http, &format!("{path}/subscriptions")), "odd subs");
    assert_eq!(v["data"][0]["topic"], "odd/t", "{v}");
    let v = ok_json(
        get(http, &format!("/api/v1/clients?client_id={}", enc("a b"))),
        "odd search",
    );
    assert_eq!(ids(&rows(&v).0), vec![odd.to_owned()], "{v}");
    let r = delete(http, &path);
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(c.closed(), "the kicked client's socket is closed");
    mqtt_flows(&b, "kick");
}

/// A client's subscriptions; subscribing it on its behalf (a publish then
/// reaches it over MQTT) and unsubscribing it (204; a publish no longer
/// does); the 400s (bad JSON, no topic, qos 3, invalid filter) and 404s.
#[test]
fn subscribe_and_unsubscribe_on_behalf() {
    let (b, http) = broker(2);
    let id = b.id_on("sb", 1);
    let (mut c, _) = Client::connect(b.addr, &id, true);
    c.subscribe("s/one", QoS::AtLeastOnce);
    let (mut publ, _) = Client::connect(b.addr, &b.id_on("sbp", 0), true);
    let base = format!("/api/v1/clients/{id}");

    let v = ok_json(get(http, &format!("{base}/subscriptions")), "subs");
    let data = v["data"].as_array().expect("data");
    assert_eq!(data.len(), 1, "{v}");
    assert_eq!(data[0]["topic"], "s/one");
    assert_eq!(data[0]["qos"], 1);
    assert_eq!(data[0]["no_local"], false);
    assert_eq!(data[0]["retain_as_published"], false);

    let r = post_json(
        http,
        &format!("{base}/subscribe"),
        &json!({"topic": "s/two/#", "qos": 1}),
    );
    assert_eq!(
        ok_json(r, "subscribe"),
        json!({"topic": "s/two/#", "qos": 1})
    );
    let v = ok_json(get(http, &format!("{base}/subscriptions")), "subs");
    let topics: Vec<&str> = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|r| r["topic"].as_str())
        .collect();
    assert_eq!(topics, ["s/one", "s/two/#"], "{v}");
    publ.publish("s/two/x", b"on-behalf", QoS::AtLeastOnce, false);
    let p = c
        .recv_publish()
        .expect("delivered through the API's subscription");
    assert_eq!(
        (&*p.topic, p.payload.as_ref()),
        ("s/two/x", &b"on-behalf"[..])
    );
    assert_eq!(p.qos, QoS::AtLeastOnce);
    c.ack(&p);

    let r = post_json(
        http,
        &format!("{base}/unsubscribe"),
        &json!({"topic": "s/two/#"}),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    publ.publish("s/two/y", b"not-for-you", QoS::AtLeastOnce, false);
    publ.publish("s/one", b"control", QoS::AtLeastOnce, false);
    let p = c.recv_publish().expect("the control message");
    assert_eq!(
        (&*p.topic, p.payload.as_ref()),
        ("s/one", &b"control"[..]),
        "nothing on the unsubscribed filter comes first"
    );
    let v = ok_json(get(http, &format!("{base}/subscriptions")), "subs");
    assert_eq!(v["data"].as_array().map(Vec::len), Some(1), "{v}");

    let sub = format!("{base}/subscribe");
    assert_error(&post(http, &sub, b"{nope"), 400, "bad_request");
    assert_error(&post(http, &sub, b"[1,2]"), 400, "bad_request");
    assert_error(
        &post_json(http, &sub, &json!({"qos": 1})),
        400,
        "bad_request",
    );
    assert_error(
        &post_json(http, &sub, &json!({"topic": "a", "qos": 3})),
        400,
        "bad_request",
    );
    assert_error(
        &post_json(http, &sub, &json!({"topic": "a/#/b"})),
        400,
        "bad_request",
    );
    assert_error(
        &post_json(
            http,
            "/api/v1/clients/nobody/subscribe",
            &json!({"topic": "a"}),
        ),
        404,
        "not_found",
    );
    let unsub = format!("{base}/unsubscribe");
    assert_error(&post(http, &unsub, b"not json"), 400, "bad_request");
    assert_error(&post_json(http, &unsub, &json!({})), 400, "bad_request");
    assert_error(
        &post_json(http, &unsub, &json!({"topic": "never/subscribed"})),
        404,
        "not_found",
    );
    assert_error(
        &post_json(
            http,
            "/api/v1/clients/nobody/unsubscribe",
            &json!({"topic": "a"}),
        ),
        404,
        "not_found",
    );
    assert_error(
        &get(http, "/api/v1/clients/nobody/subscriptions"),
        404,
        "not_found",
    );
    assert_error(
        &get(http, &format!("{base}/subscribe")),
        405,
        "method_not_allowed",
    );
}

/// Sessions: listed (connected or not, persistent or not), one by id,
/// deleted: an offline persistent session is gone from the list and a
/// reconnect with clean session 0 finds no session; deleting a connected
/// one closes its socket; unknown ids are 404.
#[test]
fn sessions_list_one_and_delete() {
    let (b, http) = broker(2);
    let (pid, cid) = (b.id_on("ss-p", 1), b.id_on("ss-c", 0));
    let (mut p, present) = Client::connect(b.addr, &pid, false);
    assert!(!present);
    p.subscribe("ss/x", QoS::AtLeastOnce);
    p.disconnect_wait();
    let (mut c, _) = Client::connect(b.addr, &cid, true);

    let v = eventually("sessions listed", || {
        let v = ok_json(get(http, "/api/v1/sessions"), "sessions");
        let (r, n) = rows(&v);
        let ok = n == 2
            && r.iter()
                .any(|s| s["client_id"] == pid && s["connected"] == false);
        ok.then_some(v.clone()).ok_or(v.to_string())
    });
    let (r, _) = rows(&v);
    assert_eq!(ids(&r), vec![cid.clone(), pid.clone()], "sorted: {v}");
    let ps = &r[1];
    assert_eq!(ps["persistent"], true, "{v}");
    assert!(ps["expiry_s"].as_u64() > Some(0), "{v}");
    assert_eq!(ps["subscriptions"], 1, "{v}");
    assert_eq!(ps["shard"], 1, "{v}");
    let cs = &r[0];
    assert_eq!(
        (&cs["connected"], &cs["persistent"]),
        (&json!(true), &json!(false)),
        "{v}"
    );

    // Sessions keep no user name: filtering them by one is refused.
    assert_error(
        &get(http, "/api/v1/sessions?username=u"),
        400,
        "bad_request",
    );
    let v = ok_json(get(http, "/api/v1/sessions?client_id=ss-p"), "filtered");
    assert_eq!(ids(&rows(&v).0), vec![pid.clone()], "{v}");
    let v = ok_json(get(http, "/api/v1/sessions?limit=1&page=2"), "paged");
    assert_eq!(
        (ids(&rows(&v).0), rows(&v).1),
        (vec![pid.clone()], 2),
        "{v}"
    );
    let v = ok_json(get(http, &format!("/api/v1/sessions/{pid}")), "one");
    assert_eq!(v["client_id"], pid);
    assert_eq!(v["connected"], false);
    assert_eq!(v["awaiting_rel"], 0);
    // Offline sessions are not clients.
    assert_error(
        &get(http, &format!("/api/v1/clients/{pid}")),
        404,
        "not_found",
    );

    let r = delete(http, &format!("/api/v1/sessions/{pid}"));
    assert_eq!(r.status, 204, "{}", r.text());
    let v = ok_json(get(http, "/api/v1/sessions"), "after delete");
    assert_eq!(ids(&rows(&v).0), vec![cid.clone()], "{v}");
    assert_error(
        &get(http, &format!("/api/v1/sessions/{pid}")),
        404,
        "not_found",
    );
    assert_error(
        &delete(http, &format!("/api/v1/sessions/{pid}")),
        404,
        "not_found",
    );
    assert_error(&delete(http, "/api/v1/sessions/nobody"), 404, "not_found");
    let (_p, present) = Client::connect(b.addr, &pid, false);
    assert!(!present, "the deleted session is not resumed");

    let r = delete(http, &format!("/api/v1/sessions/{cid}"));
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(c.closed(), "deleting a connected session closes its socket");
}

/// Topics: every subscribed non-shared filter with its subscriber count
/// summed over the shards (two clients on different shards on one filter:
/// 2); a shared subscription is listed with its client's subscriptions, not
/// as a topic, as `meta.count` (the node's distinct non-shared filters) says.
#[test]
fn topics_with_subscriber_counts() {
    let (b, http) = broker(2);
    let (mut t1, _) = Client::connect(b.addr, &b.id_on("tp1", 0), true);
    let (mut t2, _) = Client::connect(b.addr, &b.id_on("tp2", 1), true);
    t1.subscribe("tp/+", QoS::AtLeastOnce);
    t2.subscribe("tp/+", QoS::AtMostOnce);
    t1.subscribe("tp/solo", QoS::AtMostOnce);
    t1.subscribe("$share/g/t", QoS::AtMostOnce);
    t2.subscribe("$share/g/t", QoS::AtMostOnce);
    let v = eventually("topics", || {
        let v = ok_json(get(http, "/api/v1/topics"), "topics");
        (v["meta"]["count"] == 2)
            .then_some(v.clone())
            .ok_or(v.to_string())
    });
    assert_eq!(
        v["data"],
        json!([{"topic": "tp/+", "subscribers": 2}, {"topic": "tp/solo", "subscribers": 1}]),
        "{v}"
    );
    let v = ok_json(get(http, "/api/v1/topics?limit=1&page=2"), "page 2");
    assert_eq!(
        v["data"],
        json!([{"topic": "tp/solo", "subscribers": 1}]),
        "{v}"
    );
}

/// Retained messages, set over MQTT and with `POST /api/v1/publish` (text
/// and base64): listed (with a topic prefix), one by topic (slashes in the
/// path, or percent-encoded), a non-UTF-8 payload comes back base64 and
/// decodes to the same bytes; DELETE then 404, and a new subscriber no
/// longer gets the deleted one.
#[test]
fn retained_list_one_and_delete() {
    let (b, http) = broker(2);
    let (mut m, _) = Client::connect(b.addr, &b.id_on("rt", 1), true);
    // A listing shows the first 1 KiB of a payload; one message, all of it.
    m.publish("big/r", &[b'z'; 3000], QoS::AtLeastOnce, true);
    let v = eventually("big retained", || {
        let v = ok_json(get(http, "/api/v1/retained?topic=big/"), "big");
        (v["meta"]["count"] == 1)
            .then_some(v.clone())
            .ok_or(v.to_string())
    });
    let row = &v["data"][0];
    assert_eq!(
        (&row["bytes"], &row["truncated"]),
        (&json!(3000), &json!(true)),
        "{v}"
    );
    assert_eq!(row["payload"].as_str().map(str::len), Some(1024), "{v}");
    let one = ok_json(get(http, "/api/v1/retained/big/r"), "one big");
    assert_eq!(one["payload"].as_str().map(str::len), Some(3000));
    assert_eq!(one["truncated"], false);
    assert_eq!(delete(http, "/api/v1/retained/big/r").status, 204);
    m.publish("ret/mqtt/a", b"from-mqtt", QoS::AtLeastOnce, true);
    let binary: &[u8] = &[0xff, 0xfe, 0x00, 0x80, b'A'];
    m.publish("ret/bin", binary, QoS::AtLeastOnce, true);
    let r = post_json(
        http,
        "/api/v1/publish",
        &json!({"topic": "ret/api/b", "payload": "from-api", "retain": true}),
    );
    let v = ok_json(r, "publish text");
    let id = v["id"].as_str().expect("id");
    assert!(
        !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{v}"
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let r = post_json(
        http,
        "/api/v1/publish",
        &json!({"topic": "ret/api/c", "payload": b64.encode(b"b64\x01data"),
                "encoding": "base64", "qos": 1, "retain": true}),
    );
    ok_json(r, "publish base64");

    let v = eventually("4 retained", || {
        let v = ok_json(get(http, "/api/v1/retained"), "retained");
        (v["meta"]["count"] == 4)
            .then_some(v.clone())
            .ok_or(v.to_string())
    });
    let topics: Vec<&str> = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|r| r["topic"].as_str())
        .collect();
    assert_eq!(
        topics,
        ["ret/api/b", "ret/api/c", "ret/bin", "ret/mqtt/a"],
        "{v}"
    );
    let v = ok_json(get(http, "/api/v1/retained?topic=ret/api/"), "prefix");
    assert_eq!(rows(&v).1, 2, "{v}");
    assert_eq!(v["data"][0]["topic"], "ret/api/b");
    assert_eq!(v["data"][1]["topic"], "ret/api/c");

    let v = ok_json(get(http, "/api/v1/retained/ret/mqtt/a"), "one");
    assert_eq!(
        v,
        json!({"topic": "ret/mqtt/a", "qos": 1, "payload": "from-mqtt", "encoding": "text", "bytes": 9, "truncated": false})
    );
    let v2 = ok_json(get(http, "/api/v1/retained/ret%2Fmqtt%2Fa"), "one, encoded");
    assert_eq!(v, v2);
    let v = ok_json(get(http, "/api/v1/retained/ret/api/b"), "api text");
    assert_eq!(
        (&v["payload"], &v["qos"]),
        (&json!("from-api"), &json!(0)),
        "{v}"
    );
    let v = ok_json(get(http, "/api/v1/retained/ret/api/c"), "api base64");
    assert_eq!(v["payload"], "b64\u{1}data", "the base64 body decoded: {v}");
    assert_eq!((&v["qos"], &v["bytes"]), (&json!(1), &json!(8)), "{v}");
    let v = ok_json(get(http, "/api/v1/retained/ret/bin"), "binary");
    assert_eq!(v["encoding"], "base64", "{v}");
    assert_eq!(v["bytes"], binary.len());
    let back = b64
        .decode(v["payload"].as_str().expect("payload"))
        .expect("valid base64");
    assert_eq!(back, binary);
    assert_error(&get(http, "/api/v1/retained/ret/none"), 404, "not_found");
    assert_error(&get(http, "/api/v1/retained/ret/%23"), 400, "bad_request");

    let r = delete(http, "/api/v1/retained/ret/mqtt/a");
    assert_eq!(r.status, 204, "{}", r.text());
    assert_error(&get(http, "/api/v1/retained/ret/mqtt/a"), 404, "not_found");
    assert_error(
        &delete(http, "/api/v1/retained/ret/mqtt/a"),
        404,
        "not_found",
    );
    let v = ok_json(get(http, "/api/v1/retained"), "after delete");
    assert_eq!(v["meta"]["count"], 3, "{v}");

    let (mut s, _) = Client::connect(b.addr, &b.id_on("rts", 1), true);
    s.subscribe("ret/#", QoS::AtLeastOnce);
    let mut got = BTreeSet::new();
    while let Some(p) = s.recv_within(Duration::from_millis(800)) {
        if let coremq::codec::Packet::Publish(p) = p {
            assert!(p.retain, "a retained copy: {p:?}");
            s.ack(&p);
            got.insert(p.topic.to_string());
        }
    }
    let want: BTreeSet<String> = ["ret/api/b", "ret/api/c", "ret/bin"]
        .map(String::from)
        .into();
    assert_eq!(got, want, "the deleted retained message is not sent");
}

/// `POST /api/v1/publish` reaches a subscribed MQTT client at the lower of
/// the two QoS; its errors: bad encoding or base64, a wildcard topic,
/// qos 3, a body over max_body_bytes (413), non-JSON (400); GET on it 405;
/// unknown paths 404. Every error body is JSON with error and message.
#[test]
fn publish_endpoint_delivers_and_validates() {
    let (b, http) = broker(2);
    let (mut s, _) = Client::connect(b.addr, &b.id_on("pubs", 1), true);
    s.subscribe("pub/t", QoS::AtLeastOnce);
    s.subscribe("pub/q0", QoS::AtMostOnce);

    let r = post_json(
        http,
        "/api/v1/publish",
        &json!({"topic": "pub/t", "payload": "hello", "qos": 1}),
    );
    ok_json(r, "publish qos 1");
    let p = s.recv_publish().expect("delivered");
    assert_eq!(
        (&*p.topic, p.payload.as_ref(), p.qos),
        ("pub/t", &b"hello"[..], QoS::AtLeastOnce)
    );
    assert!(!p.retain);
    s.ack(&p);
    let b64 = base64::engine::general_purpose::STANDARD;
    let r = post_json(
        http,
        "/api/v1/publish",
        &json!({"topic": "pub/t", "payload": b64.encode([1u8, 2, 0xff]), "encoding": "base64", "qos": 2}),
    );
    ok_json(r, "publish qos 2");
    let p = s.recv_publish().expect("delivered");
    assert_eq!(
        (p.payload.as_ref(), p.qos),
        (&[1u8, 2, 0xff][..], QoS::AtLeastOnce),
        "QoS 2 at a QoS 1 subscription"
    );
    s.ack(&p);
    let r = post_json(
        http,
        "/api/v1/publish",
        &json!({"topic": "pub/q0", "payload": "zero", "qos": 2}),
    );
    ok_json(r, "publish to qos 0");
    let p = s.recv_publish().expect("delivered");
    assert_eq!((&*p.topic, p.qos), ("pub/q0", QoS::AtMostOnce));

    let bad = |v: Value| assert_error(&post_json(http, "/api/v1/publish", &v), 400, "bad_request");
    bad(json!({"topic": "pub/t", "payload": "x", "encoding": "hex"}));
    bad(json!({"topic": "pub/t", "payload": "@@not base64@@", "encoding": "base64"}));
    bad(json!({"topic": "pub/#", "payload": "x"}));
    bad(json!({"topic": "pub/+/t", "payload": "x"}));
    // Topics starting with $ are the broker's own (§4.7.2): refused.
    bad(json!({"topic": "$SYS/brokers/0/version", "payload": "fake"}));
    bad(json!({"topic": "pub/t", "payload": "x", "qos": 3}));
    bad(json!({"topic": "pub/t", "payload": "x", "retain": "yes"}));
    bad(json!({"payload": "x"}));
    assert_error(&post(http, "/api/v1/publish", b"hello"), 400, "bad_request");
    assert_error(&post(http, "/api/v1/publish", b""), 400, "bad_request");

    // Over max_body_bytes (1024): refused on the declared length, before
    // the body is read (so it is not sent: no reset of unread bytes).
    let deadline = Instant::now() + HTTP_DEADLINE;
    let mut c = dial(http);
    let h = head(
        "POST",
        "/api/v1/publish",
        &[("Content-Type", "application/json")],
        Some(2048),
    );
    c.write_all(h.as_bytes()).expect("send head");
    assert_error(&parse(&read_all(&mut c, deadline)), 413, "too_large");
    // And one whose body (just over the limit) is sent in full.
    let big = json!({"topic": "pub/t", "payload": "x".repeat(1100)}).to_string();
    assert_error(
        &post(http, "/api/v1/publish", big.as_bytes()),
        413,
        "too_large",
    );

    assert_error(&get(http, "/api/v1/publish"), 405, "method_not_allowed");
    assert_error(&delete(http, "/api/v1/node"), 405, "method_not_allowed");
    assert_error(&get(http, "/api/v1/nothing"), 404, "not_found");
    assert_error(&get(http, "/nothing"), 404, "not_found");
    assert_error(&get(http, "/api/v2/node"), 404, "not_found");
    s.expect_silence(Duration::from_millis(300));
}

/// `GET /api/v1/alarms`: `active` and `cleared` arrays (none raised on an
/// idle test broker), consistent with the node's `alarms` figure.
#[test]
fn alarms_shape() {
    let (_b, http) = broker(2);
    let v = ok_json(get(http, "/api/v1/alarms"), "alarms");
    let obj = v.as_object().expect("an object");
    let active = obj["active"].as_array().expect("active array");
    assert!(obj["cleared"].is_array(), "cleared array: {v}");
    for a in active
        .iter()
        .chain(obj["cleared"].as_array().into_iter().flatten())
    {
        for k in ["id", "severity", "title", "summary", "raised_at"] {
            assert!(a.get(k).is_some(), "alarm field {k} in {a}");
        }
    }
    let node = ok_json(get(http, "/api/v1/node"), "node");
    assert_eq!(node["alarms"], active.len(), "{node} vs {v}");
}

/// With `api_key` and Basic credentials configured: no credentials is 401
/// with `WWW-Authenticate`, and so are wrong ones; a Bearer key, an
/// X-API-Key and Basic credentials are accepted; `/health/*` needs none.
#[test]
fn credentials_when_configured() {
    let (_b, http) = broker_with(2, |c| {
        c.http.api_key = "k".into();
        c.http.username = "admin".into();
        c.http.password = "pw".into();
    });
    let node = "/api/v1/node";
    let r = get(http, node);
    assert_error(&r, 401, "unauthorized");
    let www = r.header("www-authenticate").expect("WWW-Authenticate");
    assert!(www.starts_with("Basic"), "{www}");
    let b64 = base64::engine::general_purpose::STANDARD;
    let basic_ok = format!("Basic {}", b64.encode("admin:pw"));
    let basic_bad = format!("Basic {}", b64.encode("admin:px"));
    for (h, v) in [
        ("Authorization", "Bearer k"),
        ("X-API-Key", "k"),
        ("Authorization", basic_ok.as_str()),
    ] {
        let r = request(http, "GET", node, &[(h, v)], b"");
        assert_eq!(r.status, 200, "{h}: {v} accepted: {}", r.text());
    }
    for (h, v) in [
        ("Authorization", "Bearer kk"),
        ("Authorization", "Bearer "),
        ("X-API-Key", "K"),
        ("Authorization", basic_bad.as_str()),
        ("Authorization", "Basic !!!"),
        ("Authorization", "k"),
    ] {
        let r = request(http, "GET", node, &[(h, v)], b"");
        assert_error(&r, 401, "unauthorized");
        assert!(r.header("www-authenticate").is_some(), "{h}: {v}");
    }
    // Also on other paths and methods.
    assert_error(&get(http, "/metrics"), 401, "unauthorized");
    assert_error(&post(http, "/api/v1/publish", b"{}"), 401, "unauthorized");
    assert_eq!(get(http, "/health/live").status, 200);
    assert_eq!(get(http, "/health/ready").status, 200);
}

/// A client that sends half a request line and stalls does not hold up
/// other requests (they answer meanwhile), and its request is answered
/// once it completes it; MQTT keeps flowing.
#[test]
fn slow_request_does_not_block_others() {
    let (b, http) = broker(2);
    let mut slow = dial(http);
    slow.write_all(b"GET /api/v1/no").expect("half a line");
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    assert_eq!(get(http, "/health/live").status, 200);
    ok_json(get(http, "/api/v1/node"), "node while one stalls");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    mqtt_flows(&b, "slow");
    slow.write_all(b"de HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("the rest");
    let r = parse(&read_all(&mut slow, Instant::now() + HTTP_DEADLINE));
    assert_eq!(r.status, 200, "{}", r.text());
}

/// More idle connections (70) than `http.max_connections` (64): a request
/// while all slots are taken is answered at once (not left waiting): 503,
/// and 200 for `/health/live` (a liveness probe must not restart a broker
/// whose management port is crowded); MQTT keeps flowing meanwhile, and
/// once they close a request works again.
#[test]
fn many_idle_connections_then_a_request() {
    let (b, http) = broker(2);
    let idle: Vec<TcpStream> = (0..70).map(|_| dial(http)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let r = get(http, "/api/v1/node");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"], "unavailable");
    let r = get(http, "/health/live");
    assert_eq!((r.status, r.json()["status"].clone()), (200, json!("live")));
    mqtt_flows(&b, "idle");
    drop(idle);
    let end = Instant::now() + HTTP_DEADLINE;
    while get(http, "/health/live").status != 200 {
        assert!(
            Instant::now() < end,
            "slots freed once the idle ones closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    ok_json(get(http, "/api/v1/clients"), "clients after the idle ones");
    mqtt_flows(&b, "idle2");
}

/// What a web page on another site could make a browser send is refused:
/// a foreign `Origin` (403), a POST that is not `application/json` (415,
/// no CORS preflight would be granted for it), and without credentials a
/// `Host` that is a name other than localhost (403: DNS rebinding).
#[test]
fn web_pages_elsewhere_are_refused() {
    let (_b, http) = broker(2);
    let raw = |req: String| {
        let mut c = dial(http);
        c.write_all(req.as_bytes()).expect("send");
        parse(&read_all(&mut c, Instant::now() + HTTP_DEADLINE))
    };
    let body = r#"{"topic":"csrf/t","payload":"x"}"#;
    let post = |host: &str, extra: &str| {
        raw(format!(
            "POST /api/v1/publish HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        ))
    };
    let here = format!("127.0.0.1:{}", http.port());
    let json_ct = "Content-Type: application/json\r\n";
    assert_eq!(post(&here, json_ct).status, 200, "same origin, JSON");
    let r = post(&here, "Content-Type: text/plain\r\n");
    assert_error(&r, 415, "unsupported_media_type");
    let r = post(&here, &format!("{json_ct}Origin: http://evil.example\r\n"));
    assert_error(&r, 403, "forbidden");
    let same = format!("{json_ct}Origin: http://{here}\r\n");
    assert_eq!(post(&here, &same).status, 200, "the dashboard's own origin");
    let r = raw(
        "GET /api/v1/node HTTP/1.1\r\nHost: evil.example:18083\r\nConnection: close\r\n\r\n".into(),
    );
    assert_error(&r, 403, "forbidden");
}

/// Garbage bytes get a 400 or a close (never a hang), and the listener
/// and MQTT keep working.
#[test]
fn garbage_gets_400_or_close() {
    let (b, http) = broker(2);
    for junk in [
        &b"\x00\x01 nonsense\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /health/live HTTP/1.1\r\nBad Header\r\n\r\n",
    ] {
        let mut c = dial(http);
        c.write_all(junk).expect("send junk");
        let raw = read_all(&mut c, Instant::now() + HTTP_DEADLINE);
        if !raw.is_empty() {
            let r = parse(&raw);
            assert!(
                r.status == 400 || r.status == 505,
                "{junk:?}: {} {}",
                r.status,
                r.text()
            );
        }
    }
    assert_eq!(get(http, "/health/live").status, 200);
    mqtt_flows(&b, "junk");
}

//! `coremq ctl` against the real broker binary: the broker runs with its
//! management listener (`[http]` on 127.0.0.1:0, the port read from its log
//! line `http listening on 127.0.0.1:PORT`), MQTT clients connect over real
//! sockets, and each check runs the built `coremq ctl --url ...` as a child
//! process, asserting its exit code and output. Waits poll with a bounded
//! deadline; nothing sleeps to make an assertion true.

mod common;

use common::binary::{run_bounded, BrokerProcess, START_WAIT};
use common::Client;
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long one `coremq ctl` may run.
const CTL_WAIT: Duration = Duration::from_secs(30);
/// How long a check polls for the broker to show a change.
const POLL: Duration = Duration::from_secs(10);

/// A broker with its management listener, and that listener's base URL.
struct Node {
    broker: BrokerProcess,
    url: String,
}

impl Node {
    /// Two shards, one MQTT listener and the management listener, both on
    /// free loopback ports; `http_extra` adds keys to `[http]`.
    fn start(http_extra: &str) -> Node {
        let toml = format!(
            "[[listener]]\nbind = \"127.0.0.1:0\"\n\n\
             [http]\nenabled = true\nbind = \"127.0.0.1:0\"\n{http_extra}\n"
        );
        let broker = BrokerProcess::start_with_config(2, Some(&toml));
        assert!(
            broker.wait_log(START_WAIT, |_| broker.http_addr().is_some()),
            "no `http listening on` line in the broker's log:\n{}",
            broker.log()
        );
        let http = broker.http_addr().expect("http address");
        Node {
            url: format!("http://{http}"),
            broker,
        }
    }

    fn mqtt(&self) -> SocketAddr {
        self.broker.addr()
    }

    /// `coremq ctl --url URL ARGS...`: (exit code, stdout, stderr).
    fn ctl(&self, args: &[&str]) -> (Option<i32>, String, String) {
        ctl_at(&self.url, args, &[])
    }

    /// As [`ctl`](Self::ctl), expecting exit 0; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.ctl(args);
        assert_eq!(
            code,
            Some(0),
            "coremq ctl {args:?} failed\nstdout: {out}\nstderr: {err}\nbroker log:\n{}",
            self.broker.log()
        );
        out
    }

    /// Poll `ctl ARGS` until its stdout satisfies `f` (exit 0 each time);
    /// panics with the last output after [`POLL`].
    fn until(&self, args: &[&str], what: &str, f: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + POLL;
        loop {
            let out = self.ok(args);
            if f(&out) {
                return out;
            }
            assert!(
                Instant::now() < end,
                "coremq ctl {args:?}: {what} not seen within {POLL:?}; last output:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `coremq ctl --url URL ARGS...` with extra environment variables; the
/// caller's COREMQ_* variables are removed so they cannot change the result.
fn ctl_at(url: &str, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coremq"));
    cmd.arg("ctl").arg("--url").arg(url).args(args);
    cmd.env_remove("COREMQ_URL").env_remove("COREMQ_API_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_bounded(cmd, CTL_WAIT)
}

/// The value after `key` on the line of a key/value block that starts with it.
fn value_of<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines().find_map(|l| {
        l.strip_prefix(key)
            .filter(|rest| rest.starts_with("  "))
            .map(str::trim)
    })
}

/// The first column of each row of a table (header and footer left out).
fn first_column(out: &str) -> Vec<String> {
    out.lines()
        .skip(1)
        .filter(|l| !l.starts_with("page ") && !l.is_empty())
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

/// `status` exits 0 and its `connections` line counts the two MQTT
/// clients connected (its first number is 2), with a row per shard.
#[test]
fn status_counts_the_connections() {
    let node = Node::start("");
    let (_a, _) = Client::connect(node.mqtt(), "ctl-status-a", true);
    let (_b, _) = Client::connect(node.mqtt(), "ctl-status-b", true);
    let out = node.until(&["status"], "connections 2", |out| {
        value_of(out, "connections").and_then(|v| v.split_whitespace().next()) == Some("2")
    });
    assert!(value_of(&out, "version").is_some(), "{out}");
    let shard_rows = out.lines().skip_while(|l| !l.starts_with("SHARD")).count();
    assert_eq!(shard_rows, 3, "a header and two shard rows:\n{out}");
}

/// `clients list` lists both connected ids in a table with the documented
/// columns and footer; `clients list --json` is the API's JSON with
/// meta.count 2; `clients show` prints one of them; `sessions list` has both.
#[test]
fn clients_list_table_and_json() {
    let node = Node::start("");
    let (mut a, _) = Client::connect(node.mqtt(), "ctl-list-a", true);
    let (_b, _) = Client::connect(node.mqtt(), "ctl-list-b", true);
    a.subscribe("ctl/#", coremq::codec::QoS::AtLeastOnce);
    let out = node.until(&["clients", "list"], "both clients", |out| {
        first_column(out) == ["ctl-list-a", "ctl-list-b"]
    });
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .filter(|c| !c.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(
        header,
        [
            "CLIENT ID",
            "USERNAME",
            "PEER",
            "SHARD",
            "PROTO",
            "KEEPALIVE",
            "SUBS",
            "INFLIGHT",
            "QUEUED"
        ],
        "{out}"
    );
    assert!(out.trim_end().ends_with("2 clients"), "{out}");

    let json = node.ok(&["clients", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("clients list --json is not JSON ({e}):\n{json}"));
    assert_eq!(v["meta"]["count"], 2, "{json}");
    assert_eq!(v["data"].as_array().map(Vec::len), Some(2), "{json}");

    let out = node.ok(&["clients", "list", "--client-id", "list-b"]);
    assert_eq!(first_column(&out), ["ctl-list-b"], "{out}");

    let out = node.ok(&["clients", "show", "ctl-list-a"]);
    assert_eq!(value_of(&out, "client id"), Some("ctl-list-a"), "{out}");
    assert_eq!(value_of(&out, "protocol"), Some("3.1.1"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("ctl/#")), "{out}");

    let out = node.ok(&["sessions", "list"]);
    assert_eq!(first_column(&out), ["ctl-list-a", "ctl-list-b"], "{out}");
}

/// `clients kick ID` exits 0 printing `kicked ID`, the client's socket is
/// closed and it leaves the list; kicking an unknown id exits 1 with the
/// API's `404 not_found` error.
#[test]
fn kick_closes_the_connection_and_unknown_ids_are_not_found() {
    let node = Node::start("");
    let (mut a, _) = Client::connect(node.mqtt(), "ctl-kick-a", true);
    let (_b, _) = Client::connect(node.mqtt(), "ctl-kick-b", true);
    node.until(&["clients", "list"], "both clients", |out| {
        first_column(out).len() == 2
    });
    let out = node.ok(&["clients", "kick", "ctl-kick-a"]);
    assert_eq!(out.trim(), "kicked ctl-kick-a");
    assert!(a.closed(), "the kicked client's socket stayed open");
    node.until(&["clients", "list"], "only ctl-kick-b", |out| {
        first_column(out) == ["ctl-kick-b"]
    });

    let (code, out, err) = node.ctl(&["clients", "kick", "no-such-client"]);
    assert_eq!(code, Some(1), "stdout: {out}\nstderr: {err}");
    assert!(
        err.starts_with("coremq ctl: 404 not_found: "),
        "stderr: {err}"
    );
}

/// `publish t/x hello --retain` exits 0; `retained list` then shows t/x and
/// `retained show t/x` its payload; after `retained delete t/x` it is gone
/// from the list and `retained show` exits 1 with not_found.
#[test]
fn publish_retained_list_and_delete() {
    let node = Node::start("");
    let out = node.ok(&["publish", "t/x", "hello", "--retain", "--qos", "1"]);
    assert!(out.starts_with("published to t/x"), "{out}");
    let out = node.until(&["retained", "list"], "t/x", |out| {
        first_column(out).iter().any(|t| t == "t/x")
    });
    assert!(
        out.lines()
            .any(|l| l.starts_with("t/x") && l.ends_with("hello")),
        "{out}"
    );
    let out = node.ok(&["retained", "show", "t/x"]);
    assert!(out.ends_with("payload:\nhello\n"), "{out}");
    let out = node.ok(&["retained", "list", "--topic", "t/"]);
    assert_eq!(first_column(&out), ["t/x"], "{out}");

    let out = node.ok(&["retained", "delete", "t/x"]);
    assert_eq!(out.trim(), "deleted retained t/x");
    node.until(&["retained", "list"], "t/x gone", |out| {
        !first_column(out).iter().any(|t| t == "t/x")
    });
    let (code, _, err) = node.ctl(&["retained", "show", "t/x"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("404 not_found"), "{err}");
}

/// With an `api_key` configured, a call without credentials exits 1 with
/// `401 unauthorized`; `--api-key` and `COREMQ_API_KEY` both get through.
#[test]
fn api_key_is_sent_when_given() {
    let node = Node::start("api_key = \"ctl-test-key\"");
    let (code, _, err) = node.ctl(&["status"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("401 unauthorized"), "{err}");
    node.ok(&["--api-key", "ctl-test-key", "status"]);
    let (code, out, err) = ctl_at(
        &node.url,
        &["status"],
        &[("COREMQ_API_KEY", "ctl-test-key")],
    );
    assert_eq!(code, Some(0), "stdout: {out}\nstderr: {err}");
}

/// `--url` naming a closed port exits 1 with the "cannot reach" message
/// (no broker is needed for this one).
#[test]
fn a_closed_port_cannot_be_reached() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let (code, out, err) = ctl_at(&url, &["status"], &[]);
    assert_eq!(code, Some(1), "stdout: {out}\nstderr: {err}");
    assert!(
        err.contains(&format!("cannot reach the broker's HTTP listener at {url}"))
            && err.contains("(is [http] enabled?)"),
        "stderr: {err}"
    );
    assert!(out.is_empty(), "{out}");
}

/// Bad flags are usage errors: exit 2, nothing sent.
#[test]
fn bad_flags_exit_2() {
    for args in [
        &["publish", "t", "p", "--qos", "3"][..],
        &["clients", "list", "--page", "0"],
        &["bogus"],
    ] {
        let (code, _, err) = ctl_at("http://127.0.0.1:9", args, &[]);
        assert_eq!(code, Some(2), "{args:?}: {err}");
    }
    let (code, _, err) = ctl_at("https://127.0.0.1:9", &["status"], &[]);
    assert_eq!(code, Some(2), "{err}");
}

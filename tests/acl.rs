//! The ACL (`[acl]`) over real sockets, at 1 and 2 shards (clients homed on
//! the last shard arrive by handoff): the rule matrix (who x access, `%c`,
//! `%u`, `eq`, first match wins, `no_match` both ways, `$SYS`, shared
//! subscriptions), SUBACK failure codes [MQTT-3.9.3-1] [MQTT-3.9.3-2],
//! denied publishes acknowledged and dropped (3.1.1) or answered 0x87
//! (MQTT 5), wills, retained-on-subscribe, counters, reload of `acl.file`
//! through `BrokerHandle::reload`, and a bad file refusing the start.

mod common;

use common::binary::TempFile;
use common::{config, connect_packet, start_with, Client, TestBroker};
use coremq::codec::{ProtocolVersion, QoS, Reason, SubAckCode};
use coremq::config::Config;
use coremq::Hooks;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(300);

/// The rules most tests use, in order (numbers are what logs call them).
const RULES: &str = r##"
[[acl.rule]]   # 1
permission = "allow"
who = { username = "admin" }
access = "subscribe"
topics = ["$SYS/#"]
[[acl.rule]]   # 2: never matches a loopback client
permission = "deny"
who = { ipaddr = "10.0.0.0/8" }
access = "pubsub"
topics = ["#"]
[[acl.rule]]   # 3
permission = "allow"
who = { ipaddr = "127.0.0.0/8" }
access = "publish"
topics = ["ip/#"]
[[acl.rule]]   # 4: before rule 5, so it wins for mallory
permission = "deny"
who = { username = "mallory" }
access = "pubsub"
topics = ["open/#"]
[[acl.rule]]   # 5
permission = "allow"
who = "all"
access = "pubsub"
topics = ["open/#", "devices/%c/#", "users/%u/#"]
[[acl.rule]]   # 6
permission = "allow"
who = { clientid = "feeder" }
access = "publish"
topics = ["feed"]
[[acl.rule]]   # 7
permission = "allow"
who = "all"
access = "subscribe"
topics = ["feed"]
[[acl.rule]]   # 8
permission = "deny"
who = "all"
access = "subscribe"
topics = ["eq #"]
"##;

fn acl_config(cores: usize, no_match: &str, rules: &str) -> Config {
    let mut cfg = config(cores);
    let acl = Config::from_toml(&format!("[acl]\nno_match = \"{no_match}\"\n{rules}"))
        .expect("ACL config parses")
        .acl;
    cfg.acl = acl;
    cfg
}

fn start(cores: usize, no_match: &str, rules: &str) -> TestBroker {
    start_with(acl_config(cores, no_match, rules), Hooks::new())
}

/// A 3.1.1 client with this id and username, homed on `shard`.
fn user(b: &TestBroker, id: &str, name: Option<&str>, shard: usize) -> Client {
    let id = if id == "feeder" {
        id.to_string()
    } else {
        b.id_on(id, shard)
    };
    let mut c = connect_packet(&id, true);
    c.username = name.map(Into::into);
    let (client, ack) = Client::connect_with(b.addr, c);
    assert_eq!(ack.code, Reason::SUCCESS, "CONNACK for {id}");
    client
}

fn granted(code: SubAckCode) -> bool {
    matches!(code, SubAckCode::Granted(_))
}

/// Publish on `topic` from `from` (QoS 1) and check whether it reaches `to`
/// (already subscribed): waits for it when it should arrive, and for a
/// short silence when it should not.
fn check_delivery(from: &mut Client, to: &mut Client, topic: &str, want: bool) {
    from.publish(topic, b"m", QoS::AtLeastOnce, false);
    if !want {
        to.expect_silence(QUIET);
        return;
    }
    let p = to
        .recv_publish()
        .unwrap_or_else(|| panic!("{topic} not delivered"));
    assert_eq!(&*p.topic, topic);
    to.ack(&p);
}

#[test]
fn subscribe_matrix() {
    for cores in [1, 2] {
        for no_match in ["allow", "deny"] {
            let b = start(cores, no_match, RULES);
            let last = cores - 1;
            let mut cs = [
                user(&b, "alice", Some("alice"), last),
                user(&b, "mallory", Some("mallory"), 0),
                user(&b, "admin", Some("admin"), last),
                user(&b, "anon", None, 0),
            ];
            let (alice, mallory, admin, anon) = (0, 1, 2, 3);
            let open = no_match == "allow";
            let own_devices = format!("devices/{}/#", b.id_on("alice", last));
            let mut refusals = 0;
            for (c, filter, want) in [
                (alice, "open/#", true),
                (alice, "open/+/x", true),
                (alice, "$share/g/open/#", true),
                (mallory, "open/#", false),
                (mallory, "$share/g/open/#", false),
                (mallory, "feed", true),
                (admin, "$SYS/#", true),
                (admin, "$SYS/broker/+", true),
                // no_match = "allow" does not open $SYS.
                (alice, "$SYS/#", false),
                (anon, "$SYS/broker", false),
                // Rule 8 (eq #) refuses "#" alone; "#" never reaches $SYS.
                (alice, "#", false),
                (alice, "other/#", open),
                (alice, "devices/+/t", open),
                (alice, &own_devices, true),
                (alice, "users/alice/#", true),
                (alice, "users/bob/#", open),
                // No username: users/%u/# cannot cover users//x.
                (anon, "users//x", open),
                // Publish-only rule 3 grants no subscription.
                (alice, "ip/x", open),
            ] {
                let code = cs[c].subscribe(filter, QoS::AtLeastOnce);
                assert_eq!(
                    granted(code),
                    want,
                    "{cores} shards, no_match {no_match}: {filter:?} got {code:?}"
                );
                if !want {
                    refusals += 1;
                    // 3.1.1 has one failure code [MQTT-3.9.3-2].
                    assert_eq!(code, SubAckCode::Failure, "{filter}");
                }
            }
            let denied = b.wait_metrics(|m| m.acl_denied_subscribe >= refusals);
            assert_eq!(denied.acl_denied_subscribe, refusals, "{cores} {no_match}");
        }
    }
}

#[test]
fn publish_matrix() {
    for cores in [1, 2] {
        for no_match in ["allow", "deny"] {
            let b = start(cores, no_match, RULES);
            let last = cores - 1;
            let open = no_match == "allow";
            // The subscriber may read everything it needs here: rule 5 and 7,
            // and "#"-free filters under no_match. It is alice.
            let mut sub = user(&b, "alice", Some("alice"), last);
            let sub_id = b.id_on("alice", last);
            let mut cs = [
                user(&b, "feeder", None, 0),
                user(&b, "mallory", Some("mallory"), 0),
                user(&b, "other", Some("bob"), 0),
            ];
            let (feeder, mallory, other) = (0, 1, 2);
            let other_id = b.id_on("other", 0);
            for f in ["open/#", "feed"] {
                assert!(granted(sub.subscribe(f, QoS::AtLeastOnce)), "{f}");
            }
            let mut expect_denied = 0;
            for (from, topic, want) in [
                (other, "open/a", true),
                (mallory, "open/a", false),
                (feeder, "feed", true),
                (other, "feed", open),
            ] {
                check_delivery(&mut cs[from], &mut sub, topic, want);
                expect_denied += u64::from(!want);
            }
            let [_, mallory, other] = &mut cs;
            // ip (rule 3) and %c / %u rules, read back by a second subscription.
            let own = format!("devices/{other_id}/t");
            for f in ["ip/#", "devices/#", "users/#"] {
                let code = sub.subscribe(f, QoS::AtLeastOnce);
                assert_eq!(granted(code), open, "{f}");
            }
            if open {
                check_delivery(other, &mut sub, "ip/x", true);
                check_delivery(other, &mut sub, &own, true);
                check_delivery(other, &mut sub, "users/bob/x", true);
            } else {
                // The subscriber may read its own devices/%c and users/%u.
                let mine = format!("devices/{sub_id}/#");
                assert!(granted(sub.subscribe(&mine, QoS::AtLeastOnce)));
                assert!(granted(sub.subscribe("users/alice/#", QoS::AtLeastOnce)));
                let mut again = user(&b, "alice2", Some("alice"), 0);
                check_delivery(&mut again, &mut sub, "users/alice/x", true);
                // other's own devices topic is allowed to publish, but alice
                // cannot read it; mallory's on another's id is denied.
                other.publish(&own, b"m", QoS::AtLeastOnce, false);
                sub.expect_silence(QUIET);
                mallory.publish(
                    &format!("devices/{sub_id}/t"),
                    b"m",
                    QoS::AtLeastOnce,
                    false,
                );
                sub.expect_silence(QUIET);
                expect_denied += 1;
                // Rule 3 (127.0.0.0/8) lets anyone here publish to ip/#;
                // nothing else does: only the second is denied.
                other.publish("ip/x", b"m", QoS::AtLeastOnce, false);
                other.publish("nope/x", b"m", QoS::AtLeastOnce, false);
                expect_denied += 1;
            }
            let m = b.wait_metrics(|m| m.acl_denied_publish >= expect_denied);
            assert_eq!(m.acl_denied_publish, expect_denied, "{cores} {no_match}");
        }
    }
}

/// A denied QoS 1/2 PUBLISH from a 3.1.1 client completes its flow as usual
/// and goes nowhere; QoS 0 is dropped.
#[test]
fn denied_publish_v311_is_acknowledged_and_dropped() {
    for cores in [1, 2] {
        let b = start(cores, "allow", RULES);
        let mut sub = user(&b, "s", Some("alice"), cores - 1);
        assert!(granted(sub.subscribe("open/#", QoS::ExactlyOnce)));
        let mut mallory = user(&b, "m", Some("mallory"), 0);
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            // Client::publish asserts PUBACK, or PUBREC then PUBCOMP.
            mallory.publish("open/x", b"no", qos, false);
        }
        sub.expect_silence(QUIET);
        let m = b.wait_metrics(|m| m.acl_denied_publish >= 3);
        assert_eq!(m.acl_denied_publish, 3);
        // Retained too: not stored, so a later subscriber gets nothing.
        mallory.publish("open/r", b"no", QoS::AtLeastOnce, true);
        let mut late = user(&b, "late", Some("alice"), 0);
        assert!(granted(late.subscribe("open/r", QoS::AtLeastOnce)));
        late.expect_silence(QUIET);
    }
}

/// MQTT 5: a denied PUBLISH gets PUBACK / PUBREC 0x87 Not authorized, and a
/// denied filter SUBACK 0x87 [MQTT-3.9.3-1].
#[test]
fn denied_publish_and_subscribe_v5_say_not_authorized() {
    for cores in [1, 2] {
        let b = start(cores, "allow", RULES);
        let id = b.id_on("m5", cores - 1);
        let mut c = connect_packet(&id, true);
        c.version = ProtocolVersion::V5;
        c.username = Some("mallory".into());
        let (mut m, ack) = Client::connect_with(b.addr, c);
        assert_eq!(ack.code, Reason::SUCCESS);
        let codes = m.subscribe_many(&[("open/#", QoS::AtLeastOnce), ("feed", QoS::AtLeastOnce)]);
        assert_eq!(
            codes,
            [
                SubAckCode::Refused(Reason::NOT_AUTHORIZED),
                SubAckCode::Granted(QoS::AtLeastOnce)
            ]
        );
        for (qos, pkid) in [(QoS::AtLeastOnce, 1), (QoS::ExactlyOnce, 2)] {
            let p = common::publish_packet("open/x", b"no", qos, pkid, false, false);
            assert_eq!(m.publish_for_reason(p), Reason::NOT_AUTHORIZED, "{qos:?}");
        }
        // Allowed: the usual answer (no subscriber: 0x10).
        let p = common::publish_packet("devices/x", b"ok", QoS::AtLeastOnce, 3, false, false);
        let allowed = m.publish_for_reason(p);
        assert!(!allowed.is_error(), "{allowed:?}");
        let metrics = b.wait_metrics(|m| m.acl_denied_publish >= 2);
        assert_eq!(metrics.acl_denied_publish, 2);
        assert_eq!(metrics.acl_denied_subscribe, 1);
    }
}

/// A will is checked as a publish when it is due: denied, it is dropped and
/// counted.
#[test]
fn wills_are_checked_when_published() {
    let rules = r#"
[[acl.rule]]
permission = "allow"
who = { username = "ok" }
access = "publish"
topics = ["wills/#"]
[[acl.rule]]
permission = "allow"
who = "all"
access = "subscribe"
topics = ["wills/#"]
"#;
    for cores in [1, 2] {
        let b = start(cores, "deny", rules);
        let mut sub = user(&b, "s", None, 0);
        assert!(granted(sub.subscribe("wills/#", QoS::AtLeastOnce)));
        for (name, want) in [("ok", true), ("nope", false)] {
            let mut c = connect_packet(&b.id_on(name, cores - 1), true);
            c.username = Some(name.into());
            c.will = Some(common::will(
                &format!("wills/{name}"),
                "gone",
                QoS::AtLeastOnce,
                false,
            ));
            let (client, _) = Client::connect_with(b.addr, c);
            drop(client); // no DISCONNECT: the will is due
            let got = sub.recv_publish();
            assert_eq!(got.is_some(), want, "{name}: {got:?}");
            if let Some(p) = got {
                assert_eq!(&*p.topic, "wills/ok");
                sub.ack(&p);
            }
        }
        let m = b.wait_metrics(|m| m.acl_denied_will >= 1);
        assert_eq!((m.acl_denied_will, m.wills_published), (1, 1));
    }
}

/// Retained messages on subscribe follow the subscribe decision.
#[test]
fn retained_messages_follow_the_subscribe_decision() {
    let b = start(2, "allow", RULES);
    let mut p = user(&b, "p", Some("bob"), 0);
    p.publish("open/r", b"kept", QoS::AtLeastOnce, true);
    let mut mallory = user(&b, "m", Some("mallory"), 1);
    assert_eq!(
        mallory.subscribe("open/#", QoS::AtLeastOnce),
        SubAckCode::Failure
    );
    mallory.expect_silence(QUIET);
    let mut alice = user(&b, "a", Some("alice"), 1);
    assert!(granted(alice.subscribe("open/#", QoS::AtLeastOnce)));
    let got = alice.recv_publish().expect("retained");
    assert!(got.retain && &*got.topic == "open/r");
}

fn file_rule(permission: &str) -> String {
    format!(
        "[[rule]]\npermission = \"{permission}\"\nwho = \"all\"\naccess = \"publish\"\ntopics = [\"r/#\"]\n"
    )
}

fn start_with_file(cores: usize, file: &TempFile) -> TestBroker {
    let mut cfg = config(cores);
    cfg.acl.file = file.path.display().to_string();
    // Everyone may read r/#; the file decides who may publish there.
    let reads = "[[acl.rule]]\npermission = \"allow\"\nwho = \"all\"\naccess = \"subscribe\"\ntopics = [\"r/#\"]\n";
    cfg.acl.rule = Config::from_toml(reads).unwrap().acl.rule;
    start_with(cfg, Hooks::new())
}

/// `BrokerHandle::reload` (SIGHUP in the binary) re-reads `acl.file`: the
/// same connection's next publish follows the new rules (its cached
/// decision is dropped); a bad file keeps the rules in force.
#[test]
fn reload_reads_the_file_again_and_keeps_the_old_rules_on_error() {
    for cores in [1, 2] {
        let file = TempFile::new("coremq-acl", ".toml", &file_rule("allow"));
        let b = start_with_file(cores, &file);
        let handle = b.handle.as_ref().expect("running");
        let mut sub = user(&b, "s", None, cores - 1);
        assert!(granted(sub.subscribe("r/#", QoS::AtLeastOnce)));
        let mut p = user(&b, "p", None, 0);
        check_delivery(&mut p, &mut sub, "r/1", true);
        std::fs::write(&file.path, file_rule("deny")).unwrap();
        let report = handle.reload();
        assert!(report.ok(), "{report:?}");
        check_delivery(&mut p, &mut sub, "r/1", false);
        // A broken file: reported, and the deny stays.
        std::fs::write(&file.path, "[[rule]]\npermission = \"allow\"\n").unwrap();
        let report = handle.reload();
        let acl = report
            .results
            .iter()
            .find(|(n, _)| *n == "acl")
            .expect("acl reloader");
        let why = acl.1.clone().expect_err("bad file refused");
        assert!(why.contains(&file.path.display().to_string()), "{why}");
        check_delivery(&mut p, &mut sub, "r/1", false);
        std::fs::write(&file.path, file_rule("allow")).unwrap();
        assert!(handle.reload().ok());
        check_delivery(&mut p, &mut sub, "r/1", true);
        let m = b.wait_metrics(|m| m.acl_denied_publish >= 2);
        assert_eq!(m.acl_denied_publish, 2);
    }
}

/// Subscriptions follow the rules in force: a reload that takes away the
/// right to subscribe removes the connected subscriber's subscription
/// (the tick checks every connected session, within a second), and a
/// persistent session resumed by a user the rules do not allow loses it.
#[test]
fn subscriptions_the_rules_no_longer_allow_are_removed() {
    let reads = |who: &str| {
        format!(
            "[[rule]]\npermission = \"allow\"\nwho = {who}\naccess = \"subscribe\"\ntopics = [\"news/#\"]\n"
        )
    };
    for cores in [1, 2] {
        let file = TempFile::new("coremq-acl-revoke", ".toml", &reads("\"all\""));
        let mut cfg = acl_config(cores, "deny", "");
        cfg.acl.file = file.path.display().to_string();
        cfg.acl.rule = Config::from_toml(
            "[[acl.rule]]\npermission = \"allow\"\nwho = \"all\"\naccess = \"publish\"\ntopics = [\"#\"]\n",
        )
        .unwrap()
        .acl
        .rule;
        let b = start_with(cfg, Hooks::new());
        let handle = b.handle.as_ref().expect("running");
        let mut p = user(&b, "p", None, 0);
        // Connected: revoked by a reload.
        let mut sub = user(&b, "s", Some("reader"), cores - 1);
        assert!(granted(sub.subscribe("news/#", QoS::AtLeastOnce)));
        check_delivery(&mut p, &mut sub, "news/1", true);
        std::fs::write(&file.path, reads("{ username = \"editor\" }")).unwrap();
        assert!(handle.reload().ok());
        b.wait_metrics(|m| m.acl_revoked_subscriptions >= 1);
        check_delivery(&mut p, &mut sub, "news/2", false);
        // Persistent: subscribed as editor, resumed as reader.
        let id = b.id_on("pers", cores - 1);
        let login = |name: &str| {
            let mut c = connect_packet(&id, false);
            c.username = Some(name.into());
            let (client, ack) = Client::connect_with(b.addr, c);
            assert_eq!(ack.code, Reason::SUCCESS);
            client
        };
        let mut editor = login("editor");
        assert!(granted(editor.subscribe("news/#", QoS::AtLeastOnce)));
        check_delivery(&mut p, &mut editor, "news/3", true);
        editor.disconnect_wait();
        let mut reader = login("reader");
        check_delivery(&mut p, &mut reader, "news/4", false);
        let m = b.wait_metrics(|m| m.acl_revoked_subscriptions >= 2);
        assert_eq!(m.acl_revoked_subscriptions, 2);
    }
}

/// A bad ACL file at start: the broker does not start, and the error names
/// the file and the rule; the binary exits 2.
#[test]
fn bad_file_at_start_is_a_configuration_error() {
    let bad = format!(
        "{}{}",
        file_rule("allow"),
        file_rule("allow").replace("r/#", "r/#/x")
    );
    let file = TempFile::new("coremq-acl-bad", ".toml", &bad);
    let mut cfg = config(1);
    cfg.acl.file = file.path.display().to_string();
    let err = match coremq::Broker::new(cfg).start() {
        Ok(_) => panic!("started with a bad ACL file"),
        Err(e) => e.to_string(),
    };
    let want = format!("acl.file {}: rule[2]: topics[1]", file.path.display());
    assert!(err.contains(&want), "{err}");
    let toml = TempFile::new(
        "coremq-acl-cfg",
        ".toml",
        &format!("[acl]\nfile = {:?}\n", file.path.display().to_string()),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coremq"))
        .args(["--listen", "127.0.0.1:0", "--cores", "1", "--config"])
        .arg(&toml.path)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&want), "{stderr}");
}

/// Without an `[acl]` section nothing changes: $SYS and "#" are open.
#[test]
fn no_rules_no_checks() {
    let b = start_with(config(1), Hooks::new());
    let mut c = user(&b, "c", None, 0);
    for f in ["#", "$SYS/#"] {
        assert!(granted(c.subscribe(f, QoS::AtMostOnce)), "{f}");
    }
    assert_eq!(b.metrics().acl_denied_subscribe, 0);
}

//! Interoperability with the Eclipse Mosquitto command-line clients
//! (`mosquitto_pub`, `mosquitto_sub`, Debian package mosquitto-clients)
//! against the `coremq` binary, each scenario with one and two shards.
//!
//! Subscribers run with `-d` (debug lines on stdout, so the test sees the
//! SUBACK before publishing) and `-F 'MSG %t %q %r %p'` (topic, QoS, retain,
//! payload), always bounded by `-W`; publishers must exit 0 (their QoS flow
//! completed) within a few seconds. Every process is killed when its test
//! ends. Client ids are chosen so that, with two shards, publishers live on
//! shard 0 and subscribers on shard 1: every delivery crosses shards.

mod common;
use common::binary::Proc;
use common::mosquitto::{self, lines, Clients};
use std::time::Duration;

/// What any expected event may take.
const WAIT: Duration = mosquitto::WAIT;
/// Hard bound on every mosquitto_sub (`-W`, seconds).
const SUB_LIMIT_S: &str = "8";

/// Run `f` against a fresh broker binary with one, two and four shards.
fn each_cores(f: impl Fn(&Ctx)) {
    let clients = Clients {
        version: &[],
        sub_limit_s: SUB_LIMIT_S,
        pub_prefix: "mpub-".into(),
        sub_prefix: "msub-".into(),
        describe: |cores| format!("cores {cores}"),
        external: false,
    };
    mosquitto::each_broker(clients, f);
}

/// Subscribers print `MSG topic qos retain payload`, kept as the line.
type Ctx = mosquitto::Ctx<String>;

#[test]
fn mosquitto_qos_levels() {
    each_cores(|cx| {
        for q in ["0", "1", "2"] {
            let topic = format!("interop/qos{q}");
            let sub = cx.sub(&cx.sub_id(&format!("q{q}")), &["-q", q, "-t", &topic]);
            let payloads = lines(&format!("q{q}-"), 5);
            cx.publish_lines(
                &cx.pub_id(&format!("q{q}")),
                &["-q", q, "-t", &topic],
                &payloads,
            );
            let want: Vec<String> = payloads
                .iter()
                .map(|p| format!("MSG {topic} {q} 0 {p}"))
                .collect();
            assert_eq!(sub.expect(5), want, "[cores {}] QoS {q}", cx.cores());
        }
        // The delivery QoS is the lower of the publish's and the subscription's.
        let sub = cx.sub(&cx.sub_id("down"), &["-q", "1", "-t", "interop/down"]);
        cx.publish(
            &cx.pub_id("down"),
            &["-q", "2", "-t", "interop/down", "-m", "at2"],
        );
        assert_eq!(
            sub.expect(1),
            ["MSG interop/down 1 0 at2"],
            "[cores {}] QoS 2 → 1",
            cx.cores()
        );
        let sub = cx.sub(&cx.sub_id("up"), &["-q", "2", "-t", "interop/up"]);
        cx.publish(
            &cx.pub_id("up"),
            &["-q", "0", "-t", "interop/up", "-m", "at0"],
        );
        assert_eq!(
            sub.expect(1),
            ["MSG interop/up 0 0 at0"],
            "[cores {}] QoS 0 → 2",
            cx.cores()
        );
    });
}

#[test]
fn mosquitto_mqtt31_clients() {
    each_cores(|cx| {
        let sub = cx.sub(
            &cx.sub_id("v31"),
            &["-V", "mqttv31", "-q", "2", "-t", "interop/v31/#"],
        );
        for q in ["0", "1", "2"] {
            let topic = format!("interop/v31/q{q}");
            cx.publish(
                &cx.pub_id("v31"),
                &[
                    "-V",
                    "mqttv31",
                    "-q",
                    q,
                    "-t",
                    &topic,
                    "-m",
                    &format!("v31-{q}"),
                ],
            );
        }
        let want = [
            "MSG interop/v31/q0 0 0 v31-0",
            "MSG interop/v31/q1 1 0 v31-1",
            "MSG interop/v31/q2 2 0 v31-2",
        ];
        assert_eq!(sub.expect(3), want, "[cores {}] MQTT 3.1", cx.cores());
    });
}

#[test]
fn mosquitto_retained_set_and_cleared() {
    each_cores(|cx| {
        let topic = "interop/retained";
        let p = cx.pub_id("ret");
        cx.publish(&p, &["-r", "-q", "1", "-t", topic, "-m", "old"]);
        cx.publish(&p, &["-r", "-q", "1", "-t", topic, "-m", "kept"]);
        // A later subscriber gets the last retained message, flagged retained.
        let sub = cx.sub(&cx.sub_id("ret1"), &["-q", "1", "-t", topic]);
        assert_eq!(
            sub.expect(1),
            ["MSG interop/retained 1 1 kept"],
            "[cores {}] retained",
            cx.cores()
        );
        // Also through a wildcard, at the lower subscription QoS.
        let sub = cx.sub(&cx.sub_id("ret2"), &["-q", "0", "-t", "interop/+"]);
        assert_eq!(
            sub.expect(1),
            ["MSG interop/retained 0 1 kept"],
            "[cores {}] retained +",
            cx.cores()
        );
        // An empty retained publish clears it.
        cx.publish(&p, &["-r", "-n", "-q", "1", "-t", topic]);
        let sub = cx.sub(&cx.sub_id("ret3"), &["-q", "1", "-t", topic]);
        assert_eq!(
            sub.quiet(),
            Vec::<String>::new(),
            "[cores {}] cleared",
            cx.cores()
        );
    });
}

#[test]
fn mosquitto_last_will() {
    each_cores(|cx| {
        let topic = "interop/will";
        let watcher = cx.sub(&cx.sub_id("watch"), &["-q", "1", "-t", topic]);
        // A clean exit (-E: DISCONNECT after the SUBACK) discards the will.
        let polite = &cx.pub_id("polite");
        let mut c = cx.base("mosquitto_sub", polite);
        c.args(["-t", "interop/none", "-E", "-W", SUB_LIMIT_S]);
        c.args([
            "--will-topic",
            topic,
            "--will-payload",
            "polite",
            "--will-qos",
            "1",
        ]);
        let out = Proc::spawn(c, false).finish(WAIT);
        cx.assert_ok("mosquitto_sub -E (will)", &[], &out);
        // A client killed outright (no DISCONNECT) has its will published.
        let dying = cx.sub(
            &cx.pub_id("dying"),
            &[
                "-t",
                "interop/none",
                "--will-topic",
                topic,
                "--will-payload",
                "gone",
                "--will-qos",
                "1",
                "--will-retain",
            ],
        );
        dying.signal(libc::SIGKILL);
        dying.proc.kill();
        // Live subscribers get it with RETAIN=0 [MQTT-3.3.1-9], later ones with RETAIN=1.
        assert_eq!(
            watcher.expect(1),
            ["MSG interop/will 1 0 gone"],
            "[cores {}] will",
            cx.cores()
        );
        let late = cx.sub(&cx.sub_id("late"), &["-q", "1", "-t", topic]);
        assert_eq!(
            late.expect(1),
            ["MSG interop/will 1 1 gone"],
            "[cores {}] retained will",
            cx.cores()
        );
    });
}

#[test]
fn mosquitto_persistent_session() {
    each_cores(|cx| {
        let id = cx.sub_id("persist");
        // Subscribe with clean session 0, then DISCONNECT (-E).
        let mut c = cx.base("mosquitto_sub", &id);
        c.args([
            "-c",
            "-q",
            "2",
            "-t",
            "interop/ps/#",
            "-E",
            "-W",
            SUB_LIMIT_S,
        ]);
        let out = Proc::spawn(c, false).finish(WAIT);
        cx.assert_ok("mosquitto_sub -c -E", &[], &out);
        // Published while the subscriber is offline.
        let p = cx.pub_id("persist");
        cx.publish_lines(&p, &["-q", "1", "-t", "interop/ps/one"], &lines("one-", 3));
        cx.publish_lines(&p, &["-q", "2", "-t", "interop/ps/two"], &lines("two-", 3));
        cx.publish(&p, &["-q", "0", "-t", "interop/ps/zero", "-m", "not-kept"]);
        // Reconnect with the same id: the queued QoS 1/2 messages arrive, in order.
        let sub = cx.sub(&id, &["-c", "-q", "2", "-t", "interop/ps/#"]);
        let want = [
            "MSG interop/ps/one 1 0 one-0",
            "MSG interop/ps/one 1 0 one-1",
            "MSG interop/ps/one 1 0 one-2",
            "MSG interop/ps/two 2 0 two-0",
            "MSG interop/ps/two 2 0 two-1",
            "MSG interop/ps/two 2 0 two-2",
        ];
        assert_eq!(
            sub.expect(6),
            want,
            "[cores {}] offline messages",
            cx.cores()
        );
        // They were delivered once: a third connection finds nothing queued.
        let sub = cx.sub(&id, &["-c", "-q", "2", "-t", "interop/ps/#"]);
        assert_eq!(
            sub.quiet(),
            Vec::<String>::new(),
            "[cores {}] redelivered",
            cx.cores()
        );
    });
}

#[test]
fn mosquitto_wildcards() {
    each_cores(|cx| {
        // '#' does not match topics starting with '$' [MQTT-4.7.2-1].
        let all = cx.sub(&cx.sub_id("all"), &["-q", "1", "-t", "#", "-t", "+/d"]);
        let p = cx.pub_id("wild");
        cx.publish(&p, &["-q", "1", "-t", "$interop/d", "-m", "dollar"]);
        cx.publish(&p, &["-q", "1", "-t", "plain/d", "-m", "plain"]);
        assert_eq!(
            all.expect(1),
            ["MSG plain/d 1 0 plain"],
            "[cores {}] $ topics",
            cx.cores()
        );

        let sub = cx.sub(
            &cx.sub_id("sport"),
            &["-q", "1", "-t", "sport/+/score", "-t", "sport/tennis/#"],
        );
        for (topic, payload) in [
            ("sport/tennis/score", "both"), // matches both filters: delivered once
            ("sport/golf/score", "plus"),   // sport/+/score
            ("sport/golf/player", "none"),  // neither
            ("sport/tennis/player/1", "hash"), // sport/tennis/#
            ("sport/tennis/score/extra", "deeper"), // sport/tennis/# only
        ] {
            cx.publish(&p, &["-q", "1", "-t", topic, "-m", payload]);
        }
        let want = [
            "MSG sport/tennis/score 1 0 both",
            "MSG sport/golf/score 1 0 plus",
            "MSG sport/tennis/player/1 1 0 hash",
            "MSG sport/tennis/score/extra 1 0 deeper",
        ];
        assert_eq!(sub.expect(4), want, "[cores {}] wildcards", cx.cores());

        // '#' also matches the parent level: sport/tennis/# matches sport/tennis.
        let parent = cx.sub(&cx.sub_id("parent"), &["-q", "1", "-t", "sport/tennis/#"]);
        cx.publish(&p, &["-q", "1", "-t", "sport/tennis", "-m", "parent"]);
        assert_eq!(
            parent.expect(1),
            ["MSG sport/tennis 1 0 parent"],
            "[cores {}] parent",
            cx.cores()
        );
    });
}

// Shared subscriptions (MQTT 5 §4.8.2) taken by 3.1.1 clients: two
// mosquitto_sub members of one group share the messages, each message
// reaching exactly one of them; round robin gives each half [MQTT-4.8.2-3].
#[test]
fn mosquitto_shared_subscription() {
    each_cores(|cx| {
        let filter = "$share/g/interop/shared";
        let a = cx.sub(&cx.sub_id("share-a"), &["-q", "1", "-t", filter]);
        let b = cx.sub(&cx.sub_id("share-b"), &["-q", "1", "-t", filter]);
        let payloads = lines("s-", 6);
        let args = ["-q", "1", "-t", "interop/shared"];
        cx.publish_lines(&cx.pub_id("share"), &args, &payloads);
        let (got_a, got_b) = (a.quiet(), b.quiet());
        let mut all: Vec<String> = got_a.iter().chain(&got_b).cloned().collect();
        all.sort();
        let want: Vec<String> = payloads
            .iter()
            .map(|p| format!("MSG interop/shared 1 0 {p}"))
            .collect();
        assert_eq!(all, want, "[cores {}] each message once", cx.cores());
        assert_eq!((got_a.len(), got_b.len()), (3, 3), "[cores {}]", cx.cores());
    });
}

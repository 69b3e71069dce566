//! Rule matching and rule parsing, on parsed [`Acl`]s (no broker).

use super::*;
use crate::config::Config;

/// An ACL from the `[acl]` section given.
fn acl(toml: &str) -> Acl {
    let cfg = Config::from_toml(toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    Acl::load(&cfg.acl).unwrap()
}

fn rule(permission: &str, who: &str, access: &str, topics: &str) -> String {
    format!("[[acl.rule]]\npermission = \"{permission}\"\nwho = {who}\naccess = \"{access}\"\ntopics = {topics}\n")
}

fn subject<'a>(id: &'a str, user: Option<&'a str>, ip: &str) -> Subject<'a> {
    Subject {
        client_id: id,
        username: user,
        ip: Some(ip.parse().unwrap()),
    }
}

const ALICE: fn() -> Subject<'static> = || subject("c1", Some("alice"), "127.0.0.1");
const BOB: fn() -> Subject<'static> = || subject("c2", Some("bob"), "10.1.2.3");
const ANON: fn() -> Subject<'static> = || subject("c3", None, "::1");

fn publish(a: &Acl, s: Subject, topic: &str) -> bool {
    a.check_publish(&s, topic).allowed()
}

fn subscribe(a: &Acl, s: Subject, filter: &str) -> bool {
    a.check_subscribe(&s, filter).allowed()
}

#[test]
fn default_is_off_and_allows_everything() {
    let a = acl("");
    assert!(a.is_off());
    assert!(Acl::open().is_off());
    let strict = acl("[acl]\nno_match = \"deny\"\n");
    assert!(!strict.is_off());
    assert!(!publish(&strict, ALICE(), "a"));
}

#[test]
fn who_matches_clientid_username_ipaddr_and_all() {
    for (who, alice, bob, anon) in [
        ("\"all\"", true, true, true),
        ("{ clientid = \"c1\" }", true, false, false),
        ("{ username = \"bob\" }", false, true, false),
        ("{ ipaddr = \"127.0.0.0/8\" }", true, false, false),
        ("{ ipaddr = \"10.0.0.0/8\" }", false, true, false),
        ("{ ipaddr = \"::1/128\" }", false, false, true),
    ] {
        let a = acl(&format!(
            "[acl]\nno_match = \"deny\"\n{}",
            rule("allow", who, "pubsub", "[\"t/#\"]")
        ));
        for (s, want) in [(ALICE(), alice), (BOB(), bob), (ANON(), anon)] {
            assert_eq!(publish(&a, s, "t/x"), want, "{who} publish {s:?}");
            assert_eq!(subscribe(&a, s, "t/+"), want, "{who} subscribe {s:?}");
        }
    }
}

#[test]
fn access_publish_subscribe_pubsub() {
    for (access, p, s) in [
        ("publish", true, false),
        ("subscribe", false, true),
        ("pubsub", true, true),
    ] {
        let a = acl(&format!(
            "[acl]\nno_match = \"deny\"\n{}",
            rule("allow", "\"all\"", access, "[\"t\"]")
        ));
        assert_eq!(publish(&a, ALICE(), "t"), p, "{access}");
        assert_eq!(subscribe(&a, ALICE(), "t"), s, "{access}");
    }
}

#[test]
fn first_match_wins_and_no_match_applies_both_ways() {
    let rules = rule("deny", "{ username = \"alice\" }", "publish", "[\"a/#\"]")
        + &rule("allow", "\"all\"", "publish", "[\"a/#\"]");
    for no_match in ["allow", "deny"] {
        let a = acl(&format!("[acl]\nno_match = \"{no_match}\"\n{rules}"));
        assert!(!publish(&a, ALICE(), "a/b"), "rule 1 first");
        assert_eq!(a.check_publish(&ALICE(), "a/b").rule, Some(1));
        assert!(publish(&a, BOB(), "a/b"), "rule 2");
        assert_eq!(a.check_publish(&BOB(), "a/b").rule, Some(2));
        let other = a.check_publish(&BOB(), "z");
        assert_eq!((other.allowed(), other.rule), (no_match == "allow", None));
    }
}

#[test]
fn placeholders_are_the_clients_own() {
    let a = acl(&format!(
        "[acl]\nno_match = \"deny\"\n{}",
        rule(
            "allow",
            "\"all\"",
            "pubsub",
            "[\"devices/%c/#\", \"users/%u/#\", \"x/%u-%c\"]"
        )
    ));
    assert!(publish(&a, ALICE(), "devices/c1/temp"));
    assert!(!publish(&a, ALICE(), "devices/c2/temp"));
    assert!(publish(&a, ALICE(), "users/alice/inbox"));
    assert!(!publish(&a, BOB(), "users/alice/inbox"));
    assert!(publish(&a, BOB(), "x/bob-c2"));
    // No username: no %u topic matches.
    assert!(!publish(&a, ANON(), "users//inbox"));
    assert!(subscribe(&a, ALICE(), "users/alice/#"));
    assert!(!subscribe(&a, ALICE(), "users/+/#"), "not covered");
    // An id that would add a level or a wildcard matches nothing.
    for id in ["c1/x", "+", "#", "a+b"] {
        let s = subject(id, None, "127.0.0.1");
        assert!(!subscribe(&a, s, "devices/#"), "{id}");
        assert!(!publish(&a, s, &format!("devices/{id}/t")), "{id}");
    }
}

#[test]
fn eq_names_a_filter_literally() {
    let a = acl(&format!(
        "[acl]\nno_match = \"allow\"\n{}{}",
        rule("deny", "\"all\"", "subscribe", "[\"eq #\", \"eq d/%c\"]"),
        rule("allow", "\"all\"", "publish", "[\"eq p/+\"]"),
    ));
    assert!(!subscribe(&a, ALICE(), "#"));
    assert!(subscribe(&a, ALICE(), "a/#"), "eq # is not a wildcard");
    assert!(!subscribe(&a, ALICE(), "d/%c"), "no substitution in eq");
    assert!(subscribe(&a, ALICE(), "d/c1"));
    let strict = acl(&format!(
        "[acl]\nno_match = \"deny\"\n{}",
        rule("allow", "\"all\"", "publish", "[\"eq p/x\"]")
    ));
    assert!(publish(&strict, ALICE(), "p/x"));
    assert!(!publish(&strict, ALICE(), "p/y"));
}

#[test]
fn subscribe_needs_a_covering_allow_and_any_overlapping_deny_refuses() {
    let a = acl(&format!(
        "[acl]\nno_match = \"deny\"\n{}{}",
        rule("deny", "\"all\"", "subscribe", "[\"a/secret\"]"),
        rule("allow", "\"all\"", "subscribe", "[\"a/#\", \"b/+\"]"),
    ));
    assert!(subscribe(&a, ALICE(), "a/public"));
    assert!(subscribe(&a, ALICE(), "a/+/x"));
    assert!(!subscribe(&a, ALICE(), "a/secret"));
    assert!(!subscribe(&a, ALICE(), "a/#"), "could receive a/secret");
    assert!(!subscribe(&a, ALICE(), "a/+"), "could receive a/secret");
    assert!(subscribe(&a, ALICE(), "b/x"));
    assert!(!subscribe(&a, ALICE(), "b/#"), "b/+ does not cover b/#");
    assert!(!subscribe(&a, ALICE(), "#"));
}

#[test]
fn sys_only_with_an_explicit_rule() {
    let open = acl(&format!(
        "[acl]\nno_match = \"allow\"\n{}",
        rule(
            "allow",
            "{ username = \"admin\" }",
            "subscribe",
            "[\"$SYS/#\"]"
        )
    ));
    let admin = subject("a", Some("admin"), "127.0.0.1");
    assert!(subscribe(&open, admin, "$SYS/#"));
    assert!(subscribe(&open, admin, "$SYS/broker/+"));
    assert!(
        !subscribe(&open, ALICE(), "$SYS/#"),
        "no_match allow does not open $SYS"
    );
    assert!(!subscribe(&open, ALICE(), "$SYS"));
    assert!(!publish(&open, ALICE(), "$SYS/x"));
    assert!(
        subscribe(&open, ALICE(), "#"),
        "# never matches $SYS topics"
    );
    assert!(subscribe(&open, ALICE(), "+/broker"));
    assert!(
        publish(&open, ALICE(), "a/$SYS"),
        "only a first level counts"
    );
    // "#" in an allow rule does not reach $SYS either.
    let hash = acl(&format!(
        "[acl]\nno_match = \"deny\"\n{}",
        rule("allow", "\"all\"", "pubsub", "[\"#\"]")
    ));
    assert!(subscribe(&hash, ALICE(), "a/#"));
    assert!(!subscribe(&hash, ALICE(), "$SYS/#"));
}

#[test]
fn rules_are_validated_naming_the_rule_and_topic() {
    let good = rule("allow", "\"all\"", "publish", "[\"a\"]");
    for (bad, want) in [
        (
            rule("allow", "\"some\"", "publish", "[\"a\"]"),
            "acl.rule[2]: who",
        ),
        (
            rule(
                "allow",
                "{ clientid = \"a\", username = \"b\" }",
                "publish",
                "[\"a\"]",
            ),
            "exactly one",
        ),
        (
            rule(
                "allow",
                "{ ipaddr = \"10.0.0.0/40\" }",
                "publish",
                "[\"a\"]",
            ),
            "prefix length",
        ),
        (
            rule("allow", "\"all\"", "publish", "[]"),
            "acl.rule[2]: topics",
        ),
        (
            rule("allow", "\"all\"", "publish", "[\"a\", \"a/#/b\"]"),
            "topics[2]",
        ),
        (
            rule("allow", "\"all\"", "publish", "[\"eq a/#/b\"]"),
            "after \"eq \"",
        ),
        (
            rule("allow", "\"all\"", "publish", "[\"$share/g/a\"]"),
            "$share",
        ),
        (
            rule("allow", "\"all\"", "publish", "[\"a/+%c\"]"),
            "topics[1]",
        ),
    ] {
        let toml = format!("{good}{bad}");
        let err = Config::from_toml(&toml).unwrap_err();
        assert!(err.0.contains(want), "{toml}\n{err}");
    }
    for (bad, want) in [
        (rule("perhaps", "\"all\"", "publish", "[\"a\"]"), "perhaps"),
        (rule("allow", "\"all\"", "read", "[\"a\"]"), "read"),
        ("[acl]\nno_match = \"maybe\"\n".into(), "maybe"),
        ("[acl]\nrules = []\n".into(), "rules"),
    ] {
        let err = Config::from_toml(&bad).unwrap_err();
        assert!(err.0.contains(want), "{bad}\n{err}");
    }
}

#[test]
fn file_rules_come_after_inline_ones_and_errors_name_the_file() {
    let dir = std::env::temp_dir().join(format!("coremq-acl-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("acl.toml");
    let file_rule = rule("allow", "\"all\"", "publish", "[\"a/#\"]").replace("acl.rule", "rule");
    std::fs::write(&path, &file_rule).unwrap();
    let inline = rule("deny", "{ clientid = \"c1\" }", "publish", "[\"a/x\"]");
    let a = acl(&format!(
        "[acl]\nno_match = \"deny\"\nfile = {:?}\n{inline}",
        path.display().to_string()
    ));
    assert_eq!(a.len(), 2);
    assert_eq!(a.check_publish(&ALICE(), "a/x").rule, Some(1));
    assert_eq!(a.check_publish(&BOB(), "a/x").rule, Some(2));
    // A bad second rule in the file: the file and its rule are named.
    let bad = rule("allow", "\"all\"", "publish", "[\"#/a\"]").replace("acl.rule", "rule");
    std::fs::write(&path, format!("{file_rule}{bad}")).unwrap();
    let toml = format!("[acl]\nfile = {:?}\n", path.display().to_string());
    let err = Config::from_toml(&toml).unwrap_err();
    assert!(
        err.0
            .contains(&format!("acl.file {}: rule[2]: topics[1]", path.display())),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn each_acl_has_its_own_generation() {
    let (a, b) = (Acl::open(), Acl::open());
    assert_ne!(a.generation(), b.generation());
}

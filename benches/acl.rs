//! Micro-benchmark: one ACL publish decision, walked through the rules and
//! through a connection's decision cache, for 1 and 100 rules (none of
//! which match the topic but the last). `cargo bench --bench acl`
//! (harness = false).

use coremq::bench_api::{Acl, DecisionCache, Subject};
use coremq::config::Config;
use std::hint::black_box;

mod common;
use common::bench;

/// `n - 1` rules that do not match `bench/fanout` (a mix of who, `%c` and
/// wildcards), then one that allows everything.
fn rules(n: usize) -> String {
    let mut s = String::from("[acl]\nno_match = \"deny\"\n");
    for i in 0..n.saturating_sub(1) {
        let (who, topic) = match i % 4 {
            0 => ("\"all\"".to_string(), format!("other/{i}/#")),
            1 => (format!("{{ clientid = \"c{i}\" }}"), "bench/#".into()),
            2 => ("{ ipaddr = \"10.0.0.0/8\" }".into(), "#".into()),
            _ => ("\"all\"".into(), format!("devices/%c/{i}/+")),
        };
        s += &format!(
            "[[acl.rule]]\npermission = \"deny\"\nwho = {who}\naccess = \"publish\"\ntopics = [\"{topic}\"]\n"
        );
    }
    s + "[[acl.rule]]\npermission = \"allow\"\nwho = \"all\"\naccess = \"pubsub\"\ntopics = [\"#\"]\n"
}

fn main() {
    let who = Subject {
        client_id: "publisher-1",
        username: Some("bench"),
        ip: Some("127.0.0.1".parse().unwrap()),
    };
    for n in [1usize, 100] {
        let cfg = Config::from_toml(&rules(n)).expect("bench rules parse");
        let acl = Acl::load(&cfg.acl).expect("bench rules load");
        assert!(acl.check_publish(&who, "bench/fanout").allowed());
        bench(
            &format!("publish decision, {n} rules, uncached"),
            "decision",
            1,
            || {
                black_box(acl.check_publish(&who, black_box("bench/fanout")));
            },
        );
        let mut cache = DecisionCache::new(acl.generation());
        bench(
            &format!("publish decision, {n} rules, cached"),
            "decision",
            1,
            || {
                let topic = black_box("bench/fanout");
                black_box(cache.get_or_decide(acl.generation(), topic, || {
                    acl.check_publish(&who, topic).allowed()
                }));
            },
        );
    }
}

//! Micro-benchmark: one ACL publish decision, walked through the rules and
//! through a connection's decision cache, for 1 and 100 rules (none of
//! which match the topic but the last). Criterion group
//! `acl_publish_decision`, ids `uncached/N` and `cached/N` (N rules).
//!
//! `cargo bench --bench acl`; a quicker, noisier run:
//! `cargo bench --bench acl -- --warm-up-time 1 --measurement-time 2`
//! (a name after `--` picks benchmarks, e.g. `-- uncached`).

use coremq::bench_api::{Acl, DecisionCache, Subject};
use coremq::config::Config;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

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

fn publish_decision(c: &mut Criterion) {
    let who = Subject {
        client_id: "publisher-1",
        username: Some("bench"),
        ip: Some("127.0.0.1".parse().unwrap()),
    };
    let mut g = c.benchmark_group("acl_publish_decision");
    g.throughput(Throughput::Elements(1));
    for n in [1usize, 100] {
        let cfg = Config::from_toml(&rules(n)).expect("bench rules parse");
        let acl = Acl::load(&cfg.acl).expect("bench rules load");
        assert!(acl.check_publish(&who, "bench/fanout").allowed());
        g.bench_with_input(BenchmarkId::new("uncached", n), &acl, |b, acl| {
            b.iter(|| black_box(acl.check_publish(&who, black_box("bench/fanout"))))
        });
        let mut cache = DecisionCache::new(acl.generation());
        g.bench_with_input(BenchmarkId::new("cached", n), &acl, |b, acl| {
            b.iter(|| {
                let topic = black_box("bench/fanout");
                black_box(cache.get_or_decide(acl.generation(), topic, || {
                    acl.check_publish(&who, topic).allowed()
                }))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, publish_decision);
criterion_main!(benches);

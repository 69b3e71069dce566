//! Micro-benchmark: topic trie match cost vs number of filters and wildcard
//! mix. `cargo bench --bench trie` (harness = false).

use coremq::bench_api::Trie;
use std::hint::black_box;

/// `n` filters over `site/{s}/dev/{d}/temp`; `wild_pct` percent use `+` or `#`.
mod common;
use common::bench;

fn build(n: u64, wild_pct: u64) -> Trie<u64> {
    let mut t = Trie::new();
    for i in 0..n {
        let f = match (i * 7919 % 100 < wild_pct, i % 2) {
            (false, _) => format!("site/{}/dev/{}/temp", i % 1000, i),
            (true, 0) => format!("site/{}/dev/+/temp", i % 1000),
            (true, _) => format!("site/{}/#", i % 1000),
        };
        *t.get_or_insert_default(&f) += 1;
    }
    t
}

fn main() {
    for n in [100u64, 10_000, 1_000_000] {
        for wild in [0u64, 10, 50] {
            let t = build(n, wild);
            let mut k = 0u64;
            bench(
                &format!("match filters={n} wildcards={wild}%"),
                "match",
                1,
                || {
                    k = k.wrapping_add(7);
                    let topic = format!("site/{}/dev/{}/temp", k % 1000, k % n);
                    let mut hits = 0u64;
                    t.for_each_match(&topic, |v| hits += *v);
                    black_box(hits);
                },
            );
        }
    }
}

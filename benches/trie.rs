//! Micro-benchmark: topic trie match cost vs number of filters (100, 10K, 1M)
//! and wildcard mix (0, 10, 50 % of the filters use `+` or `#`). Criterion
//! group `trie_match`, ids `wildcards=W%/N` (N filters); each iteration
//! formats one topic and collects its matches, as a publish would.
//!
//! `cargo bench --bench trie`; a quicker, noisier run:
//! `cargo bench --bench trie -- --warm-up-time 1 --measurement-time 2`
//! (a name after `--` picks benchmarks, e.g. `-- 'wildcards=50%'`). Building
//! the 1M-filter tries takes a few seconds and a few hundred MB.

use coremq::bench_api::Trie;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

/// `n` filters over `site/{s}/dev/{d}/temp`; `wild_pct` percent use `+` or `#`.
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

fn trie_match(c: &mut Criterion) {
    let mut g = c.benchmark_group("trie_match");
    g.throughput(Throughput::Elements(1));
    for n in [100u64, 10_000, 1_000_000] {
        for wild in [0u64, 10, 50] {
            let t = build(n, wild);
            let mut k = 0u64;
            g.bench_with_input(
                BenchmarkId::new(format!("wildcards={wild}%"), n),
                &t,
                |b, t| {
                    b.iter(|| {
                        k = k.wrapping_add(7);
                        let topic = format!("site/{}/dev/{}/temp", k % 1000, k % n);
                        let mut hits = 0u64;
                        t.for_each_match(&topic, |v| hits += *v);
                        black_box(hits);
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, trie_match);
criterion_main!(benches);

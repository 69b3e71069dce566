//! The timing loop shared by the micro-benchmarks (harness = false, no extra crates).

use std::time::Instant;

/// Warm up, then run `f` (which performs `ops_per_call` operations) for about
/// 300 ms, checking the clock every 100 calls, and print ns per operation.
pub fn bench(name: &str, unit: &str, ops_per_call: u64, mut f: impl FnMut()) {
    for _ in 0..100 {
        f();
    }
    let mut calls = 0u64;
    let t0 = Instant::now();
    while t0.elapsed().as_millis() < 300 {
        for _ in 0..100 {
            f();
        }
        calls += 100;
    }
    let ns = t0.elapsed().as_nanos() as f64 / (calls * ops_per_call) as f64;
    println!("{name:<48} {ns:>10.1} ns/{unit}");
}

//! The stable-toolchain fuzz pass of the codec: the seed corpus of
//! `fuzz/corpus/decode/` (written by `COREMQ_WRITE_CORPUS=1 cargo test --lib
//! write_fuzz_corpus`), then seeded mutations of it, each input run through
//! `fuzz/check.rs` as the cargo-fuzz target `decode` runs it; and the same
//! for the PROXY protocol parser (`fuzz/corpus/proxy/`, `fuzz/check_proxy.rs`,
//! cargo-fuzz target `proxy`) and the WebSocket frame decoder
//! (`fuzz/corpus/ws/`, `fuzz/check_ws.rs`, cargo-fuzz target `ws`), and
//! the management listener's request parts (`fuzz/corpus/http/`,
//! `fuzz/check_http.rs`, cargo-fuzz target `http`).
//!
//! Bounded by `COREMQ_FUZZ_SECS` (default 3 s; CI sets 60) and by a count
//! that grows with it; the mutations are seeded from the clock (printed;
//! `COREMQ_FUZZ_SEED` repeats a run).

#[path = "../fuzz/check.rs"]
mod check;
#[path = "../fuzz/check_http.rs"]
mod check_http;
#[path = "../fuzz/check_log.rs"]
mod check_log;
#[path = "../fuzz/check_proxy.rs"]
mod check_proxy;
#[path = "../fuzz/check_ws.rs"]
mod check_ws;

use std::time::{Duration, Instant};

/// Mutated inputs tried at most per second of `COREMQ_FUZZ_SECS`: a count
/// bound beside the time bound (a fast machine stops at the count).
const CASES_PER_SEC: u64 = 2_000_000;

/// The mutation seed: `COREMQ_FUZZ_SEED` to repeat a run, else the clock, so
/// that each run (each CI run) explores other inputs.
fn seed() -> u64 {
    std::env::var("COREMQ_FUZZ_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64)
        })
        | 1
}

fn corpus() -> Vec<Vec<u8>> {
    corpus_of("decode")
}

/// The seed files of `fuzz/corpus/<target>/`, in name order.
fn corpus_of(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fuzz/corpus/<target>")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read(f).expect("corpus file"))
        .collect()
}

/// xorshift64: the same sequence on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of `input`, sometimes spliced with `other`.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>, other: &[u8]) {
    match rng.below(6) {
        0 | 1 => {
            for _ in 0..=rng.below(4) {
                let at = rng.below(input.len());
                if let Some(b) = input.get_mut(at) {
                    *b = rng.next() as u8;
                }
            }
        }
        2 => {
            let at = rng.below(input.len() + 1);
            input.insert(at, rng.next() as u8);
        }
        3 if !input.is_empty() => {
            let at = rng.below(input.len());
            input.remove(at);
        }
        4 => input.truncate(rng.below(input.len() + 1)),
        _ => input.extend_from_slice(other.get(1..).unwrap_or_default()),
    }
}

#[test]
fn corpus_and_seeded_mutations() {
    let seeds = corpus();
    assert!(seeds.len() >= 30, "seed corpus missing");
    run("fuzz_decode", &seeds, check::check);
}

/// The PROXY protocol header parser, the same way (seeds in
/// `fuzz/corpus/proxy/`, the check in `fuzz/check_proxy.rs`).
#[test]
fn proxy_header_corpus_and_seeded_mutations() {
    let seeds = corpus_of("proxy");
    assert!(seeds.len() >= 5, "proxy seed corpus missing");
    run("fuzz_proxy", &seeds, check_proxy::check);
}

/// The WebSocket frame decoder, the same way (seeds in `fuzz/corpus/ws/`,
/// the check in `fuzz/check_ws.rs`: decoding whole and read by read agree).
#[test]
fn websocket_frames_corpus_and_seeded_mutations() {
    let seeds = corpus_of("ws");
    assert!(seeds.len() >= 10, "ws seed corpus missing");
    run("fuzz_ws", &seeds, check_ws::check);
}

/// The storage log reader, the same way (seeds in `fuzz/corpus/log/`:
/// segments a broker wrote; the check in `fuzz/check_log.rs`: no panic,
/// and the good records read again end cleanly).
#[test]
fn storage_log_corpus_and_seeded_mutations() {
    let seeds = corpus_of("log");
    assert!(seeds.len() >= 3, "log seed corpus missing");
    run("fuzz_log", &seeds, check_log::check);
}

/// The management listener's own parsing, the same way (seeds in
/// `fuzz/corpus/http/`, the check in `fuzz/check_http.rs`: paths, query
/// strings and HTTP publish bodies never panic, and what parses is valid).
#[test]
fn http_request_parts_corpus_and_seeded_mutations() {
    let seeds = corpus_of("http");
    assert!(seeds.len() >= 10, "http seed corpus missing");
    run("fuzz_http", &seeds, check_http::check);
}

/// Check every seed, then seeded mutations of them for `COREMQ_FUZZ_SECS`.
fn run(name: &str, seeds: &[Vec<u8>], check: fn(&[u8])) {
    for s in seeds {
        check(s);
    }
    let secs = std::env::var("COREMQ_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let end = Instant::now() + Duration::from_secs(secs);
    let seed = seed();
    // Printed first, so a failure's output says how to repeat it.
    eprintln!("{name}: seed {seed:#x} (COREMQ_FUZZ_SEED={seed:x} repeats this run)");
    let mut rng = Rng(seed);
    let max_cases = secs.max(1).saturating_mul(CASES_PER_SEC);
    let mut cases = 0u64;
    while cases < max_cases && Instant::now() < end {
        for _ in 0..1000 {
            let mut input = seeds[rng.below(seeds.len())].clone();
            let other = &seeds[rng.below(seeds.len())];
            for _ in 0..=rng.below(3) {
                mutate(&mut rng, &mut input, other);
            }
            check(&input);
            cases += 1;
        }
    }
    eprintln!("{name}: {cases} mutated inputs");
}

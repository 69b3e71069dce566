//! `coremq-bench`: the bundled MQTT 3.1.1 load and verification tool.
//!
//! Called by `src/bin/coremq-bench.rs` ([`main`]). The parent process parses
//! arguments and forks `--workers` copies of itself (`workers.rs`); each
//! worker runs glommio executors full of clients (`engine.rs`,
//! `client.rs`) shaped by a scenario (`scenario.rs`), verifies every delivery
//! (`payload.rs`, `verify.rs`), and reports counters and a latency histogram
//! (`stats.rs`); the parent merges them, samples the broker (`procstat.rs`)
//! and prints the summary and JSON (`report.rs`). Packets go through
//! `crate::codec`, the broker's own codec.

pub mod args;
pub mod client;
pub mod engine;
pub mod payload;
pub mod procstat;
pub mod report;
pub mod scenario;
pub mod stats;
pub mod verify;
pub mod workers;

/// Entry point: `argv` without the program name. Returns the exit code.
pub fn main(argv: Vec<String>) -> i32 {
    let a = match args::parse(&argv) {
        Ok(a) => a,
        Err(args::ArgError::Help) => {
            println!("{}", args::USAGE);
            return 0;
        }
        Err(e) => {
            eprintln!("coremq-bench: {e}");
            return 2;
        }
    };
    if a.worker_index.is_some() {
        return engine::run_worker(a);
    }
    match workers::run_parent(&a, &argv) {
        Ok(outcome) => {
            eprint!("{}", report::summary(&a, &outcome));
            if a.json {
                println!("{}", report::json(&a, &outcome));
            }
            i32::from(!outcome.problems.is_empty())
        }
        Err(e) => {
            eprintln!("coremq-bench: {e}");
            2
        }
    }
}

//! `coremq-bench`: the bundled MQTT 3.1.1 load and verification tool.
//!
//! A workspace member of its own (`benches/coremq-bench/`), built as the
//! `coremq-bench` binary; it uses only the broker library's public API.
//! [`main`] runs [`run`]: the parent process parses arguments (`args.rs`)
//! and forks `--workers` copies of itself (`workers.rs`); each worker runs
//! glommio executors full of clients (`engine.rs`, `client.rs`; over TLS
//! and WebSocket through `transport.rs`) shaped by a
//! scenario (`scenario.rs`), verifies every delivery
//! (`payload.rs`, `verify.rs`), and reports counters and a latency histogram
//! (`stats.rs`); the parent merges them, samples the broker (`procstat.rs`)
//! and prints the summary and JSON (`report.rs`). Packets go through
//! `coremq::codec`, the broker's own codec.

mod args;
mod client;
mod engine;
mod payload;
mod procstat;
mod report;
mod scenario;
mod stats;
mod transport;
mod verify;
mod workers;

use std::ffi::OsString;

fn main() {
    std::process::exit(run(std::env::args_os().skip(1).collect()));
}

/// The whole run: `argv` without the program name. Returns the exit code:
/// 0 (also for `--help`), 1 when the run found problems, 2 for a bad
/// command line or a run that could not start.
fn run(argv: Vec<OsString>) -> i32 {
    let a = match args::parse(&argv) {
        Ok(a) => a,
        Err(e) => {
            // Help on stdout, errors on stderr; nothing to do if that fails.
            let _ = e.print();
            return e.exit_code();
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

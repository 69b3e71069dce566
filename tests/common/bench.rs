//! Running the load tool (`coremq-bench`) from tests and reading its JSON
//! summary: used by `tests/bench_tool.rs` (plain TCP) and
//! `tests/bench_tls.rs` (TLS, WebSocket). Fails, not skips, where the
//! workspace's `coremq-bench` binary has not been built (`scripts/test.sh`
//! builds it with `cargo build -p coremq-bench` first).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace's `coremq-bench`, built for the same profile as this test:
/// `target/<profile>/deps/bench_tool-*` → `target/<profile>/coremq-bench`.
/// It is another package's binary, so cargo does not build it for this test
/// (no `CARGO_BIN_EXE_coremq-bench`): a missing one fails the test.
pub fn bench_exe() -> PathBuf {
    let test_exe = std::env::current_exe().expect("path of the test executable");
    let profile_dir = test_exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lies in target/<profile>/deps");
    let exe = profile_dir.join("coremq-bench");
    assert!(
        exe.is_file(),
        "{} is missing: run `cargo build -p coremq-bench` (with the same profile) first; \
         scripts/test.sh does",
        exe.display()
    );
    exe
}

/// Run the tool; return its exit code, stdout and stderr.
pub fn run_tool(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(bench_exe()).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run the tool; return the JSON line (the last line of stdout).
pub fn run_bench(args: &[&str]) -> String {
    let (code, stdout, stderr) = run_tool(args);
    assert_eq!(code, Some(0), "coremq-bench failed: {stderr}");
    stdout.lines().last().unwrap_or("").to_string()
}

/// The integer value of `"key":N` in a flat JSON line.
pub fn int_field(json: &str, key: &str) -> i64 {
    let pat = format!("\"{key}\":");
    let at = json
        .find(&pat)
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + pat.len();
    let digits: String = json[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not an integer in {json}"))
}

pub fn check_sane(json: &str, clients: i64) {
    assert!(
        json.starts_with('{') && json.ends_with('}'),
        "not JSON: {json}"
    );
    assert_eq!(int_field(json, "connected"), clients, "{json}");
    assert_eq!(int_field(json, "connect_failed"), 0, "{json}");
    assert_eq!(int_field(json, "lost"), 0, "{json}");
    assert_eq!(int_field(json, "duplicates"), 0, "{json}");
    assert!(int_field(json, "sent") > 0, "{json}");
    assert!(int_field(json, "received") > 0, "{json}");
    assert!(
        json.contains("\"delivered_per_s\":") && json.contains("\"p99\":"),
        "{json}"
    );
    assert!(json.contains("\"problems\":[]"), "{json}");
}

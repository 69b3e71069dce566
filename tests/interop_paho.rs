//! Interoperability with Eclipse paho-mqtt (Python): runs
//! `tests/paho/interop.py` against the `coremq` binary with one and two
//! shards. Needs `python3` with paho-mqtt 2.x (`pip install paho-mqtt`); the
//! test fails, not skips, without them.

mod common;
use common::binary::{require_program, BrokerProcess, Proc};
use std::process::Command;
use std::time::Duration;

/// The whole script is bounded: every wait in it is at most a few seconds.
const SCRIPT_LIMIT: Duration = Duration::from_secs(30);

fn script() -> String {
    format!("{}/tests/paho/interop.py", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn paho_scenarios_pass_on_one_two_and_four_shards() {
    require_program("python3", "apt-get install -y python3");
    // Every shard count at once (a broker and a script each), to cut the wall time.
    let runs: Vec<(BrokerProcess, Proc)> = common::SHARD_COUNTS
        .into_iter()
        .map(|cores| {
            let broker = BrokerProcess::start(cores);
            let mut cmd = Command::new("python3");
            cmd.arg(script()).args([
                "--host",
                "127.0.0.1",
                "--port",
                &broker.port.to_string(),
                "--shards",
                &cores.to_string(),
            ]);
            (broker, Proc::spawn(cmd, false))
        })
        .collect();
    for (broker, script) in runs {
        let out = script.finish(SCRIPT_LIMIT);
        assert!(
            out.success(),
            "paho interop script failed against coremq --cores {} (exit: {:?})\n\
             --- script stdout ---\n{}\n--- script stderr ---\n{}\n--- broker log ---\n{}",
            broker.cores,
            out.status,
            out.stdout.join("\n"),
            out.stderr,
            broker.log()
        );
        broker.stop();
    }
}

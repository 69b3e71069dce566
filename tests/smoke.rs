//! Smoke test: one publish crosses from a publisher to a subscriber, on 1 and 2 shards.
mod common;
use common::*;
use coremq::codec::QoS;

#[test]
fn publish_reaches_subscriber_on_each_shard_count() {
    each_cores(|cores| {
        let b = start(cores);
        let (mut sub, _) = Client::connect(b.addr, &b.id_on("sub", cores - 1), true);
        sub.subscribe("a/+", QoS::AtLeastOnce);
        let (mut publ, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        publ.publish("a/b", b"hi", QoS::AtLeastOnce, false);
        let p = sub.recv_publish().expect("delivered");
        assert_eq!(p.payload.as_ref(), b"hi");
        assert_eq!(p.qos, QoS::AtLeastOnce);
    });
}

/// The CPUs each thread of broker `pid` named after a shard may run on
/// (`Cpus_allowed_list` in /proc): its executor thread and its blocking
/// pool's threads (glommio names them alike: `coremq-shard-N-…`).
fn shard_thread_cpus(pid: u32) -> Vec<String> {
    let mut cpus = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let dir = task.expect("task").path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !comm.starts_with("coremq-shard-") {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .expect("Cpus_allowed_list");
        cpus.push(list.trim().to_string());
    }
    cpus
}

/// `runtime.pin` (default true) pins each shard's executor thread to one
/// CPU; false leaves every thread on the process's whole mask (the kernel
/// places them), and a publish still crosses from one shard to the other.
#[test]
fn shards_are_pinned_unless_runtime_pin_is_false() {
    let own = std::fs::read_to_string("/proc/self/status").expect("status");
    let mask = own
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("mask")
        .trim()
        .to_string();
    let single = |c: &String| !c.contains(',') && !c.contains('-');
    for (pin, toml) in [(true, None), (false, Some("[runtime]\npin = false\n"))] {
        let b = binary::BrokerProcess::start_with_config(2, toml);
        let cpus = shard_thread_cpus(b.pid());
        let pinned = cpus.iter().filter(|c| single(c)).count();
        if pin {
            assert_eq!(pinned, 2, "one pinned executor per shard: {cpus:?}");
        } else if !single(&mask) {
            assert_eq!(pinned, 0, "nothing pinned: {cpus:?}");
            assert!(cpus.iter().all(|c| *c == mask), "{cpus:?} on mask {mask}");
        }
        let (mut sub, _) = Client::connect(b.addr(), &id_on("sub", 1, 2), true);
        sub.subscribe("p/+", QoS::AtLeastOnce);
        let (mut publ, _) = Client::connect(b.addr(), &id_on("pub", 0, 2), true);
        publ.publish("p/q", b"x", QoS::AtLeastOnce, false);
        let p = sub.recv_publish().expect("delivered across shards");
        assert_eq!(p.payload.as_ref(), b"x");
        b.stop();
    }
}

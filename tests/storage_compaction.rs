//! Online compaction of the storage log, over real sockets against the
//! `coremq` binary: with tiny segments and a tiny compaction threshold the
//! log is compacted over and over while clients publish and acknowledge;
//! old segments go, and what persistent sessions hold survives a SIGKILL at
//! any moment — also in the middle of a compaction [MQTT-3.1.2-4]
//! [MQTT-4.3.2-2]: a QoS 1 message the broker acknowledged is not lost.

mod common;
use common::binary::{BrokerProcess, TempDir};
use common::*;
use coremq::codec::{Packet, QoS};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Tiny segments and threshold: compaction runs again and again.
const TINY: &str = "[storage]\nsegment_bytes = 4096\ncompact_min_bytes = 8192\n";

/// An offline persistent session subscribed to `filter` at QoS 1.
fn offline(addr: SocketAddr, id: &str, filter: &str) {
    let (mut c, _) = Client::connect(addr, id, false);
    c.subscribe(filter, QoS::AtLeastOnce);
    c.disconnect_wait();
}

/// Everything queued for `id`, acknowledged, until quiet.
fn drain(addr: SocketAddr, id: &str) -> Vec<String> {
    let (mut c, present) = Client::connect(addr, id, false);
    assert!(present, "{id}: session present [MQTT-3.2.2-2]");
    let mut got = Vec::new();
    while let Some(p) = c.recv_within(Duration::from_millis(500)) {
        if let Packet::Publish(p) = p {
            c.ack(&p);
            got.push(text(&p));
        }
    }
    c.disconnect_wait();
    got
}

/// Segment files under the storage directory.
fn segment_count(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "log") {
                n += 1;
            }
        }
    }
    n
}

/// A subscriber online, acknowledging everything on `c/churn`, so the log
/// keeps growing while the live state stays small.
fn churn_subscriber(addr: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let (mut c, _) = Client::connect(addr, "churn", false);
        c.subscribe("c/churn", QoS::AtLeastOnce);
        while !stop.load(Ordering::Relaxed) {
            match c.recv_within(Duration::from_millis(100)) {
                Some(Packet::Publish(p)) => c.ack(&p),
                Some(_) => {}
                None if c.closed() => return,
                None => {}
            }
        }
    })
}

#[test]
fn online_compaction_removes_old_segments_and_keeps_state() {
    for cores in [1, 2] {
        let dir = TempDir::new("coremq-compact");
        let b = BrokerProcess::start_in(&dir.path, cores, Some(TINY));
        offline(b.addr(), "keep", "c/keep");
        let stop = Arc::new(AtomicBool::new(false));
        let churn = churn_subscriber(b.addr(), stop.clone());
        let (mut p, _) = Client::connect(b.addr(), "pub", true);
        let mut kept = Vec::new();
        for i in 0..1500 {
            p.publish("c/churn", &[b'x'; 100], QoS::AtLeastOnce, false);
            if i % 30 == 0 {
                let m = format!("keep-{i}");
                p.publish("c/keep", m.as_bytes(), QoS::AtLeastOnce, false);
                kept.push(m);
            }
        }
        assert!(
            b.wait_log(Duration::from_secs(10), |l| l.contains("compaction done")),
            "cores {cores}: a compaction finished; log:\n{}",
            b.log()
        );
        stop.store(true, Ordering::Relaxed);
        churn.join().unwrap();
        let written = 1500 * 130 / 4096;
        let segments = segment_count(&dir.path);
        assert!(
            segments * 4 < written,
            "cores {cores}: old segments removed ({segments} left of ~{written} written)"
        );
        b.kill9();
        let b = BrokerProcess::start_in(&dir.path, cores, Some(TINY));
        assert_eq!(
            drain(b.addr(), "keep"),
            kept,
            "cores {cores}: in order, none lost"
        );
        b.stop();
    }
}

#[test]
fn sigkill_during_compaction_loses_nothing_acknowledged() {
    let rounds: usize = env_or("COREMQ_CHAOS_ROUNDS", 10);
    let dir = TempDir::new("coremq-compact-kill");
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut acked_all: BTreeSet<String> = BTreeSet::new();
    let mut mid_compaction = 0;
    let b = BrokerProcess::start_in(&dir.path, 2, Some(TINY));
    offline(b.addr(), "keep", "c/keep");
    // Idle persistent sessions make each compaction's snapshot take several
    // writer rounds, so kills land in the middle of one.
    for i in 0..1500 {
        let (c, _) = Client::connect(b.addr(), &format!("idle-{i}"), false);
        c.disconnect_wait();
    }
    let mut b = Some(b);
    for round in 0..rounds {
        let broker = b.take().unwrap();
        let addr = broker.addr();
        let stop = Arc::new(AtomicBool::new(false));
        let churn = churn_subscriber(addr, stop.clone());
        let acked = Arc::new(Mutex::new(Vec::new()));
        let publisher = {
            let (stop, acked) = (stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let (mut p, _) = Client::connect(addr, "pub", true);
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) && i < 20_000 {
                    let m = format!("r{round}-{i}");
                    if !p.publish_acked("c/churn", &[b'x'; 200])
                        || !p.publish_acked("c/keep", m.as_bytes())
                    {
                        return;
                    }
                    acked.lock().unwrap().push(m);
                    i += 1;
                }
            })
        };
        let wait = 50 + xorshift(&mut rng) % 300;
        std::thread::sleep(Duration::from_millis(wait));
        // Then kill as soon as a compaction is in progress (within 3 s).
        let in_progress = || {
            let log = broker.log();
            let started = log.matches("compacting").count();
            (started, log.matches("compaction done").count())
        };
        let until = Instant::now() + Duration::from_secs(3);
        let (mut started, mut done) = in_progress();
        while started == done && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
            (started, done) = in_progress();
        }
        if started > done {
            mid_compaction += 1;
        }
        broker.kill9();
        stop.store(true, Ordering::Relaxed);
        let _ = publisher.join();
        let _ = churn.join();
        acked_all.extend(acked.lock().unwrap().iter().cloned());
        let next = BrokerProcess::start_in(&dir.path, 2, Some(TINY));
        let got: BTreeSet<String> = drain(next.addr(), "keep").into_iter().collect();
        let lost: Vec<&String> = acked_all.iter().filter(|m| !got.contains(*m)).collect();
        eprintln!(
            "round {round}: killed after {wait} ms ({started} compactions started, {done} done), \
             {} acknowledged so far, {} lost",
            acked_all.len(),
            lost.len()
        );
        assert!(
            lost.is_empty(),
            "round {round}: acknowledged and lost: {lost:?}"
        );
        acked_all.clear();
        b = Some(next);
    }
    eprintln!("{mid_compaction} of {rounds} kills came during a compaction");
    assert!(
        mid_compaction > 0,
        "no kill landed during a compaction: the test did not test it"
    );
    if let Some(b) = b {
        b.stop();
    }
}

#[test]
fn every_start_leaves_one_generation() {
    // Many restarts keep the directory at one generation: each start writes
    // the state it rebuilt and removes the old segments.
    let dir = TempDir::new("coremq-compact-restarts");
    let started = Instant::now();
    for _ in 0..3 {
        let b = BrokerProcess::start_in(&dir.path, 1, Some(TINY));
        offline(b.addr(), "keep", "c/keep");
        let (mut p, _) = Client::connect(b.addr(), "pub", true);
        for _ in 0..100 {
            p.publish("c/churn", &[b'x'; 100], QoS::AtLeastOnce, false);
        }
        b.stop();
        let gens: Vec<_> = std::fs::read_dir(&dir.path)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("gen-"))
            .collect();
        assert_eq!(gens.len(), 1, "one generation on disk");
    }
    eprintln!("3 restarts in {:?}", started.elapsed());
}

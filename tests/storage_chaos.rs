//! Crash at random moments under load: every message the broker
//! acknowledged (PUBACK, with `storage.fsync = "always"`) for an offline
//! persistent session is delivered after the restart. [MQTT-3.1.2-5]: the
//! server MUST store QoS 1 messages matching the subscriptions of a
//! disconnected clean_session=0 session; [MQTT-4.3.2-2]: with the PUBACK the
//! server has accepted ownership of the message. Duplicates are allowed at
//! QoS 1 [MQTT-4.3.2] and only counted.
//!
//! `COREMQ_CHAOS_ROUNDS` (default 20) sets the number of kill/restart
//! rounds; each round's delay before SIGKILL (50-400 ms) comes from a
//! xorshift generator seeded with the round number, so a failing round can
//! be rerun as it was.

mod common;
use common::binary::{BrokerProcess, TempDir};
use common::*;
use coremq::codec::{Packet, QoS};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SUBS: usize = 5;
/// Queues long enough that no acknowledged message is dropped for space.
const TOML: &str = "[session]\nmax_mqueue_len = 200000\nmax_mqueue_bytes = 268435456\n";

/// (payload, the subscriber it went to or None for all) of each acknowledged message.
type Acked = Arc<Mutex<Vec<(String, Option<usize>)>>>;

fn sub_id(k: usize) -> String {
    format!("chaos-sub-{k}")
}

/// The subscribers message `seq` goes to: every other one goes to all,
/// the rest to one subscriber each in turn.
fn topic_of(seq: u64) -> (String, Option<usize>) {
    if seq % 2 == 0 {
        ("chaos/all".into(), None)
    } else {
        let k = ((seq / 2) % SUBS as u64) as usize;
        (format!("chaos/{k}"), Some(k))
    }
}

/// Publish QoS 1 messages one at a time until the connection dies (or
/// `stop`); returns (payload, subscriber or None for all) of every message
/// whose PUBACK arrived.
fn publisher(addr: std::net::SocketAddr, round: u32, stop: Arc<AtomicBool>, acked: Acked) -> u64 {
    let (mut c, _) = Client::connect(addr, &format!("chaos-pub-{round}"), true);
    let mut sent = 0u64;
    for seq in 0u64.. {
        if stop.load(Ordering::Relaxed) || seq >= 100_000 {
            break;
        }
        let (topic, to) = topic_of(seq);
        let payload = format!("r{round}-{seq}");
        sent += 1;
        if !c.publish_acked(&topic, payload.as_bytes()) {
            break;
        }
        acked.lock().unwrap().push((payload, to));
    }
    sent
}

#[derive(Default, Debug)]
struct Drained {
    /// payload -> times received.
    got: BTreeMap<String, usize>,
}

/// Reconnect subscriber `k` and take everything, acknowledging it, until
/// every payload of `want` arrived and nothing more came for 300 ms (at
/// most 30 s).
fn drain(b: &BrokerProcess, k: usize, want: &BTreeSet<String>) -> Drained {
    let id = sub_id(k);
    let (mut c, present) = Client::connect(b.addr(), &id, false);
    assert!(
        present,
        "{id}: session present after SIGKILL [MQTT-3.2.2-2]; log:\n{}",
        b.log()
    );
    let mut d = Drained::default();
    let mut missing = want.len();
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        let wait = if missing == 0 {
            Duration::from_millis(300)
        } else {
            end.saturating_duration_since(Instant::now())
        };
        match c.recv_within(wait) {
            Some(Packet::Publish(p)) => {
                c.ack(&p);
                let t = text(&p);
                let n = d.got.entry(t.clone()).or_insert(0);
                *n += 1;
                if *n == 1 && want.contains(&t) {
                    missing -= 1;
                }
            }
            Some(_) => {}
            None => break,
        }
    }
    c.disconnect_wait();
    d
}

#[test]
fn acknowledged_messages_survive_random_sigkill() {
    let rounds: u32 = env_or("COREMQ_CHAOS_ROUNDS", 20);
    let dir = TempDir::new("coremq-chaos");
    let cores_of = |round: u32| 1 + (round as usize % 2);
    let mut b = BrokerProcess::start_in(&dir.path, cores_of(0), Some(TOML));
    for k in 0..SUBS {
        let (mut c, _) = Client::connect(b.addr(), &sub_id(k), false);
        let codes = c.subscribe_many(&[
            ("chaos/all", QoS::AtLeastOnce),
            (&format!("chaos/{k}"), QoS::AtLeastOnce),
        ]);
        assert_eq!(
            codes,
            vec![coremq::codec::SubAckCode::Granted(QoS::AtLeastOnce); 2]
        );
        c.disconnect_wait();
    }
    let started = Instant::now();
    let mut total_acked = 0usize;
    let mut total_dups = 0usize;
    for round in 0..rounds {
        let mut rng =
            0x9E37_79B9_7F4A_7C15u64 ^ (u64::from(round) + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
        for _ in 0..4 {
            xorshift(&mut rng);
        }
        let delay = Duration::from_millis(50 + xorshift(&mut rng) % 351);

        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let addr = b.addr();
        let t = {
            let (stop, acked) = (stop.clone(), acked.clone());
            std::thread::spawn(move || publisher(addr, round, stop, acked))
        };
        std::thread::sleep(delay);
        let from = b.cores;
        b.kill9();
        stop.store(true, Ordering::Relaxed);
        let sent = t.join().expect("publisher thread");
        let acked = std::mem::take(&mut *acked.lock().unwrap());

        b = BrokerProcess::start_in(&dir.path, cores_of(round + 1), Some(TOML));
        let dropped_tail = b.log().contains("dropped");
        let mut lost_total = 0;
        let mut per_sub = Vec::new();
        let mut failures = Vec::new();
        for k in 0..SUBS {
            let want: BTreeSet<String> = acked
                .iter()
                .filter(|(_, to)| to.is_none() || *to == Some(k))
                .map(|(p, _)| p.clone())
                .collect();
            let d = drain(&b, k, &want);
            let lost: Vec<&String> = want.iter().filter(|p| !d.got.contains_key(*p)).collect();
            let dups: usize = d.got.values().map(|n| n - 1).sum();
            let unacked = d.got.keys().filter(|p| !want.contains(*p)).count();
            total_dups += dups;
            lost_total += lost.len();
            per_sub.push(format!(
                "{k}: want {} got {} dup {dups} extra {unacked} lost {}",
                want.len(),
                d.got.len(),
                lost.len()
            ));
            if !lost.is_empty() {
                failures.push(format!(
                    "{}: {} acknowledged message(s) lost, first {:?}",
                    sub_id(k),
                    lost.len(),
                    &lost[..lost.len().min(10)]
                ));
            }
        }
        total_acked += acked.len();
        eprintln!(
            "chaos round {round}: --cores {from} -> {}, SIGKILL after {delay:?}, sent {sent}, \
             acked {}, torn tail dropped: {dropped_tail}, lost {lost_total} [{}]",
            b.cores,
            acked.len(),
            per_sub.join("; ")
        );
        assert!(
            failures.is_empty(),
            "round {round} (delay {delay:?}): acknowledged but lost:\n{}\nlog of the restarted broker:\n{}",
            failures.join("\n"),
            b.log()
        );
    }
    eprintln!(
        "chaos: {rounds} rounds in {:?}, {total_acked} acknowledged messages, none lost, \
         {total_dups} duplicate deliveries (allowed at QoS 1)",
        started.elapsed()
    );
    b.stop();
}

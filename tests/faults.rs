//! Fault injection (`coremq::faults`): one shard's slow or failing writes, or
//! slow mailbox sends, stall no other shard, and nothing acknowledged is lost.

mod common;
use common::*;
use coremq::codec::Ack;
use coremq::codec::{Packet, Publish, QoS};
use coremq::faults::Faults;
use coremq::{Broker, Config};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

const N: u16 = 50;

fn start_faulty(cfg: Config, faults: Arc<Faults>) -> TestBroker {
    let handle = Broker::new(cfg)
        .with_faults(faults)
        .start()
        .expect("broker starts");
    TestBroker {
        addr: handle.local_addr(),
        shards: handle.shards(),
        handle: Some(handle),
    }
}

/// Publish N QoS 1 messages on "t" and wait for every PUBACK.
fn publish_acked(p: &mut Client) {
    for i in 1..=N {
        p.send(&Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "t".into(),
            pkid: i,
            payload: bytes::Bytes::from(i.to_string()),
            props: None,
        }));
    }
    for _ in 0..N {
        assert!(
            matches!(p.recv(), Some(Packet::PubAck(_))),
            "publisher acknowledged"
        );
    }
}

/// Read PUBLISHes (acking them) until all N distinct payloads arrived or `within` passed.
fn receive_all(c: &mut Client, within: Duration) -> usize {
    let end = Instant::now() + within;
    let mut seen = HashSet::new();
    while seen.len() < N as usize && Instant::now() < end {
        if let Some(Packet::Publish(m)) = c.recv_within(Duration::from_millis(200)) {
            seen.insert(m.payload.clone());
            c.send(&Packet::PubAck(Ack::new(m.pkid)));
        }
    }
    seen.len()
}

#[test]
fn slow_writes_on_one_shard_stall_no_other() {
    for cores in [2, 4] {
        let faults = Arc::new(Faults::default());
        let b = start_faulty(config(cores), faults.clone());
        let (mut fast, _) = Client::connect(b.addr, &b.id_on("fast", 0), false);
        let (mut slow, _) = Client::connect(b.addr, &b.id_on("slow", 1), false);
        fast.subscribe("t", QoS::AtLeastOnce);
        slow.subscribe("t", QoS::AtLeastOnce);
        faults.slow_writes(Some(1), Duration::from_millis(400));
        let (mut p, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
        publish_acked(&mut p);
        assert_eq!(
            receive_all(&mut fast, WAIT),
            N as usize,
            "{cores} shards: shard 0 unaffected"
        );
        assert_eq!(
            receive_all(&mut slow, Duration::from_secs(30)),
            N as usize,
            "{cores} shards: the slow shard's subscriber loses nothing"
        );
    }
}

#[test]
fn slow_mailbox_sends_delay_only_the_other_shards() {
    let faults = Arc::new(Faults::default());
    let b = start_faulty(config(2), faults.clone());
    let (mut local, _) = Client::connect(b.addr, &b.id_on("local", 0), false);
    let (mut remote, _) = Client::connect(b.addr, &b.id_on("remote", 1), false);
    local.subscribe("t", QoS::AtLeastOnce);
    remote.subscribe("t", QoS::AtLeastOnce);
    faults.slow_mesh(Some(0), Duration::from_millis(300));
    let (mut p, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
    publish_acked(&mut p);
    assert_eq!(receive_all(&mut local, WAIT), N as usize);
    assert_eq!(
        receive_all(&mut remote, Duration::from_secs(30)),
        N as usize
    );
}

#[test]
fn failing_writes_lose_nothing_acknowledged() {
    let faults = Arc::new(Faults::default());
    let b = start_faulty(config(2), faults.clone());
    let id = b.id_on("victim", 1);
    let (mut victim, _) = Client::connect(b.addr, &id, false);
    victim.subscribe("t", QoS::AtLeastOnce);
    faults.fail_writes(Some(1));
    let (mut p, _) = Client::connect(b.addr, &b.id_on("pub", 0), true);
    publish_acked(&mut p);
    assert!(victim.closed(), "its connection failed");
    faults.fail_writes(None);
    let (mut again, present) = Client::connect(b.addr, &id, false);
    assert!(present);
    assert_eq!(
        receive_all(&mut again, WAIT),
        N as usize,
        "every acknowledged message arrives"
    );
}

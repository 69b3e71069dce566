//! Micro-benchmark: the session's pending queue (mqueue) and inflight window:
//! push/pop cost by queue length, and the window's ack-by-packet-id scan.
//! Criterion groups `mqueue_push_pop` (the parameter is the queue's capacity:
//! 16, 1000, 100000) and `inflight_push_ack` (the window: 16, 64, 1024). One
//! iteration is 1000 operations, so the time per operation is the reported
//! time / 1000 (criterion also shows it as elements/s).
//!
//! `cargo bench --bench mqueue`; a quicker, noisier run:
//! `cargo bench --bench mqueue -- --warm-up-time 1 --measurement-time 2`
//! (a name after `--` picks benchmarks, e.g. `-- inflight`).

use bytes::Bytes;
use coremq::bench_api::{Delivery, DropPolicy, Inflight, Limits, MQueue, Phase};
use coremq::codec::QoS;
use coremq::message::{Message, MsgIdGen};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;

/// Operations per iteration.
const OPS: u64 = 1000;

fn mqueue_push_pop(c: &mut Criterion) {
    let mut g = c.benchmark_group("mqueue_push_pop");
    g.throughput(Throughput::Elements(OPS));
    for len in [16usize, 1000, 100_000] {
        let lim = Limits {
            max_len: len,
            max_bytes: usize::MAX,
            store_qos0: true,
            policy: DropPolicy::Oldest,
        };
        let mut q = MQueue::new();
        g.bench_with_input(BenchmarkId::from_parameter(len), &lim, |b, lim| {
            b.iter(|| {
                for i in 0..OPS {
                    let qos = if i % 4 == 0 {
                        QoS::AtMostOnce
                    } else {
                        QoS::AtLeastOnce
                    };
                    black_box(q.push(i, qos, lim));
                    if q.len() >= len {
                        black_box(q.pop());
                    }
                }
            })
        });
    }
    g.finish();
}

fn inflight_push_ack(c: &mut Criterion) {
    let msg = Arc::new(Message {
        id: MsgIdGen::new(0, 0).next_id(),
        topic: Arc::from("bench/t"),
        payload: Bytes::from_static(&[0u8; 64]),
        qos: QoS::AtLeastOnce,
        retain: false,
        from: Arc::from("pub"),
        props: None,
    });
    let mut g = c.benchmark_group("inflight_push_ack");
    g.throughput(Throughput::Elements(OPS));
    for window in [16usize, 64, 1024] {
        let mut w = Inflight::new(window);
        let mut ids = VecDeque::new();
        g.bench_with_input(BenchmarkId::from_parameter(window), &msg, |b, msg| {
            b.iter(|| {
                for _ in 0..OPS {
                    if !w.has_room() {
                        let id = ids.pop_front().unwrap_or(0);
                        black_box(w.complete(id, QoS::AtLeastOnce, Phase::Published));
                    }
                    let d = Delivery::plain(msg.clone(), false);
                    ids.push_back(w.push(d, QoS::AtLeastOnce, 0).pkid);
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, mqueue_push_pop, inflight_push_ack);
criterion_main!(benches);

//! Micro-benchmark: the session's pending queue (mqueue) and inflight window:
//! push/pop cost by queue length, and the window's ack-by-packet-id scan.
//! `cargo bench --bench mqueue` (harness = false).

use bytes::Bytes;
use coremq::bench_api::{Delivery, DropPolicy, Inflight, Limits, MQueue, Phase};
use coremq::codec::QoS;
use coremq::message::{Message, MsgIdGen};
use std::hint::black_box;
use std::sync::Arc;

mod common;
use common::bench;

fn main() {
    for len in [16usize, 1000, 100_000] {
        let lim = Limits {
            max_len: len,
            max_bytes: usize::MAX,
            store_qos0: true,
            policy: DropPolicy::Oldest,
        };
        let mut q = MQueue::new();
        bench(
            &format!("mqueue push+pop at capacity {len}"),
            "op",
            1000,
            || {
                for i in 0..1000u64 {
                    let qos = if i % 4 == 0 {
                        QoS::AtMostOnce
                    } else {
                        QoS::AtLeastOnce
                    };
                    black_box(q.push(i, qos, &lim));
                    if q.len() >= len {
                        black_box(q.pop());
                    }
                }
            },
        );
    }
    let msg = Arc::new(Message {
        id: MsgIdGen::new(0, 0).next_id(),
        topic: Arc::from("bench/t"),
        payload: Bytes::from_static(&[0u8; 64]),
        qos: QoS::AtLeastOnce,
        retain: false,
        from: Arc::from("pub"),
        props: None,
    });
    for window in [16usize, 64, 1024] {
        let mut w = Inflight::new(window);
        let mut ids = std::collections::VecDeque::new();
        bench(
            &format!("inflight push+ack window={window}"),
            "op",
            1000,
            || {
                for _ in 0..1000 {
                    if !w.has_room() {
                        let id = ids.pop_front().unwrap_or(0);
                        black_box(w.complete(id, QoS::AtLeastOnce, Phase::Published));
                    }
                    let d = Delivery::plain(msg.clone(), false);
                    ids.push_back(w.push(d, QoS::AtLeastOnce, 0).pkid);
                }
            },
        );
    }
}

//! Micro-benchmark: codec decode/encode of PUBLISH by payload size, plus the
//! small control packets. `cargo bench --bench codec` (harness = false: a
//! timing loop, no extra crates).

use bytes::Bytes;
use coremq::codec::Ack;
use coremq::codec::{decode, encode, encode_publish, Packet, QoS, Side};
use std::hint::black_box;

mod common;
use common::bench;

fn main() {
    for size in [16usize, 256, 4096, 65536] {
        let payload = vec![7u8; size];
        let mut out = Vec::with_capacity(size + 64);
        bench(&format!("encode_publish qos1 {size}B"), "op", 1, || {
            out.clear();
            encode_publish(
                &mut out,
                "bench/topic/1",
                black_box(&payload),
                QoS::AtLeastOnce,
                42,
                false,
                false,
            );
            black_box(&out);
        });
        let wire = Bytes::from(out.clone());
        bench(&format!("decode publish qos1 {size}B"), "op", 1, || {
            black_box(
                decode(
                    black_box(&wire),
                    1 << 20,
                    Side::Any,
                    coremq::codec::ProtocolVersion::V311,
                )
                .ok(),
            );
        });
    }
    let mut out = Vec::new();
    bench("encode puback", "op", 1, || {
        out.clear();
        encode(
            black_box(&Packet::PubAck(Ack::new(7))),
            coremq::codec::ProtocolVersion::V311,
            &mut out,
        );
        black_box(&out);
    });
    let puback = Bytes::from(out.clone());
    bench("decode puback", "op", 1, || {
        black_box(
            decode(
                black_box(&puback),
                1 << 20,
                Side::Any,
                coremq::codec::ProtocolVersion::V311,
            )
            .ok(),
        );
    });
}

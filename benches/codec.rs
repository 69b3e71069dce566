//! Micro-benchmark: codec decode/encode of PUBLISH by payload size, plus the
//! small control packets. `cargo bench --bench codec` (harness = false: a
//! timing loop, no extra crates).

use bytes::Bytes;
use coremq::codec::{decode, encode, encode_publish, Packet, QoS, Side};
use std::hint::black_box;
use std::time::Instant;

/// Run `f` for about 300 ms and print ns per call.
fn bench(name: &str, mut f: impl FnMut()) {
    for _ in 0..1000 {
        f();
    }
    let mut iters = 0u64;
    let t0 = Instant::now();
    while t0.elapsed().as_millis() < 300 {
        for _ in 0..1000 {
            f();
        }
        iters += 1000;
    }
    println!(
        "{name:<40} {:>10.1} ns/op",
        t0.elapsed().as_nanos() as f64 / iters as f64
    );
}

fn main() {
    for size in [16usize, 256, 4096, 65536] {
        let payload = vec![7u8; size];
        let mut out = Vec::with_capacity(size + 64);
        bench(&format!("encode_publish qos1 {size}B"), || {
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
        bench(&format!("decode publish qos1 {size}B"), || {
            black_box(decode(black_box(&wire), 1 << 20, Side::Any).ok());
        });
    }
    let mut out = Vec::new();
    bench("encode puback", || {
        out.clear();
        encode(black_box(&Packet::PubAck(7)), &mut out);
        black_box(&out);
    });
    let puback = Bytes::from(out.clone());
    bench("decode puback", || {
        black_box(decode(black_box(&puback), 1 << 20, Side::Any).ok());
    });
}

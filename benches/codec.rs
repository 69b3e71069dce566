//! Micro-benchmark: codec decode/encode of PUBLISH (QoS 1, MQTT 3.1.1) by
//! payload size (16 B, 256 B, 4 KiB, 64 KiB), plus encode/decode of PUBACK.
//! Criterion groups `encode_publish_qos1`, `decode_publish_qos1` (the
//! parameter is the payload size; throughput in payload bytes) and `puback`.
//!
//! `cargo bench --bench codec`; a quicker, noisier run:
//! `cargo bench --bench codec -- --warm-up-time 1 --measurement-time 2`
//! (a name after `--` picks benchmarks, e.g. `-- decode`).

use bytes::Bytes;
use coremq::codec::{decode, encode, encode_publish, Ack, Packet, ProtocolVersion, QoS, Side};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

const SIZES: [usize; 4] = [16, 256, 4096, 65536];

/// One PUBLISH, QoS 1, packet id 42, on `bench/topic/1`, into `out` (cleared first).
fn encode_qos1(out: &mut Vec<u8>, payload: &[u8]) {
    out.clear();
    encode_publish(
        out,
        "bench/topic/1",
        payload,
        QoS::AtLeastOnce,
        42,
        false,
        false,
    );
}

/// Decode one packet at 3.1.1 (1 MiB limit, packets of either side accepted).
fn decode_v311(wire: &Bytes) {
    black_box(decode(black_box(wire), 1 << 20, Side::Any, ProtocolVersion::V311).ok());
}

fn publish(c: &mut Criterion) {
    let mut enc = c.benchmark_group("encode_publish_qos1");
    for size in SIZES {
        let payload = vec![7u8; size];
        let mut out = Vec::with_capacity(size + 64);
        enc.throughput(Throughput::Bytes(size as u64));
        enc.bench_with_input(BenchmarkId::from_parameter(size), &payload, |b, p| {
            b.iter(|| {
                encode_qos1(&mut out, black_box(p));
                black_box(&out);
            })
        });
    }
    enc.finish();

    let mut dec = c.benchmark_group("decode_publish_qos1");
    for size in SIZES {
        let mut out = Vec::with_capacity(size + 64);
        encode_qos1(&mut out, &vec![7u8; size]);
        let wire = Bytes::from(out);
        dec.throughput(Throughput::Bytes(size as u64));
        dec.bench_with_input(BenchmarkId::from_parameter(size), &wire, |b, w| {
            b.iter(|| decode_v311(w))
        });
    }
    dec.finish();
}

fn puback(c: &mut Criterion) {
    let mut g = c.benchmark_group("puback");
    let mut out = Vec::new();
    g.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            encode(
                black_box(&Packet::PubAck(Ack::new(7))),
                ProtocolVersion::V311,
                &mut out,
            );
            black_box(&out);
        })
    });
    let wire = Bytes::from(out);
    g.bench_function("decode", |b| b.iter(|| decode_v311(&wire)));
    g.finish();
}

criterion_group!(benches, publish, puback);
criterion_main!(benches);

//! The check run on one fuzz input of the WebSocket frame decoder
//! (`coremq::transport::ws::frame::Inbound`), by the cargo-fuzz target
//! (`fuzz/fuzz_targets/ws.rs`) and by the stable pass
//! (`tests/fuzz_decode.rs`, seeds in `fuzz/corpus/ws/`).
//!
//! The first byte picks where the stream is cut into reads; the rest is
//! what a client sent. Nothing may panic, and decoding it read by read
//! (carrying the undecoded tail, as the transport does) must end the same
//! way — a close frame, a violation, or more to come — as decoding it in
//! one piece, with the same MQTT bytes (up to the violation, when there is
//! one: a refused read's earlier bytes are dropped with the connection).

use coremq::ws_frame::{Inbound, Violation};

/// Frames larger than this are refused (small, so the fuzzer reaches it).
const MAX_FRAME: u64 = 4096;

#[derive(Debug, PartialEq)]
enum End {
    More,
    Close(u16),
    Refused(Violation),
}

/// Decode `reads` one after the other; the MQTT bytes and how it ended.
fn decode(reads: &[&[u8]]) -> (Vec<u8>, End) {
    let mut st = Inbound::default();
    let (mut mqtt, mut tail) = (Vec::new(), Vec::new());
    for read in reads {
        let mut buf = std::mem::take(&mut tail);
        buf.extend_from_slice(read);
        match st.decode(&mut buf, MAX_FRAME, &mut |p| assert!(p.len() <= 125)) {
            Ok(d) => {
                assert!(d.data <= d.used && d.used <= buf.len(), "{d:?}");
                mqtt.extend_from_slice(&buf[..d.data]);
                if let Some(code) = d.close {
                    return (mqtt, End::Close(code));
                }
                tail = buf[d.used..].to_vec();
                assert!(tail.len() <= 14 + 125, "kept {} bytes", tail.len());
            }
            Err(v) => return (mqtt, End::Refused(v)),
        }
    }
    (mqtt, End::More)
}

pub fn check(data: &[u8]) {
    let Some((&pattern, stream)) = data.split_first() else {
        return;
    };
    let whole = decode(&[stream]);
    // Reads of 1..=8 bytes, their lengths taken from the pattern's bits.
    let mut reads = Vec::new();
    let (mut at, mut bits) = (0, u32::from(pattern) | 0x100);
    while at < stream.len() {
        let n = ((bits & 7) + 1) as usize;
        bits = bits.rotate_right(3);
        reads.push(&stream[at..(at + n).min(stream.len())]);
        at += n;
    }
    let split = decode(&reads);
    match (&whole.1, &split.1) {
        // A refusal drops what the same read decoded before it (the
        // connection closes on a protocol error), so the MQTT bytes of the
        // two agree up to the shorter.
        (End::Refused(a), End::Refused(b)) => {
            assert_eq!(a, b);
            let n = whole.0.len().min(split.0.len());
            assert_eq!(
                whole.0[..n],
                split.0[..n],
                "whole and split decoding differ"
            );
        }
        (a, b) => {
            assert_eq!(a, b, "whole and split decoding end differently");
            assert_eq!(whole.0, split.0, "whole and split decoding differ");
        }
    }
}

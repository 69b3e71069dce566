//! The check run on one fuzz input, by the cargo-fuzz target
//! (`fuzz/fuzz_targets/decode.rs`) and by the stable pass
//! (`tests/fuzz_decode.rs`).
//!
//! Input: one selector byte, then a byte stream. The selector picks the
//! protocol version (`% 3`: 3.1, 3.1.1, 5) and the decoding side (`/ 3 % 3`:
//! server, client, any). Every packet decoded from the front of the stream
//! must encode to exactly `encoded_len` bytes that decode to the same
//! packet; decoding stops at the first error or incomplete packet. Nothing
//! may panic.

use bytes::Bytes;
use coremq::codec::{decode, encode, encoded_len, ProtocolVersion, Side};

/// Largest packet accepted: inputs are small, so the limit itself is
/// exercised by remaining lengths near it.
const MAX_PACKET: usize = 1 << 16;

/// The version and side a selector byte stands for.
pub fn select(selector: u8) -> (ProtocolVersion, Side) {
    let version = match selector % 3 {
        0 => ProtocolVersion::V31,
        1 => ProtocolVersion::V311,
        _ => ProtocolVersion::V5,
    };
    let side = match selector / 3 % 3 {
        0 => Side::Server,
        1 => Side::Client,
        _ => Side::Any,
    };
    (version, side)
}

/// Decodes `data` as described above, checking each packet's round trip.
pub fn check(data: &[u8]) {
    let Some((&selector, stream)) = data.split_first() else {
        return;
    };
    let (version, side) = select(selector);
    let mut buf = Bytes::copy_from_slice(stream);
    while let Ok(Some((packet, used))) = decode(&buf, MAX_PACKET, side, version) {
        assert!(used <= buf.len());
        let mut out = Vec::new();
        encode(&packet, version, &mut out);
        assert_eq!(out.len(), encoded_len(&packet, version), "{packet:?}");
        let again = Bytes::from(out);
        assert_eq!(
            decode(&again, usize::MAX, side, version),
            Ok(Some((packet, again.len()))),
            "{version:?} {side:?}"
        );
        buf = buf.slice(used..);
    }
}

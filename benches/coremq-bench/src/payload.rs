//! The verification header every benchmark payload starts with.
//!
//! Owns nothing. Publishers (`client.rs`) write it, subscribers read it back:
//! 8-byte publisher id, 8-byte sequence number, 8-byte send time (ns since the
//! Unix epoch, CLOCK_REALTIME, because workers are separate processes), all
//! big-endian, then zero padding up to `--size`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes of the header; the smallest allowed `--size`.
pub const HEADER_LEN: usize = 24;

/// What a subscriber learns from one payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub publisher: u64,
    pub seq: u64,
    pub sent_ns: u64,
}

/// Wall-clock nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Overwrite the header of `buf` (already `size` bytes long) in place.
pub fn write(buf: &mut [u8], stamp: Stamp) {
    buf[0..8].copy_from_slice(&stamp.publisher.to_be_bytes());
    buf[8..16].copy_from_slice(&stamp.seq.to_be_bytes());
    buf[16..24].copy_from_slice(&stamp.sent_ns.to_be_bytes());
}

/// A fresh payload of `size` bytes (at least the header).
pub fn build(size: usize, stamp: Stamp) -> Vec<u8> {
    let mut v = vec![0u8; size.max(HEADER_LEN)];
    write(&mut v, stamp);
    v
}

/// The header of a received payload, or None if it is too short to be ours.
pub fn read(buf: &[u8]) -> Option<Stamp> {
    let word =
        |i: usize| -> Option<u64> { Some(u64::from_be_bytes(buf.get(i..i + 8)?.try_into().ok()?)) };
    Some(Stamp {
        publisher: word(0)?,
        seq: word(8)?,
        sent_ns: word(16)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_padding() {
        let s = Stamp {
            publisher: 7,
            seq: u64::MAX - 1,
            sent_ns: 1_700_000_000_123_456_789,
        };
        let b = build(100, s);
        assert_eq!(b.len(), 100);
        assert!(b[24..].iter().all(|&x| x == 0));
        assert_eq!(read(&b), Some(s));
        assert_eq!(build(3, s).len(), HEADER_LEN);
    }

    #[test]
    fn short_payload_is_rejected() {
        assert_eq!(read(&[0u8; 23]), None);
        assert_eq!(read(b""), None);
    }

    #[test]
    fn rewrite_in_place() {
        let mut b = build(
            30,
            Stamp {
                publisher: 1,
                seq: 1,
                sent_ns: 1,
            },
        );
        let s = Stamp {
            publisher: 2,
            seq: 3,
            sent_ns: 4,
        };
        write(&mut b, s);
        assert_eq!(read(&b), Some(s));
        assert!(now_ns() > 1_600_000_000_000_000_000);
    }
}

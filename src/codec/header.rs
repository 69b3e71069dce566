//! Fixed header and primitive fields shared by every packet family.
//!
//! * the variable byte integer (§1.5.5, the remaining length of §2.2.3 and
//!   MQTT 5 property lengths): reading, writing and sizing;
//! * the fixed header as a whole ([`parse_fixed_header`]): packet type, flag
//!   bits (§2.2.2), which side and version may receive the type, the remaining length
//!   and the configured maximum packet size, all checked before the packet
//!   body has arrived;
//! * [`Reader`], a bounds-checked cursor over one packet's body that hands
//!   out zero-copy [`Bytes`] slices, UTF-8 strings (§1.5.3) and packet ids;
//! * the matching writers for `u16`, strings and binary fields.

use super::{DecodeError, ProtocolVersion, QoS, Side};
use bytes::Bytes;
use std::sync::Arc;

/// Largest value the four-byte remaining length can hold (§2.2.3).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// Largest string or binary field: its length prefix is two bytes.
const MAX_FIELD_LEN: usize = u16::MAX as usize;

pub(crate) const CONNECT: u8 = 1;
pub(crate) const CONNACK: u8 = 2;
pub(crate) const PUBLISH: u8 = 3;
pub(crate) const PUBACK: u8 = 4;
pub(crate) const PUBREC: u8 = 5;
pub(crate) const PUBREL: u8 = 6;
pub(crate) const PUBCOMP: u8 = 7;
pub(crate) const SUBSCRIBE: u8 = 8;
pub(crate) const SUBACK: u8 = 9;
pub(crate) const UNSUBSCRIBE: u8 = 10;
pub(crate) const UNSUBACK: u8 = 11;
pub(crate) const PINGREQ: u8 = 12;
pub(crate) const PINGRESP: u8 = 13;
pub(crate) const DISCONNECT: u8 = 14;
pub(crate) const AUTH: u8 = 15;

/// Reads the remaining length that starts at `buf[0]`.
///
/// `Ok(None)` if the encoding continues past the end of `buf`;
/// `Ok(Some((value, bytes_used)))` otherwise; an error if a fourth byte
/// still has its continuation bit set.
pub(crate) fn read_remaining_length(buf: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut value = 0usize;
    for (i, &byte) in buf.iter().take(4).enumerate() {
        value |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 4 {
        Err(DecodeError::MalformedRemainingLength)
    } else {
        Ok(None)
    }
}

/// Number of bytes the variable byte integer `len` takes on the wire.
pub(crate) fn remaining_length_len(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// The variable byte integer `len` (at most [`MAX_REMAINING_LENGTH`]) as
/// bytes in a buffer, and how many of them it takes.
pub(crate) fn varint_bytes(len: usize) -> ([u8; 4], usize) {
    debug_assert!(len <= MAX_REMAINING_LENGTH, "packet too large to encode");
    let mut bytes = [0u8; 4];
    let mut rest = len;
    for (i, slot) in bytes.iter_mut().enumerate() {
        let byte = (rest & 0x7F) as u8;
        rest >>= 7;
        if rest == 0 {
            *slot = byte;
            return (bytes, i + 1);
        }
        *slot = byte | 0x80;
    }
    (bytes, 4)
}

/// Appends the variable byte integer `len` (at most [`MAX_REMAINING_LENGTH`]).
pub(crate) fn write_remaining_length(out: &mut Vec<u8>, len: usize) {
    let (bytes, n) = varint_bytes(len);
    out.extend_from_slice(bytes.get(..n).unwrap_or(&bytes));
}

/// Bytes of a whole packet whose remaining length is `remaining`.
pub(crate) fn packet_len(remaining: usize) -> usize {
    1 + remaining_length_len(remaining) + remaining
}

/// The fixed header of a packet whose type, flags and size are acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FixedHeader {
    /// Packet type, 1..=15 (15 only in MQTT 5).
    pub packet_type: u8,
    /// The low four bits of the first byte.
    pub flags: u8,
    /// Offset of the body (variable header) from the packet start.
    pub body_start: usize,
    /// Total bytes of the packet: fixed header plus remaining length.
    pub total: usize,
}

/// Parses and checks the fixed header at the front of `buf`.
///
/// Everything that can be judged from the fixed header alone is checked as
/// soon as its bytes are there, whether or not the body has arrived:
/// reserved types, the side, the flags, the remaining length and the size
/// limit. `Ok(None)` means the fixed header itself is incomplete.
pub(crate) fn parse_fixed_header(
    buf: &[u8],
    max_packet_size: usize,
    side: Side,
    version: ProtocolVersion,
) -> Result<Option<FixedHeader>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let packet_type = first >> 4;
    let flags = first & 0x0F;
    check_type(packet_type, side, version)?;
    check_flags(packet_type, flags)?;
    let Some((remaining, used)) = read_remaining_length(buf.get(1..).unwrap_or_default())? else {
        return Ok(None);
    };
    let body_start = 1 + used;
    let total = body_start + remaining;
    if total > max_packet_size {
        return Err(DecodeError::PacketTooLarge {
            size: total,
            max: max_packet_size,
        });
    }
    Ok(Some(FixedHeader {
        packet_type,
        flags,
        body_start,
        total,
    }))
}

/// Rejects reserved types (AUTH before MQTT 5) and types the decoding
/// side never receives. In MQTT 5 either side may send DISCONNECT and AUTH.
fn check_type(packet_type: u8, side: Side, version: ProtocolVersion) -> Result<(), DecodeError> {
    if packet_type == 0 || (packet_type == AUTH && !version.is_v5()) {
        return Err(DecodeError::ReservedPacketType(packet_type));
    }
    let only_from_server = matches!(packet_type, CONNACK | SUBACK | UNSUBACK | PINGRESP);
    let both_ways = (PUBLISH..=PUBCOMP).contains(&packet_type)
        || (version.is_v5() && matches!(packet_type, DISCONNECT | AUTH));
    let unexpected = match side {
        Side::Server => only_from_server,
        Side::Client => !only_from_server && !both_ways,
        Side::Any => false,
    };
    if unexpected {
        return Err(DecodeError::UnexpectedPacket(packet_type));
    }
    Ok(())
}

/// The fixed-header flags of every packet type but PUBLISH (§2.2.2).
pub(crate) fn fixed_flags(packet_type: u8) -> u8 {
    match packet_type {
        PUBREL | SUBSCRIBE | UNSUBSCRIBE => 0b0010,
        _ => 0,
    }
}

/// Fixed-header flag rules of §2.2.2 and [MQTT-3.3.1-2].
fn check_flags(packet_type: u8, flags: u8) -> Result<(), DecodeError> {
    if packet_type == PUBLISH {
        let qos = (flags >> 1) & 0b11;
        if qos == 3 {
            return Err(DecodeError::InvalidQoS);
        }
        if qos == 0 && flags & 0b1000 != 0 {
            return Err(DecodeError::InvalidFlags { packet_type, flags });
        }
        return Ok(());
    }
    if flags != fixed_flags(packet_type) {
        return Err(DecodeError::InvalidFlags { packet_type, flags });
    }
    Ok(())
}

/// A bounds-checked cursor over one packet body, which is `buf[pos..end]`.
pub(crate) struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf[start..end]`; the caller guarantees the range
    /// lies within `buf` (it is clamped if not).
    pub fn new(buf: &'a Bytes, start: usize, end: usize) -> Reader<'a> {
        let end = end.min(buf.len());
        Reader {
            buf,
            pos: start.min(end),
            end,
        }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.end - self.pos
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.pos == self.end
    }

    /// A variable byte integer (§1.5.5): at most four bytes.
    pub fn varint(&mut self) -> Result<u32, DecodeError> {
        let rest = self.buf.get(self.pos..self.end).unwrap_or_default();
        match read_remaining_length(rest) {
            Ok(Some((value, used))) => {
                self.pos += used;
                Ok(value as u32)
            }
            Ok(None) => Err(DecodeError::Truncated),
            Err(_) => Err(DecodeError::MalformedVarInt),
        }
    }

    /// A reader over the next `len` bytes, which this reader skips.
    pub fn take(&mut self, len: usize) -> Result<Reader<'a>, DecodeError> {
        if len > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        let sub = Reader::new(self.buf, self.pos, self.pos + len);
        self.pos += len;
        Ok(sub)
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        match self.slice(4)? {
            [a, b, c, d] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
            _ => Err(DecodeError::Truncated),
        }
    }

    /// Fails with `Truncated` if bytes are left over.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Truncated)
        }
    }

    fn slice(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        let bytes = self
            .buf
            .get(self.pos..self.pos + n)
            .ok_or(DecodeError::Truncated)?;
        self.pos += n;
        Ok(bytes)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        match self.slice(1)? {
            [b] => Ok(*b),
            _ => Err(DecodeError::Truncated),
        }
    }

    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        match self.slice(2)? {
            [hi, lo] => Ok(u16::from_be_bytes([*hi, *lo])),
            _ => Err(DecodeError::Truncated),
        }
    }

    /// A packet identifier, which must not be 0 (§2.3.1).
    pub fn pkid(&mut self) -> Result<u16, DecodeError> {
        match self.u16()? {
            0 => Err(DecodeError::ZeroPacketId),
            id => Ok(id),
        }
    }

    /// A length-prefixed binary field as raw bytes, not copied.
    pub fn binary_slice(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = usize::from(self.u16()?);
        self.slice(len)
    }

    /// A length-prefixed binary field as a zero-copy slice of the buffer.
    pub fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = usize::from(self.u16()?);
        let start = self.pos;
        self.slice(len)?;
        Ok(self.buf.slice(start..start + len))
    }

    /// A length-prefixed UTF-8 string without U+0000 (§1.5.3).
    pub fn string(&mut self) -> Result<String, DecodeError> {
        self.str().map(str::to_owned)
    }

    /// A UTF-8 string as [`Reader::string`], borrowed from the buffer.
    pub fn str(&mut self) -> Result<&str, DecodeError> {
        let raw = self.binary_slice()?;
        let s = std::str::from_utf8(raw).map_err(|_| DecodeError::InvalidUtf8)?;
        if s.contains('\0') {
            return Err(DecodeError::InvalidUtf8);
        }
        Ok(s)
    }

    /// A topic name: a string that is non-empty and has no wildcard
    /// (§4.7.3, [MQTT-3.3.2-2]). Allocated once, as the `Arc<str>` that the
    /// routed message shares.
    pub fn topic_name(&mut self) -> Result<Arc<str>, DecodeError> {
        let topic = self.str()?;
        if !crate::topic::valid_topic_name(topic) {
            return Err(DecodeError::InvalidTopicName);
        }
        Ok(Arc::from(topic))
    }

    /// An MQTT 5 PUBLISH topic name: as [`Reader::topic_name`], but it may
    /// be empty (a topic alias then stands for it, [MQTT-3.3.2-8]).
    pub fn topic_name_or_empty(&mut self) -> Result<Arc<str>, DecodeError> {
        let topic = self.str()?;
        if !topic.is_empty() && !crate::topic::valid_topic_name(topic) {
            return Err(DecodeError::InvalidTopicName);
        }
        Ok(Arc::from(topic))
    }

    /// Everything left, as a zero-copy slice of the buffer.
    pub fn rest(&mut self) -> Bytes {
        let bytes = self.buf.slice(self.pos..self.end);
        self.pos = self.end;
        bytes
    }
}

/// A QoS from its wire value; 3 (or any higher value) is malformed.
pub(crate) fn qos(v: u8) -> Result<QoS, DecodeError> {
    QoS::from_u8(v).ok_or(DecodeError::InvalidQoS)
}

pub(crate) fn write_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Bytes of a length-prefixed field holding `len` bytes. Fields longer
/// than 65,535 bytes cannot be encoded and are cut (see [`write_binary`]).
pub(crate) fn field_len(len: usize) -> usize {
    2 + len.min(MAX_FIELD_LEN)
}

/// Appends a length-prefixed binary field. Data longer than the two-byte
/// prefix allows is cut at 65,535 bytes so that the stream stays framed;
/// decoded packets never carry such data.
pub(crate) fn write_binary(out: &mut Vec<u8>, data: &[u8]) {
    debug_assert!(data.len() <= MAX_FIELD_LEN, "field too long to encode");
    let data = data.get(..MAX_FIELD_LEN).unwrap_or(data);
    write_u16(out, data.len() as u16);
    out.extend_from_slice(data);
}

/// Appends a length-prefixed UTF-8 string.
pub(crate) fn write_string(out: &mut Vec<u8>, s: &str) {
    write_binary(out, s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_rl(len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        write_remaining_length(&mut out, len);
        assert_eq!(out.len(), remaining_length_len(len));
        out
    }

    /// The boundary values of the table in §2.2.3.
    #[test]
    fn remaining_length_spec_table() {
        let table: &[(usize, &[u8])] = &[
            (0, &[0x00]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xFF, 0x7F]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xFF, 0xFF, 0x7F]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (MAX_REMAINING_LENGTH, &[0xFF, 0xFF, 0xFF, 0x7F]),
        ];
        for &(value, bytes) in table {
            assert_eq!(encode_rl(value), bytes, "encoding {value}");
            assert_eq!(
                read_remaining_length(bytes),
                Ok(Some((value, bytes.len()))),
                "decoding {value}"
            );
            for split in 0..bytes.len() {
                assert_eq!(read_remaining_length(&bytes[..split]), Ok(None));
            }
        }
    }

    #[test]
    fn remaining_length_ignores_following_bytes() {
        assert_eq!(read_remaining_length(&[0x05, 0xFF, 0xFF]), Ok(Some((5, 1))));
    }

    #[test]
    fn remaining_length_non_minimal_is_accepted() {
        assert_eq!(read_remaining_length(&[0x80, 0x00]), Ok(Some((0, 2))));
    }

    /// §2.2.3: at most four bytes.
    #[test]
    fn remaining_length_five_bytes_is_malformed() {
        assert_eq!(
            read_remaining_length(&[0xFF, 0xFF, 0xFF, 0xFF]),
            Err(DecodeError::MalformedRemainingLength)
        );
        assert_eq!(
            read_remaining_length(&[0x80, 0x80, 0x80, 0x80, 0x01]),
            Err(DecodeError::MalformedRemainingLength)
        );
    }

    #[test]
    fn reader_bounds() {
        let buf = Bytes::from_static(&[0x00, 0x03, b'a', b'b', 0xAA, 0xBB]);
        let mut r = Reader::new(&buf, 0, 4);
        assert_eq!(r.string(), Err(DecodeError::Truncated));
        let mut r = Reader::new(&buf, 0, 6);
        assert_eq!(r.binary().map(|b| b.len()), Ok(3));
        assert_eq!(r.remaining(), 1);
        assert_eq!(r.finish(), Err(DecodeError::Truncated));
        assert_eq!(r.u16(), Err(DecodeError::Truncated));
        assert_eq!(r.u8(), Ok(0xBB));
        assert_eq!(r.u8(), Err(DecodeError::Truncated));
        assert!(r.finish().is_ok());
        let mut r = Reader::new(&buf, 10, 20);
        assert!(r.is_empty());
        assert_eq!(r.u8(), Err(DecodeError::Truncated));
    }

    /// [MQTT-1.5.3-1] ill-formed UTF-8 and [MQTT-1.5.3-2] U+0000.
    #[test]
    fn strings_reject_bad_utf8_and_nul() {
        for bad in [&[0x00, 0x02, 0xC3, 0x28][..], &[0x00, 0x01, 0x00][..]] {
            let buf = Bytes::copy_from_slice(bad);
            let mut r = Reader::new(&buf, 0, buf.len());
            assert_eq!(r.string(), Err(DecodeError::InvalidUtf8));
        }
        // [MQTT-1.5.3-1] encoded surrogate U+D800.
        let buf = Bytes::from_static(&[0x00, 0x03, 0xED, 0xA0, 0x80]);
        assert_eq!(
            Reader::new(&buf, 0, 5).string(),
            Err(DecodeError::InvalidUtf8)
        );
        // §1.5.3.1 example: U+2A6D4 then "A" ... a valid 4-byte sequence.
        let buf = Bytes::from_static(&[0x00, 0x05, 0x41, 0xF0, 0xAA, 0x9B, 0x94]);
        assert_eq!(
            Reader::new(&buf, 0, 7).string().as_deref(),
            Ok("A\u{2A6D4}")
        );
    }

    #[test]
    fn field_len_counts_at_most_a_u16_length() {
        assert_eq!(field_len(70_000), 2 + 65_535);
        assert_eq!(field_len(3), 5);
    }
}

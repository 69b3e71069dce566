//! PUBLISH (§3.3) and its acknowledgements PUBACK, PUBREC, PUBREL and
//! PUBCOMP (§3.4-§3.7): body decoding, encoding and sizing.
//!
//! [`encode_publish`] is the broker's hot path: it writes a PUBLISH straight
//! from borrowed parts, so forwarding a message never clones its topic.

use super::header::{
    field_len, packet_len, write_remaining_length, write_string, write_u16, Reader, PUBLISH,
};
use super::{DecodeError, Publish, QoS};

const FLAG_DUP: u8 = 0b1000;
const FLAG_RETAIN: u8 = 0b0001;

/// Remaining length of a PUBLISH with these parts.
pub(crate) fn publish_body_len(topic_len: usize, payload_len: usize, qos: QoS) -> usize {
    let pkid_len = if qos == QoS::AtMostOnce { 0 } else { 2 };
    field_len(topic_len) + pkid_len + payload_len
}

/// Append a PUBLISH built from parts without constructing a `Publish` (no
/// String clone of the topic).
///
/// `pkid` is written only for QoS 1 and 2. `dup` is dropped for QoS 0,
/// where the spec forbids it ([MQTT-3.3.1-2]), so the output is always a
/// well-formed packet for a well-formed topic.
pub fn encode_publish(
    out: &mut Vec<u8>,
    topic: &str,
    payload: &[u8],
    qos: QoS,
    pkid: u16,
    retain: bool,
    dup: bool,
) {
    let mut first = (PUBLISH << 4) | ((qos as u8) << 1);
    if dup && qos != QoS::AtMostOnce {
        first |= FLAG_DUP;
    }
    if retain {
        first |= FLAG_RETAIN;
    }
    let remaining = publish_body_len(topic.len(), payload.len(), qos);
    out.reserve(packet_len(remaining));
    out.push(first);
    write_remaining_length(out, remaining);
    write_string(out, topic);
    if qos != QoS::AtMostOnce {
        write_u16(out, pkid);
    }
    out.extend_from_slice(payload);
}

/// Decodes the body of a PUBLISH whose fixed-header `flags` were checked.
/// The payload is a zero-copy slice of the reader's buffer.
pub(crate) fn decode_publish(flags: u8, r: &mut Reader<'_>) -> Result<Publish, DecodeError> {
    let qos = super::header::qos((flags >> 1) & 0b11)?;
    let topic = r.topic_name()?;
    let pkid = match qos {
        QoS::AtMostOnce => 0,
        _ => r.pkid()?,
    };
    Ok(Publish {
        dup: flags & FLAG_DUP != 0,
        qos,
        retain: flags & FLAG_RETAIN != 0,
        topic,
        pkid,
        payload: r.rest(),
    })
}

/// Decodes a body that is exactly a nonzero packet identifier: PUBACK,
/// PUBREC, PUBREL, PUBCOMP and UNSUBACK.
pub(crate) fn decode_pkid_only(r: &mut Reader<'_>) -> Result<u16, DecodeError> {
    if r.remaining() != 2 {
        return Err(DecodeError::Truncated);
    }
    r.pkid()
}

/// Appends a whole packet whose body is only `pkid`; `first` is the first
/// byte of its fixed header.
pub(crate) fn encode_pkid_only(out: &mut Vec<u8>, first: u8, pkid: u16) {
    out.extend_from_slice(&[first, 2]);
    write_u16(out, pkid);
}

#[cfg(test)]
mod tests {
    use super::super::{decode, encode, encoded_len, Packet, Side};
    use super::*;
    use bytes::Bytes;

    fn dec(bytes: &[u8]) -> Result<Option<(Packet, usize)>, DecodeError> {
        decode(&Bytes::copy_from_slice(bytes), 1 << 20, Side::Any)
    }

    fn publish(qos: QoS, pkid: u16, dup: bool, retain: bool, payload: &'static [u8]) -> Publish {
        Publish {
            dup,
            qos,
            retain,
            topic: "a/b/ü".into(),
            pkid,
            payload: Bytes::from_static(payload),
        }
    }

    #[test]
    fn publish_round_trip() {
        let cases = [
            publish(QoS::AtMostOnce, 0, false, false, b""),
            publish(QoS::AtMostOnce, 0, false, true, b"hello"),
            publish(QoS::AtLeastOnce, 1, true, false, b"\x00\xff"),
            publish(QoS::ExactlyOnce, 65535, false, true, &[7; 300]),
        ];
        for p in cases {
            let packet = Packet::Publish(p.clone());
            let mut out = Vec::new();
            encode(&packet, &mut out);
            assert_eq!(out.len(), encoded_len(&packet));
            let mut fast = Vec::new();
            encode_publish(
                &mut fast, &p.topic, &p.payload, p.qos, p.pkid, p.retain, p.dup,
            );
            assert_eq!(fast, out);
            assert_eq!(dec(&out), Ok(Some((packet, out.len()))));
        }
    }

    /// §3.3 example: topic "a/b", packet id 10, QoS 1, payload "hi".
    #[test]
    fn publish_spec_bytes() {
        let bytes = [
            0x32, 0x09, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0A, b'h', b'i',
        ];
        let mut out = Vec::new();
        encode_publish(&mut out, "a/b", b"hi", QoS::AtLeastOnce, 10, false, false);
        assert_eq!(out, bytes);
        let expected = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "a/b".into(),
            pkid: 10,
            payload: Bytes::from_static(b"hi"),
        });
        assert_eq!(dec(&bytes), Ok(Some((expected, bytes.len()))));
    }

    #[test]
    fn encode_publish_drops_dup_for_qos0() {
        let mut out = Vec::new();
        encode_publish(&mut out, "t", b"", QoS::AtMostOnce, 5, true, true);
        assert_eq!(out, [0x31, 0x03, 0x00, 0x01, b't']);
    }

    #[test]
    fn publish_payload_is_zero_copy() {
        let mut out = Vec::new();
        encode_publish(
            &mut out,
            "t",
            b"payload!",
            QoS::AtLeastOnce,
            3,
            false,
            false,
        );
        encode_publish(&mut out, "u", b"second", QoS::AtMostOnce, 0, false, false);
        let buf = Bytes::from(out);
        let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        let mut offset = 0;
        for expected in [&b"payload!"[..], b"second"] {
            let rest = buf.slice(offset..);
            let Ok(Some((Packet::Publish(p), used))) = decode(&rest, 1024, Side::Server) else {
                panic!("publish expected");
            };
            assert_eq!(&p.payload[..], expected);
            assert!(range.contains(&(p.payload.as_ptr() as usize)));
            assert!(p.payload.as_ptr() as usize + p.payload.len() <= range.end);
            offset += used;
        }
        assert_eq!(offset, buf.len());
    }

    #[test]
    fn publish_malformed_table() {
        use DecodeError::*;
        let cases: &[(&str, &[u8], DecodeError)] = &[
            // [MQTT-3.3.1-4] QoS 3.
            ("3.3.1-4", &[0x36, 0x03, 0x00, 0x01, b't'], InvalidQoS),
            // [MQTT-3.3.1-2] DUP set with QoS 0.
            (
                "3.3.1-2",
                &[0x38, 0x03, 0x00, 0x01, b't'],
                InvalidFlags {
                    packet_type: 3,
                    flags: 8,
                },
            ),
            // [MQTT-3.3.2-2] wildcards in a topic name.
            (
                "3.3.2-2 +",
                &[0x30, 0x03, 0x00, 0x01, b'+'],
                InvalidTopicName,
            ),
            (
                "3.3.2-2 #",
                &[0x30, 0x05, 0x00, 0x03, b'a', b'/', b'#'],
                InvalidTopicName,
            ),
            // [MQTT-4.7.3-1] empty topic name.
            ("4.7.3-1", &[0x30, 0x02, 0x00, 0x00], InvalidTopicName),
            // [MQTT-3.3.2-1] topic name must be UTF-8.
            ("3.3.2-1", &[0x30, 0x03, 0x00, 0x01, 0x80], InvalidUtf8),
            // [MQTT-1.5.3-2] U+0000 in the topic.
            ("1.5.3-2", &[0x30, 0x03, 0x00, 0x01, 0x00], InvalidUtf8),
            // [MQTT-2.3.1-1] packet id 0 with QoS > 0.
            (
                "2.3.1-1",
                &[0x32, 0x05, 0x00, 0x01, b't', 0x00, 0x00],
                ZeroPacketId,
            ),
            // Packet id missing.
            (
                "pkid short",
                &[0x32, 0x04, 0x00, 0x01, b't', 0x00],
                Truncated,
            ),
            // Topic length runs past the remaining length.
            ("topic short", &[0x30, 0x03, 0x00, 0x05, b't'], Truncated),
        ];
        for (name, bytes, err) in cases {
            assert_eq!(dec(bytes), Err(err.clone()), "{name}");
        }
    }

    #[test]
    fn acks_round_trip_and_bytes() {
        type MakeAck = fn(u16) -> Packet;
        let cases: [(MakeAck, u8); 4] = [
            (Packet::PubAck, 0x40),
            (Packet::PubRec, 0x50),
            (Packet::PubRel, 0x62),
            (Packet::PubComp, 0x70),
        ];
        for (make, first) in cases {
            for pkid in [1, 0x1234, 0xFFFF] {
                let packet = make(pkid);
                let mut out = Vec::new();
                encode(&packet, &mut out);
                let [hi, lo] = pkid.to_be_bytes();
                assert_eq!(out, [first, 0x02, hi, lo]);
                assert_eq!(encoded_len(&packet), 4);
                assert_eq!(dec(&out), Ok(Some((packet, 4))));
            }
        }
    }

    #[test]
    fn acks_malformed_table() {
        use DecodeError::*;
        let cases: &[(&str, &[u8], DecodeError)] = &[
            // [MQTT-2.3.1-1] packet id 0.
            ("puback 2.3.1-1", &[0x40, 0x02, 0x00, 0x00], ZeroPacketId),
            ("pubcomp 2.3.1-1", &[0x70, 0x02, 0x00, 0x00], ZeroPacketId),
            // §3.4.1 remaining length is exactly 2.
            ("puback 3.4.1 short", &[0x40, 0x01, 0x01], Truncated),
            (
                "pubrec 3.5.1 long",
                &[0x50, 0x03, 0x00, 0x01, 0x00],
                Truncated,
            ),
            // [MQTT-3.6.1-1] PUBREL flags must be 0010.
            (
                "3.6.1-1",
                &[0x60, 0x02, 0x00, 0x01],
                InvalidFlags {
                    packet_type: 6,
                    flags: 0,
                },
            ),
            // [MQTT-2.2.2-1] PUBACK flags must be 0.
            (
                "puback 2.2.2-1",
                &[0x42, 0x02, 0x00, 0x01],
                InvalidFlags {
                    packet_type: 4,
                    flags: 2,
                },
            ),
        ];
        for (name, bytes, err) in cases {
            assert_eq!(dec(bytes), Err(err.clone()), "{name}");
        }
    }
}

//! PUBLISH (§3.3) and its acknowledgements PUBACK, PUBREC, PUBREL and
//! PUBCOMP (§3.4-§3.7): body decoding, encoding and sizing, for 3.1, 3.1.1
//! and 5.0.
//!
//! Called by `packet.rs`, and by the broker for [`encode_publish`] and
//! [`encode_publish_v5`], its hot path: they write a PUBLISH straight from
//! borrowed parts, so forwarding a message never clones its topic, and the
//! MQTT 5 one takes the per-delivery properties (topic alias, subscription
//! identifiers, remaining expiry) beside the message's own.

use super::control::{read_reason_tail, reason_tail_len, write_reason_tail};
use super::header::{
    self, field_len, packet_len, write_remaining_length, write_string, write_u16, Reader, PUBLISH,
};
use super::properties::{
    len_if_v5, properties_len_with, read_if_v5, write_if_v5, write_properties_with, Delivery,
};
use super::{Ack, DecodeError, Properties, ProtocolVersion, Publish, QoS, Side};

const FLAG_DUP: u8 = 0b1000;
const FLAG_RETAIN: u8 = 0b0001;

/// Remaining length of a 3.1/3.1.1 PUBLISH with these parts.
pub(crate) fn publish_body_len(topic_len: usize, payload_len: usize, qos: QoS) -> usize {
    let pkid_len = if qos == QoS::AtMostOnce { 0 } else { 2 };
    field_len(topic_len) + pkid_len + payload_len
}

/// The first byte of a PUBLISH. `dup` is dropped for QoS 0, where the spec
/// forbids it ([MQTT-3.3.1-2]).
fn publish_first_byte(qos: QoS, retain: bool, dup: bool) -> u8 {
    let mut first = (PUBLISH << 4) | ((qos as u8) << 1);
    if dup && qos != QoS::AtMostOnce {
        first |= FLAG_DUP;
    }
    if retain {
        first |= FLAG_RETAIN;
    }
    first
}

/// Appends the fixed header, topic and packet id of a PUBLISH whose
/// remaining length is `remaining`.
#[allow(clippy::too_many_arguments)]
fn write_publish_head(
    out: &mut Vec<u8>,
    remaining: usize,
    topic: &str,
    qos: QoS,
    pkid: u16,
    retain: bool,
    dup: bool,
) {
    out.reserve(packet_len(remaining));
    out.push(publish_first_byte(qos, retain, dup));
    write_remaining_length(out, remaining);
    write_string(out, topic);
    if qos != QoS::AtMostOnce {
        write_u16(out, pkid);
    }
}

/// Append a 3.1/3.1.1 PUBLISH built from parts without constructing a
/// `Publish` (no String clone of the topic).
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
    let remaining = publish_body_len(topic.len(), payload.len(), qos);
    write_publish_head(out, remaining, topic, qos, pkid, retain, dup);
    out.extend_from_slice(payload);
}

/// The MQTT 5 parts of one delivery of a PUBLISH: the message's own
/// properties and the three that differ per delivery, which replace those
/// in `props` (whose topic alias, subscription identifiers and message
/// expiry interval are ignored).
#[derive(Clone, Copy, Debug, Default)]
pub struct PublishV5<'a> {
    pub props: Option<&'a Properties>,
    pub topic_alias: Option<u16>,
    pub subscription_identifiers: &'a [u32],
    pub message_expiry_interval: Option<u32>,
}

impl<'a> PublishV5<'a> {
    fn delivery(&self) -> Delivery<'a> {
        Delivery {
            topic_alias: self.topic_alias,
            subscription_identifiers: self.subscription_identifiers,
            message_expiry_interval: self.message_expiry_interval,
        }
    }
}

/// Remaining length of an MQTT 5 PUBLISH with these parts.
fn publish_v5_body_len(topic_len: usize, payload_len: usize, qos: QoS, v5: &PublishV5) -> usize {
    publish_body_len(topic_len, payload_len, qos) + properties_len_with(v5.props, v5.delivery())
}

/// Bytes of the whole MQTT 5 PUBLISH [`encode_publish_v5`] writes for these
/// parts: to hold against the client's Maximum Packet Size before encoding.
pub fn publish_v5_len(topic_len: usize, payload_len: usize, qos: QoS, v5: &PublishV5) -> usize {
    packet_len(publish_v5_body_len(topic_len, payload_len, qos, v5))
}

/// Append an MQTT 5 PUBLISH built from parts, as [`encode_publish`] does
/// for 3.1.1, with the properties of `v5`: every property of `v5.props`
/// as it is (user properties in order) but the three per-delivery ones,
/// which come from `v5`. `topic` may be "" when `v5.topic_alias` is set.
#[allow(clippy::too_many_arguments)]
pub fn encode_publish_v5(
    out: &mut Vec<u8>,
    topic: &str,
    payload: &[u8],
    qos: QoS,
    pkid: u16,
    retain: bool,
    dup: bool,
    v5: &PublishV5,
) {
    let remaining = publish_v5_body_len(topic.len(), payload.len(), qos, v5);
    write_publish_head(out, remaining, topic, qos, pkid, retain, dup);
    write_properties_with(out, v5.props, v5.delivery());
    out.extend_from_slice(payload);
}

/// Remaining length of `p` on a connection of `version`.
pub(crate) fn publish_len(p: &Publish, version: ProtocolVersion) -> usize {
    let len = publish_body_len(p.topic.len(), p.payload.len(), p.qos);
    len + len_if_v5(version, p.props.as_deref())
}

/// Appends `p` as a whole packet on a connection of `version`.
pub(crate) fn encode_publish_packet(p: &Publish, version: ProtocolVersion, out: &mut Vec<u8>) {
    if !version.is_v5() {
        encode_publish(out, &p.topic, &p.payload, p.qos, p.pkid, p.retain, p.dup);
        return;
    }
    let props = p.props.as_deref();
    let remaining = publish_len(p, version);
    write_publish_head(out, remaining, &p.topic, p.qos, p.pkid, p.retain, p.dup);
    write_if_v5(out, version, props);
    out.extend_from_slice(&p.payload);
}

/// Decodes the body of a PUBLISH whose fixed-header `flags` were checked.
/// The payload is a zero-copy slice of the reader's buffer. In MQTT 5 the
/// topic may be empty when a topic alias stands for it.
pub(crate) fn decode_publish(
    flags: u8,
    r: &mut Reader<'_>,
    version: ProtocolVersion,
    side: Side,
) -> Result<Publish, DecodeError> {
    let qos = header::qos((flags >> 1) & 0b11)?;
    let topic = if version.is_v5() {
        r.topic_name_or_empty()?
    } else {
        r.topic_name()?
    };
    let pkid = match qos {
        QoS::AtMostOnce => 0,
        _ => r.pkid()?,
    };
    let props = read_if_v5(r, version, PUBLISH, side)?;
    if topic.is_empty() && props.as_ref().and_then(|p| p.topic_alias).is_none() {
        return Err(DecodeError::TopicAliasWithoutTopic);
    }
    Ok(Publish {
        dup: flags & FLAG_DUP != 0,
        qos,
        retain: flags & FLAG_RETAIN != 0,
        topic,
        pkid,
        payload: r.rest(),
        props,
    })
}

/// Decodes a body that is exactly a nonzero packet identifier: the
/// 3.1/3.1.1 acknowledgements and UNSUBACK.
pub(crate) fn decode_pkid_only(r: &mut Reader<'_>) -> Result<u16, DecodeError> {
    if r.remaining() != 2 {
        return Err(DecodeError::Truncated);
    }
    r.pkid()
}

/// Decodes the body of a PUBACK, PUBREC, PUBREL or PUBCOMP (`packet_type`).
/// MQTT 5 short forms (§3.4.2.1): remaining length 2 is SUCCESS without
/// properties, 3 a reason code without properties.
pub(crate) fn decode_ack(
    packet_type: u8,
    r: &mut Reader<'_>,
    version: ProtocolVersion,
) -> Result<Ack, DecodeError> {
    if !version.is_v5() {
        return decode_pkid_only(r).map(Ack::new);
    }
    let pkid = r.pkid()?;
    let (reason, props) = read_reason_tail(packet_type, r)?;
    Ok(Ack {
        pkid,
        reason,
        props,
    })
}

/// Remaining length of an acknowledgement: the shortest form that says
/// everything it holds.
pub(crate) fn ack_body_len(ack: &Ack, version: ProtocolVersion) -> usize {
    match version.is_v5() {
        true => 2 + reason_tail_len(ack.reason, ack.props.as_deref()),
        false => 2,
    }
}

/// Appends the body of an acknowledgement (no fixed header).
pub(crate) fn encode_ack_body(ack: &Ack, version: ProtocolVersion, out: &mut Vec<u8>) {
    write_u16(out, ack.pkid);
    if version.is_v5() {
        write_reason_tail(out, ack.reason, ack.props.as_deref());
    }
}

#[cfg(test)]
mod tests {
    use super::super::{decode, encode, encoded_len, Packet, Side};
    use super::*;

    const V: super::super::ProtocolVersion = super::super::ProtocolVersion::V311;
    use bytes::Bytes;

    fn dec(bytes: &[u8]) -> Result<Option<(Packet, usize)>, DecodeError> {
        decode(&Bytes::copy_from_slice(bytes), 1 << 20, Side::Any, V)
    }

    fn publish(qos: QoS, pkid: u16, dup: bool, retain: bool, payload: &'static [u8]) -> Publish {
        Publish {
            dup,
            qos,
            retain,
            topic: "a/b/ü".into(),
            pkid,
            payload: Bytes::from_static(payload),
            props: None,
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
            encode(&packet, V, &mut out);
            assert_eq!(out.len(), encoded_len(&packet, V));
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
            props: None,
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
            let Ok(Some((Packet::Publish(p), used))) = decode(&rest, 1024, Side::Server, V) else {
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
        type MakeAck = fn(Ack) -> Packet;
        let cases: [(MakeAck, u8); 4] = [
            (Packet::PubAck, 0x40),
            (Packet::PubRec, 0x50),
            (Packet::PubRel, 0x62),
            (Packet::PubComp, 0x70),
        ];
        for (make, first) in cases {
            for pkid in [1, 0x1234, 0xFFFF] {
                let packet = make(Ack::new(pkid));
                let mut out = Vec::new();
                encode(&packet, V, &mut out);
                let [hi, lo] = pkid.to_be_bytes();
                assert_eq!(out, [first, 0x02, hi, lo]);
                assert_eq!(encoded_len(&packet, V), 4);
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

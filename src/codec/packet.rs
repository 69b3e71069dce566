//! Dispatch over packet types: [`decode`] one packet from the front of a
//! buffer, [`encode`] one packet onto an output buffer, and
//! [`encoded_len`] to size it beforehand, each for a protocol version.
//!
//! Called by the connection task, the test harnesses and the load tool.
//! The fixed header is checked by `header.rs`; each packet family's body is
//! handled by its own file.

use super::connect::{
    connack_body_len, connect_body_len, decode_connack, decode_connect, encode_connack_body,
    encode_connect_body,
};
use super::control::{
    auth_body_len, decode_auth, decode_disconnect, disconnect_body_len, encode_auth_body,
    encode_disconnect_body,
};
use super::header::{self, packet_len, parse_fixed_header, write_remaining_length, Reader};
use super::publish::{
    ack_body_len, decode_ack, decode_publish, encode_ack_body, encode_publish_packet, publish_len,
};
use super::subscribe::{
    decode_suback, decode_subscribe, decode_unsuback, decode_unsubscribe, encode_suback_body,
    encode_subscribe_body, encode_unsuback_body, encode_unsubscribe_body, suback_body_len,
    subscribe_body_len, unsuback_body_len, unsubscribe_body_len,
};
use super::{DecodeError, Packet, ProtocolVersion, Side};
use bytes::Bytes;

/// Decode one packet from the front of `buf`. Ok(None) = need more bytes
/// (not an error). Ok(Some((packet, used))) where used = total bytes of that
/// packet (fixed header + remaining length).
///
/// `max_packet_size` is the largest whole packet accepted, fixed header
/// included; it is checked as soon as the remaining length is known, before
/// the whole packet has arrived. `side` rejects packet types that side never
/// receives. `version` is the connection's protocol version; a CONNECT is
/// decoded by its own protocol name and level whatever `version` says. The
/// payload of PUBLISH is a zero-copy slice of `buf`.
pub fn decode(
    buf: &Bytes,
    max_packet_size: usize,
    side: Side,
    version: ProtocolVersion,
) -> Result<Option<(Packet, usize)>, DecodeError> {
    let Some(fixed) = parse_fixed_header(buf, max_packet_size, side, version)? else {
        return Ok(None);
    };
    if buf.len() < fixed.total {
        return Ok(None);
    }
    let mut r = Reader::new(buf, fixed.body_start, fixed.total);
    let body = Body {
        packet_type: fixed.packet_type,
        flags: fixed.flags,
        side,
        version,
    };
    let packet = body.decode(&mut r)?;
    Ok(Some((packet, fixed.total)))
}

/// The whole size of the packet at the front of `buf` once its fixed header
/// has arrived (`Ok(None)` before), with the checks [`decode`] makes on it:
/// a reader can wait for that many bytes before decoding again.
pub fn frame_len(
    buf: &[u8],
    max_packet_size: usize,
    side: Side,
    version: ProtocolVersion,
) -> Result<Option<usize>, DecodeError> {
    Ok(parse_fixed_header(buf, max_packet_size, side, version)?.map(|f| f.total))
}

/// What the body decoders need to know from the fixed header and the caller.
struct Body {
    packet_type: u8,
    flags: u8,
    side: Side,
    version: ProtocolVersion,
}

impl Body {
    /// Decodes the body in `r` of a packet whose fixed header was checked.
    fn decode(&self, r: &mut Reader<'_>) -> Result<Packet, DecodeError> {
        let v = self.version;
        let packet = match self.packet_type {
            header::CONNECT => Packet::Connect(Box::new(decode_connect(r)?)),
            header::CONNACK => Packet::ConnAck(decode_connack(r, v)?),
            header::PUBLISH => Packet::Publish(decode_publish(self.flags, r, v, self.side)?),
            header::PUBACK => Packet::PubAck(decode_ack(header::PUBACK, r, v)?),
            header::PUBREC => Packet::PubRec(decode_ack(header::PUBREC, r, v)?),
            header::PUBREL => Packet::PubRel(decode_ack(header::PUBREL, r, v)?),
            header::PUBCOMP => Packet::PubComp(decode_ack(header::PUBCOMP, r, v)?),
            header::SUBSCRIBE => Packet::Subscribe(decode_subscribe(r, v)?),
            header::SUBACK => Packet::SubAck(decode_suback(r, v)?),
            header::UNSUBSCRIBE => Packet::Unsubscribe(decode_unsubscribe(r, v)?),
            header::UNSUBACK => Packet::UnsubAck(decode_unsuback(r, v)?),
            header::PINGREQ => empty_body(r, Packet::PingReq)?,
            header::PINGRESP => empty_body(r, Packet::PingResp)?,
            header::DISCONNECT => Packet::Disconnect(decode_disconnect(r, v)?),
            header::AUTH => Packet::Auth(decode_auth(r)?),
            other => return Err(DecodeError::ReservedPacketType(other)),
        };
        Ok(packet)
    }
}

/// PINGREQ and PINGRESP have remaining length 0.
fn empty_body(r: &Reader<'_>, packet: Packet) -> Result<Packet, DecodeError> {
    r.finish()?;
    Ok(packet)
}

/// Packet type of `packet`.
fn packet_type(packet: &Packet) -> u8 {
    match packet {
        Packet::Connect(_) => header::CONNECT,
        Packet::ConnAck(_) => header::CONNACK,
        Packet::Publish(_) => header::PUBLISH,
        Packet::PubAck(_) => header::PUBACK,
        Packet::PubRec(_) => header::PUBREC,
        Packet::PubRel(_) => header::PUBREL,
        Packet::PubComp(_) => header::PUBCOMP,
        Packet::Subscribe(_) => header::SUBSCRIBE,
        Packet::SubAck(_) => header::SUBACK,
        Packet::Unsubscribe(_) => header::UNSUBSCRIBE,
        Packet::UnsubAck(_) => header::UNSUBACK,
        Packet::PingReq => header::PINGREQ,
        Packet::PingResp => header::PINGRESP,
        Packet::Disconnect(_) => header::DISCONNECT,
        Packet::Auth(_) => header::AUTH,
    }
}

/// Remaining length of `packet` on a connection of `version`.
fn body_len(packet: &Packet, version: ProtocolVersion) -> usize {
    match packet {
        Packet::Connect(c) => connect_body_len(c),
        Packet::ConnAck(ack) => connack_body_len(ack, version),
        Packet::Publish(p) => publish_len(p, version),
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            ack_body_len(a, version)
        }
        Packet::Subscribe(s) => subscribe_body_len(s, version),
        Packet::SubAck(s) => suback_body_len(s, version),
        Packet::Unsubscribe(u) => unsubscribe_body_len(u, version),
        Packet::UnsubAck(u) => unsuback_body_len(u, version),
        Packet::PingReq | Packet::PingResp => 0,
        Packet::Disconnect(d) => disconnect_body_len(d, version),
        Packet::Auth(a) => auth_body_len(a),
    }
}

/// Exact number of bytes [`encode`] will append.
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> usize {
    packet_len(body_len(packet, version))
}

/// Append the encoding of `packet` for a connection of `version` to `out`.
/// A Connect is encoded for its own `version` (MQIsdp/3, MQTT/4 or MQTT/5).
/// AUTH is an MQTT 5 packet; the caller sends it only on MQTT 5
/// connections.
pub fn encode(packet: &Packet, version: ProtocolVersion, out: &mut Vec<u8>) {
    if let Packet::Publish(p) = packet {
        encode_publish_packet(p, version, out);
        return;
    }
    let packet_type = packet_type(packet);
    let remaining = body_len(packet, version);
    out.reserve(packet_len(remaining));
    out.push((packet_type << 4) | header::fixed_flags(packet_type));
    write_remaining_length(out, remaining);
    match packet {
        Packet::Connect(c) => encode_connect_body(c, out),
        Packet::ConnAck(ack) => encode_connack_body(ack, version, out),
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            encode_ack_body(a, version, out)
        }
        Packet::Subscribe(s) => encode_subscribe_body(s, version, out),
        Packet::SubAck(s) => encode_suback_body(s, version, out),
        Packet::Unsubscribe(u) => encode_unsubscribe_body(u, version, out),
        Packet::UnsubAck(u) => encode_unsuback_body(u, version, out),
        Packet::Disconnect(d) => encode_disconnect_body(d, version, out),
        Packet::Auth(a) => encode_auth_body(a, out),
        Packet::Publish(_) | Packet::PingReq | Packet::PingResp => {}
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::{
        Ack, ConnAck, Connect, Disconnect, LastWill, ProtocolVersion, Publish, QoS, Reason, SubAck,
        SubAckCode, Subscribe, SubscribeFilter, UnsubAck, Unsubscribe,
    };
    use super::*;

    const V: super::super::ProtocolVersion = super::super::ProtocolVersion::V311;

    const MAX: usize = 1 << 20;

    fn connect(version: ProtocolVersion) -> Packet {
        Packet::Connect(Box::new(Connect {
            version,
            client_id: "id".into(),
            clean_session: false,
            keep_alive: 30,
            will: Some(LastWill {
                topic: "w".into(),
                payload: Bytes::from_static(b"gone"),
                qos: QoS::AtLeastOnce,
                retain: false,
                props: None,
            }),
            username: Some("u".into()),
            password: Some(Bytes::from_static(b"p")),
            props: None,
        }))
    }

    /// One packet of every type, CONNECT in both versions, PUBLISH large
    /// enough for a two-byte remaining length.
    pub(in crate::codec) fn every_packet() -> Vec<Packet> {
        vec![
            connect(ProtocolVersion::V31),
            connect(ProtocolVersion::V311),
            Packet::ConnAck(ConnAck {
                session_present: true,
                code: Reason::SUCCESS,
                props: None,
            }),
            Packet::Publish(Publish {
                dup: true,
                qos: QoS::ExactlyOnce,
                retain: true,
                topic: "t/1".into(),
                pkid: 9,
                payload: Bytes::from(vec![0x5A; 200]),
                props: None,
            }),
            Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: false,
                topic: "t".into(),
                pkid: 0,
                payload: Bytes::new(),
                props: None,
            }),
            Packet::PubAck(Ack::new(1)),
            Packet::PubRec(Ack::new(2)),
            Packet::PubRel(Ack::new(3)),
            Packet::PubComp(Ack::new(4)),
            Packet::Subscribe(Subscribe {
                pkid: 5,
                filters: vec![SubscribeFilter::new("s/#", QoS::AtLeastOnce)],
                props: None,
            }),
            Packet::SubAck(SubAck {
                pkid: 5,
                codes: vec![SubAckCode::Granted(QoS::AtLeastOnce), SubAckCode::Failure],
                props: None,
            }),
            Packet::Unsubscribe(Unsubscribe {
                pkid: 6,
                filters: vec!["s/#".into()],
                props: None,
            }),
            Packet::UnsubAck(UnsubAck::new(6)),
            Packet::PingReq,
            Packet::PingResp,
            Packet::Disconnect(Disconnect::normal()),
        ]
    }

    fn bytes_of(packet: &Packet) -> Vec<u8> {
        let mut out = Vec::new();
        encode(packet, V, &mut out);
        assert_eq!(out.len(), encoded_len(packet, V), "{packet:?}");
        out
    }

    #[test]
    fn every_packet_round_trips() {
        for packet in every_packet() {
            let out = bytes_of(&packet);
            let buf = Bytes::from(out.clone());
            assert_eq!(
                decode(&buf, MAX, Side::Any, V),
                Ok(Some((packet, out.len())))
            );
        }
    }

    #[test]
    fn every_split_point_needs_more_bytes() {
        for packet in every_packet() {
            let out = bytes_of(&packet);
            for split in 0..out.len() {
                let part = Bytes::copy_from_slice(&out[..split]);
                assert_eq!(
                    decode(&part, MAX, Side::Any, V),
                    Ok(None),
                    "{packet:?} at {split}"
                );
            }
            let whole = Bytes::from(out.clone());
            assert_eq!(
                decode(&whole, MAX, Side::Any, V),
                Ok(Some((packet, out.len())))
            );
        }
    }

    #[test]
    fn back_to_back_packets() {
        let packets = every_packet();
        let mut out = Vec::new();
        for p in &packets {
            encode(p, V, &mut out);
        }
        let buf = Bytes::from(out);
        let mut offset = 0;
        for expected in packets {
            let rest = buf.slice(offset..);
            let Ok(Some((packet, used))) = decode(&rest, MAX, Side::Any, V) else {
                panic!("expected {expected:?}");
            };
            assert_eq!(packet, expected);
            offset += used;
        }
        assert_eq!(offset, buf.len());
    }

    #[test]
    fn sides_reject_what_they_never_receive() {
        let server_only = [2u8, 9, 11, 13];
        let client_only = [1u8, 8, 10, 12, 14];
        for packet in every_packet() {
            let out = bytes_of(&packet);
            let buf = Bytes::from(out);
            let packet_type = buf[0] >> 4;
            let server = decode(&buf, MAX, Side::Server, V);
            let client = decode(&buf, MAX, Side::Client, V);
            if server_only.contains(&packet_type) {
                assert_eq!(server, Err(DecodeError::UnexpectedPacket(packet_type)));
                assert!(matches!(client, Ok(Some(_))));
            } else if client_only.contains(&packet_type) {
                assert_eq!(client, Err(DecodeError::UnexpectedPacket(packet_type)));
                assert!(matches!(server, Ok(Some(_))));
            } else {
                assert!(matches!(server, Ok(Some(_))) && matches!(client, Ok(Some(_))));
            }
        }
        // Judged from the first byte alone.
        let first = Bytes::from_static(&[0x20]);
        assert_eq!(
            decode(&first, MAX, Side::Server, V),
            Err(DecodeError::UnexpectedPacket(2))
        );
    }

    #[test]
    fn max_packet_size_is_checked_before_the_packet_arrives() {
        // PUBLISH with remaining length 200: 203 bytes in all, 3 here.
        let head = Bytes::from_static(&[0x30, 0xC8, 0x01]);
        assert_eq!(
            decode(&head, 202, Side::Server, V),
            Err(DecodeError::PacketTooLarge {
                size: 203,
                max: 202
            })
        );
        assert_eq!(decode(&head, 203, Side::Server, V), Ok(None));
        assert_eq!(
            decode(
                &Bytes::from_static(&[0x10, 0xFF, 0xFF, 0x7F]),
                1000,
                Side::Server,
                V
            ),
            Err(DecodeError::PacketTooLarge {
                size: 2_097_155,
                max: 1000
            })
        );
        // A packet exactly at the limit is accepted.
        let ping = Bytes::from_static(&[0xC0, 0x00]);
        assert_eq!(
            decode(&ping, 2, Side::Server, V),
            Ok(Some((Packet::PingReq, 2)))
        );
        assert!(decode(&ping, 1, Side::Server, V).is_err());
    }

    #[test]
    fn fixed_header_malformed_table() {
        use DecodeError::*;
        let flags = |packet_type, flags| InvalidFlags { packet_type, flags };
        let cases: &[(&str, &[u8], DecodeError)] = &[
            // [MQTT-2.2.1] types 0 and 15 are reserved.
            ("2.2.1 type 0", &[0x00, 0x00], ReservedPacketType(0)),
            ("2.2.1 type 15", &[0xF0, 0x00], ReservedPacketType(15)),
            // [MQTT-2.2.2-1] / [MQTT-2.2.2-2] fixed flag bits.
            ("2.2.2-2 connect", &[0x11, 0x00], flags(1, 1)),
            ("2.2.2-2 pingreq", &[0xC8, 0x00], flags(12, 8)),
            ("2.2.2-2 disconnect", &[0xE2, 0x00], flags(14, 2)),
            ("2.2.2-2 pubrel", &[0x64, 0x02, 0, 1], flags(6, 4)),
            ("3.8.1-1 subscribe", &[0x83, 0x00], flags(8, 3)),
            // §2.2.3 remaining length over four bytes.
            (
                "2.2.3",
                &[0x30, 0xFF, 0xFF, 0xFF, 0xFF],
                MalformedRemainingLength,
            ),
            // [MQTT-3.12] / [MQTT-3.13] / [MQTT-3.14]: no variable header.
            ("3.12 pingreq", &[0xC0, 0x01, 0x00], Truncated),
            ("3.13 pingresp", &[0xD0, 0x01, 0x00], Truncated),
            ("3.14 disconnect", &[0xE0, 0x01, 0x00], Truncated),
        ];
        for (name, bytes, err) in cases {
            let buf = Bytes::copy_from_slice(bytes);
            assert_eq!(decode(&buf, MAX, Side::Any, V), Err(err.clone()), "{name}");
        }
    }

    /// Arbitrary bytes never panic at any version, and whatever decodes
    /// re-encodes to bytes that decode to the same packet (non-minimal
    /// lengths aside). Seeds: the 3.1.1 packets and the MQTT 5 ones.
    #[test]
    fn random_bytes_never_panic() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let v5 = ProtocolVersion::V5;
        let mut seeds: Vec<Vec<u8>> = every_packet().iter().map(bytes_of).collect();
        for p in super::super::v5_tests::every_v5_packet() {
            let mut out = Vec::new();
            encode(&p, v5, &mut out);
            seeds.push(out);
        }
        let versions = [ProtocolVersion::V31, ProtocolVersion::V311, v5];
        for i in 0..30_000 {
            let version = versions[i % 3];
            let mut bytes = seeds[(i / 3) % seeds.len()].clone();
            let flips = (next() % 4) as usize;
            for _ in 0..=flips {
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
            }
            let cut = (next() as usize) % (bytes.len() + 1);
            bytes.truncate(cut.max(bytes.len() / 2));
            let buf = Bytes::from(bytes);
            if let Ok(Some((packet, used))) = decode(&buf, MAX, Side::Any, version) {
                assert!(used <= buf.len());
                let mut again = Vec::new();
                encode(&packet, version, &mut again);
                assert_eq!(again.len(), encoded_len(&packet, version));
                let again = Bytes::from(again);
                assert_eq!(
                    decode(&again, MAX, Side::Any, version),
                    Ok(Some((packet, again.len()))),
                    "{version:?}"
                );
            }
        }
    }
}

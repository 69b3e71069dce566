//! SUBSCRIBE (§3.8), SUBACK (§3.9) and UNSUBSCRIBE (§3.10): body decoding,
//! encoding and sizing. UNSUBACK is only a packet id and lives with the
//! other id-only packets in `publish.rs`.
//!
//! Topic filters are decoded as plain UTF-8 strings: wildcard placement is
//! the broker's business (it answers a bad filter with SUBACK 0x80).

use super::header::{field_len, qos, write_string, write_u16, Reader};
use super::{DecodeError, SubAck, SubAckCode, Subscribe, SubscribeFilter, Unsubscribe};

const SUBACK_FAILURE: u8 = 0x80;

/// Decodes the body of a SUBSCRIBE.
pub(crate) fn decode_subscribe(r: &mut Reader<'_>) -> Result<Subscribe, DecodeError> {
    let pkid = r.pkid()?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?;
        // [MQTT-3-8.3-4]: the upper six bits are reserved and must be 0.
        let requested = r.u8()?;
        filters.push(SubscribeFilter {
            filter,
            qos: qos(requested)?,
        });
    }
    if filters.is_empty() {
        return Err(DecodeError::EmptySubscription);
    }
    Ok(Subscribe { pkid, filters })
}

/// Remaining length of a SUBSCRIBE.
pub(crate) fn subscribe_body_len(s: &Subscribe) -> usize {
    2 + s
        .filters
        .iter()
        .map(|f| field_len(f.filter.len()) + 1)
        .sum::<usize>()
}

/// Appends the body of a SUBSCRIBE (no fixed header).
pub(crate) fn encode_subscribe_body(s: &Subscribe, out: &mut Vec<u8>) {
    write_u16(out, s.pkid);
    for f in &s.filters {
        write_string(out, &f.filter);
        out.push(f.qos as u8);
    }
}

/// Decodes the body of a SUBACK: a packet id and one or more return codes,
/// each a granted QoS or 0x80. Any other code is reported as `InvalidQoS`.
pub(crate) fn decode_suback(r: &mut Reader<'_>) -> Result<SubAck, DecodeError> {
    let pkid = r.pkid()?;
    let mut codes = Vec::with_capacity(r.remaining());
    while !r.is_empty() {
        let code = match r.u8()? {
            SUBACK_FAILURE => SubAckCode::Failure,
            granted => SubAckCode::Granted(qos(granted)?),
        };
        codes.push(code);
    }
    if codes.is_empty() {
        return Err(DecodeError::Truncated);
    }
    Ok(SubAck { pkid, codes })
}

/// Remaining length of a SUBACK.
pub(crate) fn suback_body_len(s: &SubAck) -> usize {
    2 + s.codes.len()
}

/// Appends the body of a SUBACK (no fixed header).
pub(crate) fn encode_suback_body(s: &SubAck, out: &mut Vec<u8>) {
    write_u16(out, s.pkid);
    out.extend(s.codes.iter().map(|code| match code {
        SubAckCode::Granted(q) => *q as u8,
        SubAckCode::Failure => SUBACK_FAILURE,
    }));
}

/// Decodes the body of an UNSUBSCRIBE.
pub(crate) fn decode_unsubscribe(r: &mut Reader<'_>) -> Result<Unsubscribe, DecodeError> {
    let pkid = r.pkid()?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(r.string()?);
    }
    if filters.is_empty() {
        return Err(DecodeError::EmptySubscription);
    }
    Ok(Unsubscribe { pkid, filters })
}

/// Remaining length of an UNSUBSCRIBE.
pub(crate) fn unsubscribe_body_len(u: &Unsubscribe) -> usize {
    2 + u.filters.iter().map(|f| field_len(f.len())).sum::<usize>()
}

/// Appends the body of an UNSUBSCRIBE (no fixed header).
pub(crate) fn encode_unsubscribe_body(u: &Unsubscribe, out: &mut Vec<u8>) {
    write_u16(out, u.pkid);
    for f in &u.filters {
        write_string(out, f);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{decode, encode, encoded_len, Packet, QoS, Side};
    use super::*;
    use bytes::Bytes;

    fn dec(bytes: &[u8]) -> Result<Option<(Packet, usize)>, DecodeError> {
        decode(&Bytes::copy_from_slice(bytes), 1 << 20, Side::Any)
    }

    fn round_trip(packet: Packet) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&packet, &mut out);
        assert_eq!(out.len(), encoded_len(&packet));
        assert_eq!(dec(&out), Ok(Some((packet, out.len()))));
        out
    }

    fn filter(f: &str, qos: QoS) -> SubscribeFilter {
        SubscribeFilter {
            filter: f.into(),
            qos,
        }
    }

    #[test]
    fn subscribe_round_trip() {
        round_trip(Packet::Subscribe(Subscribe {
            pkid: 7,
            filters: vec![filter("a/+", QoS::AtMostOnce)],
        }));
        round_trip(Packet::Subscribe(Subscribe {
            pkid: 0xFFFF,
            filters: vec![
                filter("#", QoS::ExactlyOnce),
                filter("x/y/z", QoS::AtLeastOnce),
                // Not a valid filter, but the codec leaves that to the broker.
                filter("a#", QoS::AtMostOnce),
            ],
        }));
    }

    /// The SUBSCRIBE payload example of §3.8.3 (Figure 3.23): "a/b" QoS 1
    /// and "c/d" QoS 2, with packet id 10.
    #[test]
    fn subscribe_spec_bytes() {
        let bytes = [
            0x82, 0x0E, 0x00, 0x0A, 0x00, 0x03, b'a', b'/', b'b', 0x01, 0x00, 0x03, b'c', b'/',
            b'd', 0x02,
        ];
        let out = round_trip(Packet::Subscribe(Subscribe {
            pkid: 10,
            filters: vec![
                filter("a/b", QoS::AtLeastOnce),
                filter("c/d", QoS::ExactlyOnce),
            ],
        }));
        assert_eq!(out, bytes);
    }

    /// The SUBACK payload example of §3.9.3 (Figure 3.26): 0, 1, 2, 0x80.
    #[test]
    fn suback_spec_bytes() {
        let out = round_trip(Packet::SubAck(SubAck {
            pkid: 10,
            codes: vec![
                SubAckCode::Granted(QoS::AtMostOnce),
                SubAckCode::Granted(QoS::AtLeastOnce),
                SubAckCode::Granted(QoS::ExactlyOnce),
                SubAckCode::Failure,
            ],
        }));
        assert_eq!(out, [0x90, 0x06, 0x00, 0x0A, 0x00, 0x01, 0x02, 0x80]);
    }

    /// The UNSUBSCRIBE payload example of §3.10.3 (Figure 3.30).
    #[test]
    fn unsubscribe_spec_bytes() {
        let out = round_trip(Packet::Unsubscribe(Unsubscribe {
            pkid: 10,
            filters: vec!["a/b".into(), "c/d".into()],
        }));
        assert_eq!(
            out,
            [0xA2, 0x0C, 0x00, 0x0A, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x03, b'c', b'/', b'd']
        );
    }

    #[test]
    fn unsuback_round_trip() {
        let out = round_trip(Packet::UnsubAck(10));
        assert_eq!(out, [0xB0, 0x02, 0x00, 0x0A]);
    }

    #[test]
    fn subscribe_family_malformed_table() {
        use DecodeError::*;
        let flags = |packet_type, flags| InvalidFlags { packet_type, flags };
        let cases: &[(&str, &[u8], DecodeError)] = &[
            // [MQTT-3.8.1-1] SUBSCRIBE flags must be 0010.
            ("3.8.1-1", &[0x80, 0x06, 0, 1, 0, 1, b'a', 0], flags(8, 0)),
            // [MQTT-3.8.3-1] filter must be UTF-8.
            ("3.8.3-1", &[0x82, 0x06, 0, 1, 0, 1, 0xFF, 0], InvalidUtf8),
            // [MQTT-3.8.3-3] at least one filter.
            ("3.8.3-3", &[0x82, 0x02, 0, 1], EmptySubscription),
            // [MQTT-3-8.3-4] requested QoS 3 or reserved bits set.
            (
                "3.8.3-4 qos3",
                &[0x82, 0x06, 0, 1, 0, 1, b'a', 3],
                InvalidQoS,
            ),
            (
                "3.8.3-4 bits",
                &[0x82, 0x06, 0, 1, 0, 1, b'a', 0x41],
                InvalidQoS,
            ),
            // [MQTT-2.3.1-1] packet id 0.
            (
                "sub 2.3.1-1",
                &[0x82, 0x06, 0, 0, 0, 1, b'a', 0],
                ZeroPacketId,
            ),
            // Filter without its requested QoS byte.
            ("sub no qos", &[0x82, 0x05, 0, 1, 0, 1, b'a'], Truncated),
            ("sub no pkid", &[0x82, 0x01, 0], Truncated),
            // [MQTT-3.10.1-1] UNSUBSCRIBE flags must be 0010.
            ("3.10.1-1", &[0xA0, 0x05, 0, 1, 0, 1, b'a'], flags(10, 0)),
            // [MQTT-3.10.3-2] at least one filter.
            ("3.10.3-2", &[0xA2, 0x02, 0, 1], EmptySubscription),
            ("3.10.3-1", &[0xA2, 0x05, 0, 1, 0, 1, 0xC0], InvalidUtf8),
            (
                "unsub 2.3.1-1",
                &[0xA2, 0x05, 0, 0, 0, 1, b'a'],
                ZeroPacketId,
            ),
            ("unsub short", &[0xA2, 0x05, 0, 1, 0, 2, b'a'], Truncated),
            // §3.9.3 SUBACK codes other than 0, 1, 2, 0x80 are reserved.
            ("3.9.3-2 code 3", &[0x90, 0x03, 0, 1, 3], InvalidQoS),
            ("3.9.3-2 code 0x81", &[0x90, 0x03, 0, 1, 0x81], InvalidQoS),
            ("suback empty", &[0x90, 0x02, 0, 1], Truncated),
            ("suback 2.3.1-1", &[0x90, 0x03, 0, 0, 0], ZeroPacketId),
            // UNSUBACK: remaining length exactly 2, flags 0, id nonzero.
            ("3.11.1 long", &[0xB0, 0x03, 0, 1, 0], Truncated),
            ("unsuback 2.3.1-1", &[0xB0, 0x02, 0, 0], ZeroPacketId),
            ("unsuback flags", &[0xB2, 0x02, 0, 1], flags(11, 2)),
        ];
        for (name, bytes, err) in cases {
            assert_eq!(dec(bytes), Err(err.clone()), "{name}");
        }
    }
}

//! SUBSCRIBE (§3.8), SUBACK (§3.9), UNSUBSCRIBE (§3.10) and UNSUBACK
//! (§3.11): body decoding, encoding and sizing, for 3.1, 3.1.1 and 5.0.
//!
//! Called by `packet.rs`. Topic filters are decoded as plain UTF-8 strings:
//! wildcard placement is the broker's business (it answers a bad filter
//! with a SUBACK failure).

use super::header::{self, field_len, qos, write_string, write_u16, Reader};
use super::properties::{len_if_v5, read_if_v5, write_if_v5};
use super::publish::decode_pkid_only;
use super::reason::check_reason;
use super::{
    DecodeError, ProtocolVersion, Reason, Side, SubAck, SubAckCode, Subscribe, SubscribeFilter,
    UnsubAck, Unsubscribe,
};

const SUBACK_FAILURE: u8 = 0x80;
const OPT_QOS: u8 = 0b0000_0011;
const OPT_NO_LOCAL: u8 = 0b0000_0100;
const OPT_RETAIN_AS_PUBLISHED: u8 = 0b0000_1000;
const OPT_RETAIN_HANDLING_SHIFT: u8 = 4;
const OPT_RESERVED: u8 = 0b1100_0000;

/// The subscription options byte of one filter (§3.8.3.1). Before MQTT 5
/// only the QoS bits may be set ([MQTT-3-8.3-4], reported as `InvalidQoS`
/// as before); in MQTT 5 bits 6-7 are reserved ([MQTT-3.8.3-5]) and retain
/// handling 3 is not defined.
fn read_options(
    filter: String,
    options: u8,
    version: ProtocolVersion,
) -> Result<SubscribeFilter, DecodeError> {
    if !version.is_v5() {
        return Ok(SubscribeFilter::new(filter, qos(options)?));
    }
    let retain_handling = options >> OPT_RETAIN_HANDLING_SHIFT & 0b11;
    if options & OPT_RESERVED != 0 || retain_handling == 3 {
        return Err(DecodeError::InvalidSubscribeOptions(options));
    }
    Ok(SubscribeFilter {
        filter,
        qos: qos(options & OPT_QOS)?,
        no_local: options & OPT_NO_LOCAL != 0,
        retain_as_published: options & OPT_RETAIN_AS_PUBLISHED != 0,
        retain_handling,
    })
}

/// The options byte of `f` for `version`.
fn options_byte(f: &SubscribeFilter, version: ProtocolVersion) -> u8 {
    let mut options = f.qos as u8;
    if version.is_v5() {
        if f.no_local {
            options |= OPT_NO_LOCAL;
        }
        if f.retain_as_published {
            options |= OPT_RETAIN_AS_PUBLISHED;
        }
        options |= (f.retain_handling & 0b11) << OPT_RETAIN_HANDLING_SHIFT;
    }
    options
}

/// Decodes the body of a SUBSCRIBE.
pub(crate) fn decode_subscribe(
    r: &mut Reader<'_>,
    version: ProtocolVersion,
) -> Result<Subscribe, DecodeError> {
    let pkid = r.pkid()?;
    let props = read_if_v5(r, version, header::SUBSCRIBE, Side::Any)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?;
        filters.push(read_options(filter, r.u8()?, version)?);
    }
    if filters.is_empty() {
        return Err(DecodeError::EmptySubscription);
    }
    Ok(Subscribe {
        pkid,
        filters,
        props,
    })
}

/// Remaining length of a SUBSCRIBE.
pub(crate) fn subscribe_body_len(s: &Subscribe, version: ProtocolVersion) -> usize {
    let filters = s.filters.iter().map(|f| field_len(f.filter.len()) + 1);
    2 + len_if_v5(version, s.props.as_deref()) + filters.sum::<usize>()
}

/// Appends the body of a SUBSCRIBE (no fixed header).
pub(crate) fn encode_subscribe_body(s: &Subscribe, version: ProtocolVersion, out: &mut Vec<u8>) {
    write_u16(out, s.pkid);
    write_if_v5(out, version, s.props.as_deref());
    for f in &s.filters {
        write_string(out, &f.filter);
        out.push(options_byte(f, version));
    }
}

/// One SUBACK code: a granted QoS or a failure. Before MQTT 5 anything
/// but 0, 1, 2 and 0x80 is reported as `InvalidQoS` (§3.9.3); in MQTT 5
/// the codes of §3.9.3 are valid, others `InvalidReasonCode`.
fn suback_code(code: u8, version: ProtocolVersion) -> Result<SubAckCode, DecodeError> {
    match code {
        SUBACK_FAILURE => Ok(SubAckCode::Failure),
        0..=2 => Ok(SubAckCode::Granted(qos(code)?)),
        _ if version.is_v5() => check_reason(header::SUBACK, code).map(SubAckCode::Refused),
        _ => Err(DecodeError::InvalidQoS),
    }
}

/// The wire byte of `code`: any failure is 0x80 before MQTT 5.
fn suback_byte(code: SubAckCode, version: ProtocolVersion) -> u8 {
    match code {
        SubAckCode::Granted(q) => q as u8,
        SubAckCode::Refused(reason) if version.is_v5() => reason.0,
        SubAckCode::Failure | SubAckCode::Refused(_) => SUBACK_FAILURE,
    }
}

/// Decodes the body of a SUBACK: a packet id, MQTT 5 properties, and one
/// or more return codes.
pub(crate) fn decode_suback(
    r: &mut Reader<'_>,
    version: ProtocolVersion,
) -> Result<SubAck, DecodeError> {
    let pkid = r.pkid()?;
    let props = read_if_v5(r, version, header::SUBACK, Side::Any)?;
    let mut codes = Vec::with_capacity(r.remaining());
    while !r.is_empty() {
        codes.push(suback_code(r.u8()?, version)?);
    }
    if codes.is_empty() {
        return Err(DecodeError::Truncated);
    }
    Ok(SubAck { pkid, codes, props })
}

/// Remaining length of a SUBACK.
pub(crate) fn suback_body_len(s: &SubAck, version: ProtocolVersion) -> usize {
    2 + len_if_v5(version, s.props.as_deref()) + s.codes.len()
}

/// Appends the body of a SUBACK (no fixed header).
pub(crate) fn encode_suback_body(s: &SubAck, version: ProtocolVersion, out: &mut Vec<u8>) {
    write_u16(out, s.pkid);
    write_if_v5(out, version, s.props.as_deref());
    out.extend(s.codes.iter().map(|&code| suback_byte(code, version)));
}

/// Decodes the body of an UNSUBSCRIBE.
pub(crate) fn decode_unsubscribe(
    r: &mut Reader<'_>,
    version: ProtocolVersion,
) -> Result<Unsubscribe, DecodeError> {
    let pkid = r.pkid()?;
    let props = read_if_v5(r, version, header::UNSUBSCRIBE, Side::Any)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(r.string()?);
    }
    if filters.is_empty() {
        return Err(DecodeError::EmptySubscription);
    }
    Ok(Unsubscribe {
        pkid,
        filters,
        props,
    })
}

/// Remaining length of an UNSUBSCRIBE.
pub(crate) fn unsubscribe_body_len(u: &Unsubscribe, version: ProtocolVersion) -> usize {
    let filters = u.filters.iter().map(|f| field_len(f.len()));
    2 + len_if_v5(version, u.props.as_deref()) + filters.sum::<usize>()
}

/// Appends the body of an UNSUBSCRIBE (no fixed header).
pub(crate) fn encode_unsubscribe_body(
    u: &Unsubscribe,
    version: ProtocolVersion,
    out: &mut Vec<u8>,
) {
    write_u16(out, u.pkid);
    write_if_v5(out, version, u.props.as_deref());
    for f in &u.filters {
        write_string(out, f);
    }
}

/// Decodes the body of an UNSUBACK: only a packet id before MQTT 5; in
/// MQTT 5 properties and one or more reason codes (§3.11.3).
pub(crate) fn decode_unsuback(
    r: &mut Reader<'_>,
    version: ProtocolVersion,
) -> Result<UnsubAck, DecodeError> {
    if !version.is_v5() {
        return decode_pkid_only(r).map(UnsubAck::new);
    }
    let pkid = r.pkid()?;
    let props = read_if_v5(r, version, header::UNSUBACK, Side::Any)?;
    let mut reasons = Vec::with_capacity(r.remaining());
    while !r.is_empty() {
        reasons.push(check_reason(header::UNSUBACK, r.u8()?)?);
    }
    if reasons.is_empty() {
        return Err(DecodeError::Truncated);
    }
    Ok(UnsubAck {
        pkid,
        reasons,
        props,
    })
}

/// Remaining length of an UNSUBACK.
pub(crate) fn unsuback_body_len(u: &UnsubAck, version: ProtocolVersion) -> usize {
    match version.is_v5() {
        true => 2 + len_if_v5(version, u.props.as_deref()) + u.reasons.len(),
        false => 2,
    }
}

/// Appends the body of an UNSUBACK (no fixed header).
pub(crate) fn encode_unsuback_body(u: &UnsubAck, version: ProtocolVersion, out: &mut Vec<u8>) {
    write_u16(out, u.pkid);
    if version.is_v5() {
        write_if_v5(out, version, u.props.as_deref());
        out.extend(u.reasons.iter().map(|r: &Reason| r.0));
    }
}

#[cfg(test)]
mod tests {
    use super::super::{decode, encode, encoded_len, Packet, QoS, Side};
    use super::*;

    const V: super::super::ProtocolVersion = super::super::ProtocolVersion::V311;
    use bytes::Bytes;

    fn dec(bytes: &[u8]) -> Result<Option<(Packet, usize)>, DecodeError> {
        decode(&Bytes::copy_from_slice(bytes), 1 << 20, Side::Any, V)
    }

    fn round_trip(packet: Packet) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&packet, V, &mut out);
        assert_eq!(out.len(), encoded_len(&packet, V));
        assert_eq!(dec(&out), Ok(Some((packet, out.len()))));
        out
    }

    fn filter(f: &str, qos: QoS) -> SubscribeFilter {
        SubscribeFilter::new(f, qos)
    }

    #[test]
    fn subscribe_round_trip() {
        round_trip(Packet::Subscribe(Subscribe {
            pkid: 7,
            filters: vec![filter("a/+", QoS::AtMostOnce)],
            props: None,
        }));
        round_trip(Packet::Subscribe(Subscribe {
            pkid: 0xFFFF,
            filters: vec![
                filter("#", QoS::ExactlyOnce),
                filter("x/y/z", QoS::AtLeastOnce),
                // Not a valid filter, but the codec leaves that to the broker.
                filter("a#", QoS::AtMostOnce),
            ],
            props: None,
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
            props: None,
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
            props: None,
        }));
        assert_eq!(out, [0x90, 0x06, 0x00, 0x0A, 0x00, 0x01, 0x02, 0x80]);
    }

    /// The UNSUBSCRIBE payload example of §3.10.3 (Figure 3.30).
    #[test]
    fn unsubscribe_spec_bytes() {
        let out = round_trip(Packet::Unsubscribe(Unsubscribe {
            pkid: 10,
            filters: vec!["a/b".into(), "c/d".into()],
            props: None,
        }));
        assert_eq!(
            out,
            [0xA2, 0x0C, 0x00, 0x0A, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x03, b'c', b'/', b'd']
        );
    }

    #[test]
    fn unsuback_round_trip() {
        let out = round_trip(Packet::UnsubAck(UnsubAck::new(10)));
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

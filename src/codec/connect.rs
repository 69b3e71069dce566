//! CONNECT (§3.1) and CONNACK (§3.2): body decoding, encoding and sizing,
//! for 3.1, 3.1.1 and 5.0.
//!
//! Called by `packet.rs` once the fixed header has been checked; the
//! functions here read and write only the variable header and payload. A
//! CONNECT is read and written by its own protocol level; a CONNACK by the
//! connection's version (3.1.1 return codes come from
//! [`Reason::v3_connack_code`]).

use super::header::{self, field_len, qos, write_binary, write_string, write_u16, Reader};
use super::properties::{len_if_v5, read_if_v5, write_if_v5, WILL};
use super::reason::check_reason;
use super::{ConnAck, Connect, DecodeError, LastWill, ProtocolVersion, QoS, Reason, Side};

const FLAG_RESERVED: u8 = 0b0000_0001;
const FLAG_CLEAN_SESSION: u8 = 0b0000_0010;
const FLAG_WILL: u8 = 0b0000_0100;
const FLAG_WILL_QOS_SHIFT: u8 = 3;
const FLAG_WILL_QOS: u8 = 0b0001_1000;
const FLAG_WILL_RETAIN: u8 = 0b0010_0000;
const FLAG_PASSWORD: u8 = 0b0100_0000;
const FLAG_USERNAME: u8 = 0b1000_0000;

/// The protocol name CONNECT carries for `version`.
fn protocol_name(version: ProtocolVersion) -> &'static str {
    match version {
        ProtocolVersion::V31 => "MQIsdp",
        ProtocolVersion::V311 | ProtocolVersion::V5 => "MQTT",
    }
}

/// Protocol name and level ([MQTT-3.1.2-1], [MQTT-3.1.2-2]).
fn read_version(r: &mut Reader<'_>) -> Result<ProtocolVersion, DecodeError> {
    let name = r.binary_slice()?;
    let level = r.u8()?;
    match (name, level) {
        (b"MQTT", 5) => Ok(ProtocolVersion::V5),
        (b"MQTT", 4) => Ok(ProtocolVersion::V311),
        (b"MQIsdp", 3) => Ok(ProtocolVersion::V31),
        (b"MQTT", _) | (b"MQIsdp", _) => Err(DecodeError::UnsupportedProtocolLevel(level)),
        _ => Err(DecodeError::InvalidProtocolName),
    }
}

/// Connect flags ([MQTT-3.1.2-3], [MQTT-3.1.2-11], -13, -14, -15, and
/// before MQTT 5 -22: a password needs a user name).
/// Returns the will QoS and retain when the will flag is set.
fn check_flags(flags: u8, version: ProtocolVersion) -> Result<Option<(QoS, bool)>, DecodeError> {
    if flags & FLAG_RESERVED != 0 {
        return Err(DecodeError::InvalidConnectFlags);
    }
    if !version.is_v5() && flags & FLAG_PASSWORD != 0 && flags & FLAG_USERNAME == 0 {
        return Err(DecodeError::InvalidConnectFlags);
    }
    let will_qos = (flags & FLAG_WILL_QOS) >> FLAG_WILL_QOS_SHIFT;
    let will_retain = flags & FLAG_WILL_RETAIN != 0;
    if flags & FLAG_WILL == 0 {
        if will_qos != 0 || will_retain {
            return Err(DecodeError::InvalidConnectFlags);
        }
        return Ok(None);
    }
    Ok(Some((qos(will_qos)?, will_retain)))
}

/// The will of a CONNECT whose will flag gave `qos` and `retain`.
fn read_will(
    r: &mut Reader<'_>,
    version: ProtocolVersion,
    (qos, retain): (QoS, bool),
) -> Result<LastWill, DecodeError> {
    let props = read_if_v5(r, version, WILL, Side::Any)?;
    Ok(LastWill {
        topic: r.topic_name()?,
        payload: r.binary()?,
        qos,
        retain,
        props,
    })
}

/// Decodes the body of a CONNECT, at the version its protocol level names.
pub(crate) fn decode_connect(r: &mut Reader<'_>) -> Result<Connect, DecodeError> {
    let version = read_version(r)?;
    let flags = r.u8()?;
    let will_flags = check_flags(flags, version)?;
    let keep_alive = r.u16()?;
    let props = read_if_v5(r, version, header::CONNECT, Side::Any)?;
    let client_id = r.string()?;
    let will = match will_flags {
        Some(will_flags) => Some(read_will(r, version, will_flags)?),
        None => None,
    };
    let username = match flags & FLAG_USERNAME {
        0 => None,
        _ => Some(r.string()?),
    };
    let password = match flags & FLAG_PASSWORD {
        0 => None,
        _ => Some(r.binary()?),
    };
    r.finish()?;
    Ok(Connect {
        version,
        client_id,
        clean_session: flags & FLAG_CLEAN_SESSION != 0,
        keep_alive,
        will,
        username,
        password,
        props,
    })
}

fn connect_flags(c: &Connect) -> u8 {
    let mut flags = 0;
    if c.clean_session {
        flags |= FLAG_CLEAN_SESSION;
    }
    if let Some(will) = &c.will {
        flags |= FLAG_WILL | ((will.qos as u8) << FLAG_WILL_QOS_SHIFT);
        if will.retain {
            flags |= FLAG_WILL_RETAIN;
        }
    }
    if c.username.is_some() {
        flags |= FLAG_USERNAME;
    }
    if c.password.is_some() {
        flags |= FLAG_PASSWORD;
    }
    flags
}

/// Remaining length of a CONNECT.
pub(crate) fn connect_body_len(c: &Connect) -> usize {
    let mut len = field_len(protocol_name(c.version).len()) + 1 + 1 + 2;
    len += len_if_v5(c.version, c.props.as_deref());
    len += field_len(c.client_id.len());
    if let Some(will) = &c.will {
        len += len_if_v5(c.version, will.props.as_deref());
        len += field_len(will.topic.len()) + field_len(will.payload.len());
    }
    if let Some(username) = &c.username {
        len += field_len(username.len());
    }
    if let Some(password) = &c.password {
        len += field_len(password.len());
    }
    len
}

/// Appends the body of a CONNECT (no fixed header).
pub(crate) fn encode_connect_body(c: &Connect, out: &mut Vec<u8>) {
    write_string(out, protocol_name(c.version));
    out.push(c.version.level());
    out.push(connect_flags(c));
    write_u16(out, c.keep_alive);
    write_if_v5(out, c.version, c.props.as_deref());
    write_string(out, &c.client_id);
    if let Some(will) = &c.will {
        write_if_v5(out, c.version, will.props.as_deref());
        write_string(out, &will.topic);
        write_binary(out, &will.payload);
    }
    if let Some(username) = &c.username {
        write_string(out, username);
    }
    if let Some(password) = &c.password {
        write_binary(out, password);
    }
}

/// The reason of a CONNACK's return code: a 3.1.1 return code 0..=5
/// ([MQTT-3.2.2-6] and §3.2.2.3: 6..=255 are reserved), or an MQTT 5
/// CONNACK reason code (§3.2.2.2).
fn connack_reason(code: u8, version: ProtocolVersion) -> Result<Reason, DecodeError> {
    if version.is_v5() {
        return check_reason(header::CONNACK, code);
    }
    Reason::from_v3_connack_code(code).ok_or(DecodeError::InvalidReasonCode {
        packet_type: header::CONNACK,
        code,
    })
}

/// Decodes the body of a CONNACK (§3.2.2).
///
/// Acknowledge flags other than bit 0 are reported as `InvalidFlags`
/// ([MQTT-3.2.2-1] reserved bits).
pub(crate) fn decode_connack(
    r: &mut Reader<'_>,
    version: ProtocolVersion,
) -> Result<ConnAck, DecodeError> {
    let ack_flags = r.u8()?;
    let code = r.u8()?;
    let props = read_if_v5(r, version, header::CONNACK, Side::Any)?;
    r.finish()?;
    if ack_flags & !1 != 0 {
        return Err(DecodeError::InvalidFlags {
            packet_type: header::CONNACK,
            flags: ack_flags,
        });
    }
    Ok(ConnAck {
        session_present: ack_flags & 1 != 0,
        code: connack_reason(code, version)?,
        props,
    })
}

/// Remaining length of a CONNACK.
pub(crate) fn connack_body_len(ack: &ConnAck, version: ProtocolVersion) -> usize {
    2 + len_if_v5(version, ack.props.as_deref())
}

/// Appends the body of a CONNACK (no fixed header).
pub(crate) fn encode_connack_body(ack: &ConnAck, version: ProtocolVersion, out: &mut Vec<u8>) {
    out.push(u8::from(ack.session_present));
    if version.is_v5() {
        out.push(ack.code.0);
    } else {
        out.push(ack.code.v3_connack_code());
    }
    write_if_v5(out, version, ack.props.as_deref());
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

    fn full_connect(version: ProtocolVersion) -> Connect {
        Connect {
            version,
            client_id: "client-é".into(),
            clean_session: true,
            keep_alive: 60,
            will: Some(LastWill {
                topic: "a/b".into(),
                payload: Bytes::from_static(b"bye\0\xff"),
                qos: QoS::ExactlyOnce,
                retain: true,
                props: None,
            }),
            username: Some("user".into()),
            password: Some(Bytes::from_static(b"\x00pw\xff")),
            props: None,
        }
    }

    /// A CONNECT body with the given protocol name, level and flags, and a
    /// one-byte client id "c" as payload.
    fn connect_with(name: &[u8], level: u8, flags: u8, extra: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        write_binary(&mut body, name);
        body.extend_from_slice(&[level, flags, 0, 10, 0, 1, b'c']);
        body.extend_from_slice(extra);
        let mut out = vec![0x10, body.len() as u8];
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn connect_round_trip_both_versions() {
        for version in [ProtocolVersion::V31, ProtocolVersion::V311] {
            let full = full_connect(version);
            let minimal = Connect {
                version,
                client_id: String::new(),
                clean_session: false,
                keep_alive: 0,
                will: None,
                username: None,
                password: None,
                props: None,
            };
            let user_only = Connect {
                username: Some(String::new()),
                ..minimal.clone()
            };
            for c in [full, minimal, user_only] {
                let packet = Packet::Connect(Box::new(c));
                let mut out = Vec::new();
                encode(&packet, V, &mut out);
                assert_eq!(out.len(), encoded_len(&packet, V));
                assert_eq!(dec(&out), Ok(Some((packet, out.len()))));
            }
        }
    }

    /// The variable header of the non-normative example in §3.1.2.10
    /// (Figure 3.6: "MQTT", level 4, flags 0xCE, keep alive 10), followed
    /// by a payload in the order of §3.1.3: client id, will topic, will
    /// message, user name, password.
    #[test]
    fn connect_spec_example_bytes() {
        let bytes = [
            0x10, 0x1A, // fixed header
            0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0xCE, 0x00, 0x0A, // variable header
            0x00, 0x01, b'c', // client id
            0x00, 0x01, b'w', // will topic
            0x00, 0x02, b'h', b'i', // will message
            0x00, 0x01, b'u', // user name
            0x00, 0x01, b'p', // password
        ];
        let expected = Connect {
            version: ProtocolVersion::V311,
            client_id: "c".into(),
            clean_session: true,
            keep_alive: 10,
            will: Some(LastWill {
                topic: "w".into(),
                payload: Bytes::from_static(b"hi"),
                qos: QoS::AtLeastOnce,
                retain: false,
                props: None,
            }),
            username: Some("u".into()),
            password: Some(Bytes::from_static(b"p")),
            props: None,
        };
        let packet = Packet::Connect(Box::new(expected));
        assert_eq!(dec(&bytes), Ok(Some((packet.clone(), bytes.len()))));
        let mut out = Vec::new();
        encode(&packet, V, &mut out);
        assert_eq!(out, bytes);
    }

    /// MQTT 3.1 CONNECT as sent by 3.1 clients: "MQIsdp", level 3.
    #[test]
    fn connect_v31_bytes() {
        let bytes = [
            0x10, 0x14, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0xC2, 0x00, 0x3C,
            0x00, 0x01, b'x', 0x00, 0x01, b'u', 0x00, 0x00,
        ];
        let Ok(Some((Packet::Connect(c), used))) = dec(&bytes) else {
            panic!("decode failed: {:?}", dec(&bytes));
        };
        assert_eq!(used, bytes.len());
        assert_eq!(c.version, ProtocolVersion::V31);
        assert_eq!(c.keep_alive, 60);
        assert_eq!(c.username.as_deref(), Some("u"));
        assert_eq!(c.password.as_deref(), Some(&b""[..]));
    }

    #[test]
    fn connect_malformed_table() {
        use DecodeError::*;
        let will = &[0, 1, b't', 0, 0][..];
        let cases: Vec<(&str, Vec<u8>, DecodeError)> = vec![
            // [MQTT-3.1.2-1] unknown protocol name: close without CONNACK.
            (
                "3.1.2-1 name",
                connect_with(b"MQTX", 4, 2, &[]),
                InvalidProtocolName,
            ),
            (
                "3.1.2-1 case",
                connect_with(b"mqtt", 4, 2, &[]),
                InvalidProtocolName,
            ),
            (
                "3.1.2-1 v31",
                connect_with(b"MQIsdp", 4, 2, &[]),
                UnsupportedProtocolLevel(4),
            ),
            // [MQTT-3.1.2-2] unsupported level: CONNACK 0x01.
            (
                "3.1.2-2 level 6",
                connect_with(b"MQTT", 6, 2, &[]),
                UnsupportedProtocolLevel(6),
            ),
            (
                "3.1.2-2 level 3",
                connect_with(b"MQTT", 3, 2, &[]),
                UnsupportedProtocolLevel(3),
            ),
            // [MQTT-3.1.2-3] reserved flag.
            (
                "3.1.2-3",
                connect_with(b"MQTT", 4, 0x03, &[]),
                InvalidConnectFlags,
            ),
            // [MQTT-3.1.2-11] will flag 0 but will QoS set.
            (
                "3.1.2-11 qos",
                connect_with(b"MQTT", 4, 0x08, &[]),
                InvalidConnectFlags,
            ),
            // [MQTT-3.1.2-15] will flag 0 but will retain set.
            (
                "3.1.2-15",
                connect_with(b"MQTT", 4, 0x20, &[]),
                InvalidConnectFlags,
            ),
            // [MQTT-3.1.2-14] will QoS 3.
            ("3.1.2-14", connect_with(b"MQTT", 4, 0x1C, will), InvalidQoS),
            // [MQTT-3.1.2-22] password without user name.
            (
                "3.1.2-22",
                connect_with(b"MQTT", 4, 0x40, &[0, 0]),
                InvalidConnectFlags,
            ),
            // [MQTT-3.1.3-10] will topic must be a topic name.
            (
                "3.1.3-10 wild",
                connect_with(b"MQTT", 4, 0x04, &[0, 1, b'#', 0, 0]),
                InvalidTopicName,
            ),
            (
                "3.1.3-10 empty",
                connect_with(b"MQTT", 4, 0x04, &[0, 0, 0, 0]),
                InvalidTopicName,
            ),
            // [MQTT-3.1.3-11] user name must be UTF-8.
            (
                "3.1.3-11",
                connect_with(b"MQTT", 4, 0x80, &[0, 1, 0xFF]),
                InvalidUtf8,
            ),
            // [MQTT-3.1.3-4] will payload missing.
            (
                "3.1.3 will short",
                connect_with(b"MQTT", 4, 0x04, &[0, 1, b't']),
                Truncated,
            ),
            // user name flag set but no user name.
            ("3.1.2-19", connect_with(b"MQTT", 4, 0x80, &[]), Truncated),
            // bytes left over after the declared fields.
            (
                "leftover",
                connect_with(b"MQTT", 4, 0x02, &[0xAA]),
                Truncated,
            ),
        ];
        for (name, bytes, err) in cases {
            assert_eq!(dec(&bytes), Err(err), "{name}");
        }
        // [MQTT-3.1.3-4] client id must be UTF-8 without U+0000.
        let mut bad_id = connect_with(b"MQTT", 4, 2, &[]);
        let last = bad_id.len() - 1;
        bad_id[last] = 0;
        assert_eq!(dec(&bad_id), Err(InvalidUtf8));
        // Body ends inside the fixed part of the variable header.
        assert_eq!(dec(&[0x10, 0x03, 0x00, 0x04, b'M']), Err(Truncated));
    }

    #[test]
    fn connack_round_trip_and_bytes() {
        for (present, code) in [
            (false, Reason::SUCCESS),
            (true, Reason::SUCCESS),
            (false, Reason::UNSUPPORTED_PROTOCOL_VERSION),
            (false, Reason::CLIENT_IDENTIFIER_NOT_VALID),
            (false, Reason::SERVER_UNAVAILABLE),
            (false, Reason::BAD_USER_NAME_OR_PASSWORD),
            (false, Reason::NOT_AUTHORIZED),
        ] {
            let packet = Packet::ConnAck(ConnAck {
                session_present: present,
                code,
                props: None,
            });
            let mut out = Vec::new();
            encode(&packet, V, &mut out);
            assert_eq!(out, [0x20, 0x02, u8::from(present), code.v3_connack_code()]);
            assert_eq!(dec(&out), Ok(Some((packet, 4))));
        }
    }

    #[test]
    fn connack_malformed() {
        use DecodeError::*;
        // [MQTT-3.2.2-1] reserved acknowledge flags.
        assert_eq!(
            dec(&[0x20, 0x02, 0x02, 0x00]),
            Err(InvalidFlags {
                packet_type: 2,
                flags: 2
            })
        );
        // §3.2.2.3 return codes 6-255 are reserved.
        assert_eq!(
            dec(&[0x20, 0x02, 0x00, 0x06]),
            Err(InvalidReasonCode {
                packet_type: 2,
                code: 6
            })
        );
        assert_eq!(dec(&[0x20, 0x01, 0x00]), Err(Truncated));
        assert_eq!(dec(&[0x20, 0x03, 0x00, 0x00, 0x00]), Err(Truncated));
    }
}

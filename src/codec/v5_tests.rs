//! MQTT 5 codec tests: every packet type and every property round trips,
//! short forms, split points, back-to-back packets, the PUBLISH hot path
//! with per-delivery properties, and tables of malformed input naming the
//! spec statement each breaks. Also writes the fuzz seed corpus
//! (`COREMQ_WRITE_CORPUS=1 cargo test --lib write_fuzz_corpus`).

use super::*;
use bytes::Bytes;

const V5: ProtocolVersion = ProtocolVersion::V5;
const MAX: usize = 1 << 20;

fn boxed(p: Properties) -> Option<Box<Properties>> {
    Some(Box::new(p))
}

fn user(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// CONNECT with every CONNECT property and every will property.
fn v5_connect() -> Connect {
    Connect {
        version: V5,
        client_id: "c5".into(),
        clean_session: true,
        keep_alive: 20,
        will: Some(LastWill {
            topic: "will/t".into(),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: true,
            props: boxed(Properties {
                will_delay_interval: Some(30),
                payload_format_indicator: Some(1),
                message_expiry_interval: Some(60),
                content_type: Some("text/plain".into()),
                response_topic: Some("resp/t".into()),
                correlation_data: Some(Bytes::from_static(b"\x00\x01")),
                user_properties: user(&[("w", "1")]),
                ..Properties::default()
            }),
        }),
        username: None,
        // MQTT 5 allows a password without a user name (§3.1.2.9).
        password: Some(Bytes::from_static(b"pw")),
        props: boxed(Properties {
            session_expiry_interval: Some(3600),
            receive_maximum: Some(10),
            maximum_packet_size: Some(65_536),
            topic_alias_maximum: Some(5),
            request_response_information: Some(1),
            request_problem_information: Some(0),
            authentication_method: Some("SCRAM".into()),
            authentication_data: Some(Bytes::from_static(b"first")),
            user_properties: user(&[("a", "1"), ("a", "2"), ("b", "")]),
            ..Properties::default()
        }),
    }
}

/// CONNACK with every CONNACK property.
fn v5_connack() -> ConnAck {
    ConnAck {
        session_present: true,
        code: Reason::SUCCESS,
        props: boxed(Properties {
            session_expiry_interval: Some(0),
            receive_maximum: Some(100),
            maximum_qos: Some(1),
            retain_available: Some(0),
            maximum_packet_size: Some(1 << 20),
            assigned_client_identifier: Some("auto-1".into()),
            topic_alias_maximum: Some(0),
            reason_string: Some("welcome".into()),
            user_properties: user(&[("s", "x")]),
            wildcard_subscription_available: Some(1),
            subscription_identifier_available: Some(0),
            shared_subscription_available: Some(1),
            server_keep_alive: Some(30),
            response_information: Some("r/".into()),
            server_reference: Some("other:1883".into()),
            authentication_method: Some("SCRAM".into()),
            authentication_data: Some(Bytes::from_static(b"final")),
            ..Properties::default()
        }),
    }
}

/// PUBLISH with every PUBLISH property (subscription identifiers repeat
/// in a server-to-client PUBLISH, §3.3.4).
fn v5_publish() -> Publish {
    Publish {
        dup: true,
        qos: QoS::ExactlyOnce,
        retain: false,
        topic: "a/b".into(),
        pkid: 42,
        payload: Bytes::from(vec![9u8; 150]),
        props: boxed(Properties {
            payload_format_indicator: Some(0),
            message_expiry_interval: Some(7),
            topic_alias: Some(3),
            response_topic: Some("r/1".into()),
            correlation_data: Some(Bytes::from_static(b"id")),
            user_properties: user(&[("k", "v"), ("k", "v2")]),
            subscription_identifiers: vec![1, 268_435_455],
            content_type: Some("application/json".into()),
            ..Properties::default()
        }),
    }
}

fn reason_props(reason: &str) -> Option<Box<Properties>> {
    boxed(Properties {
        reason_string: Some(reason.into()),
        user_properties: user(&[("why", reason)]),
        ..Properties::default()
    })
}

/// One packet of every type at MQTT 5, with reasons and properties, plus
/// the short forms.
pub(in crate::codec) fn every_v5_packet() -> Vec<Packet> {
    vec![
        Packet::Connect(Box::new(v5_connect())),
        Packet::ConnAck(v5_connack()),
        Packet::ConnAck(ConnAck {
            session_present: false,
            code: Reason::BANNED,
            props: None,
        }),
        Packet::Publish(v5_publish()),
        // Topic alias instead of a topic name ([MQTT-3.3.2-8]).
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: true,
            topic: "".into(),
            pkid: 0,
            payload: Bytes::from_static(b"x"),
            props: boxed(Properties {
                topic_alias: Some(3),
                ..Properties::default()
            }),
        }),
        Packet::PubAck(Ack::new(1)),
        Packet::PubAck(Ack::with(2, Reason::NO_MATCHING_SUBSCRIBERS)),
        Packet::PubRec(Ack {
            pkid: 3,
            reason: Reason::QUOTA_EXCEEDED,
            props: reason_props("full"),
        }),
        Packet::PubRel(Ack::with(4, Reason::PACKET_IDENTIFIER_NOT_FOUND)),
        Packet::PubComp(Ack {
            pkid: 5,
            reason: Reason::SUCCESS,
            props: reason_props("done"),
        }),
        Packet::Subscribe(Subscribe {
            pkid: 6,
            filters: vec![
                SubscribeFilter {
                    filter: "s/#".into(),
                    qos: QoS::ExactlyOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: 2,
                },
                SubscribeFilter::new("t", QoS::AtMostOnce),
            ],
            props: boxed(Properties {
                subscription_identifiers: vec![77],
                user_properties: user(&[("u", "p")]),
                ..Properties::default()
            }),
        }),
        Packet::SubAck(SubAck {
            pkid: 6,
            codes: vec![
                SubAckCode::Granted(QoS::AtLeastOnce),
                SubAckCode::Failure,
                SubAckCode::Refused(Reason::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED),
            ],
            props: reason_props("partly"),
        }),
        Packet::Unsubscribe(Unsubscribe {
            pkid: 7,
            filters: vec!["s/#".into(), "t".into()],
            props: boxed(Properties {
                user_properties: user(&[("u", "p")]),
                ..Properties::default()
            }),
        }),
        Packet::UnsubAck(UnsubAck {
            pkid: 7,
            reasons: vec![Reason::SUCCESS, Reason::NO_SUBSCRIPTION_EXISTED],
            props: reason_props("gone"),
        }),
        Packet::PingReq,
        Packet::PingResp,
        Packet::Disconnect(Disconnect::normal()),
        Packet::Disconnect(Disconnect::with(Reason::DISCONNECT_WITH_WILL)),
        Packet::Disconnect(Disconnect {
            reason: Reason::SERVER_MOVED,
            props: boxed(Properties {
                session_expiry_interval: Some(10),
                server_reference: Some("elsewhere".into()),
                reason_string: Some("moving".into()),
                ..Properties::default()
            }),
        }),
        Packet::Auth(Auth {
            reason: Reason::CONTINUE_AUTHENTICATION,
            props: boxed(Properties {
                authentication_method: Some("SCRAM".into()),
                authentication_data: Some(Bytes::from_static(b"step")),
                reason_string: Some("more".into()),
                user_properties: user(&[("x", "y")]),
                ..Properties::default()
            }),
        }),
        Packet::Auth(Auth {
            reason: Reason::SUCCESS,
            props: None,
        }),
    ]
}

fn bytes_of(packet: &Packet) -> Vec<u8> {
    let mut out = Vec::new();
    encode(packet, V5, &mut out);
    assert_eq!(out.len(), encoded_len(packet, V5), "{packet:?}");
    out
}

fn dec(bytes: &[u8]) -> Result<Option<(Packet, usize)>, DecodeError> {
    decode(&Bytes::copy_from_slice(bytes), MAX, Side::Any, V5)
}

#[test]
fn every_v5_packet_round_trips() {
    for packet in every_v5_packet() {
        let out = bytes_of(&packet);
        assert_eq!(dec(&out), Ok(Some((packet, out.len()))));
    }
}

/// Every field of [`Properties`] is set in at least one packet above, so
/// the round trip covers every property identifier of §2.2.2.2.
#[test]
fn every_property_is_covered() {
    let all = every_v5_packet();
    let mut props: Vec<&Properties> = Vec::new();
    for p in &all {
        let own = match p {
            Packet::Connect(c) => {
                props.extend(c.will.as_ref().and_then(|w| w.props.as_deref()));
                c.props.as_deref()
            }
            Packet::ConnAck(a) => a.props.as_deref(),
            Packet::Publish(p) => p.props.as_deref(),
            Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
                a.props.as_deref()
            }
            Packet::Subscribe(s) => s.props.as_deref(),
            Packet::SubAck(s) => s.props.as_deref(),
            Packet::Unsubscribe(u) => u.props.as_deref(),
            Packet::UnsubAck(u) => u.props.as_deref(),
            Packet::Disconnect(d) => d.props.as_deref(),
            Packet::Auth(a) => a.props.as_deref(),
            Packet::PingReq | Packet::PingResp => None,
        };
        props.extend(own);
    }
    let any = |f: fn(&Properties) -> bool| props.iter().any(|p| f(p));
    assert!(any(|p| p.payload_format_indicator.is_some()));
    assert!(any(|p| p.message_expiry_interval.is_some()));
    assert!(any(|p| p.content_type.is_some()));
    assert!(any(|p| p.response_topic.is_some()));
    assert!(any(|p| p.correlation_data.is_some()));
    assert!(any(|p| p.subscription_identifiers.len() > 1));
    assert!(any(|p| p.session_expiry_interval.is_some()));
    assert!(any(|p| p.assigned_client_identifier.is_some()));
    assert!(any(|p| p.server_keep_alive.is_some()));
    assert!(any(|p| p.authentication_method.is_some()));
    assert!(any(|p| p.authentication_data.is_some()));
    assert!(any(|p| p.request_problem_information.is_some()));
    assert!(any(|p| p.will_delay_interval.is_some()));
    assert!(any(|p| p.request_response_information.is_some()));
    assert!(any(|p| p.response_information.is_some()));
    assert!(any(|p| p.server_reference.is_some()));
    assert!(any(|p| p.reason_string.is_some()));
    assert!(any(|p| p.receive_maximum.is_some()));
    assert!(any(|p| p.topic_alias_maximum.is_some()));
    assert!(any(|p| p.topic_alias.is_some()));
    assert!(any(|p| p.maximum_qos.is_some()));
    assert!(any(|p| p.retain_available.is_some()));
    assert!(any(|p| p.user_properties.len() > 2));
    assert!(any(|p| p.maximum_packet_size.is_some()));
    assert!(any(|p| p.wildcard_subscription_available.is_some()));
    assert!(any(|p| p.subscription_identifier_available.is_some()));
    assert!(any(|p| p.shared_subscription_available.is_some()));
}

#[test]
fn every_split_point_needs_more_bytes() {
    for packet in every_v5_packet() {
        let out = bytes_of(&packet);
        for split in 0..out.len() {
            assert_eq!(dec(&out[..split]), Ok(None), "{packet:?} at {split}");
        }
    }
}

#[test]
fn back_to_back_packets() {
    let packets = every_v5_packet();
    let mut out = Vec::new();
    for p in &packets {
        encode(p, V5, &mut out);
    }
    let buf = Bytes::from(out);
    let mut offset = 0;
    for expected in packets {
        let rest = buf.slice(offset..);
        let Ok(Some((packet, used))) = decode(&rest, MAX, Side::Any, V5) else {
            panic!("expected {expected:?}");
        };
        assert_eq!(packet, expected);
        offset += used;
    }
    assert_eq!(offset, buf.len());
}

/// The short forms of §3.4.2.1, §3.14.2.1 and §3.15.2.1, and the 3.1.1
/// encoding of the same structs.
#[test]
fn short_forms_bytes() {
    let cases: Vec<(Packet, &[u8])> = vec![
        // Remaining length 2: SUCCESS, no properties.
        (Packet::PubAck(Ack::new(0x0102)), &[0x40, 0x02, 0x01, 0x02]),
        // Remaining length 3: a reason code without properties.
        (
            Packet::PubRec(Ack::with(1, Reason::UNSPECIFIED_ERROR)),
            &[0x50, 0x03, 0x00, 0x01, 0x80],
        ),
        (
            Packet::PubRel(Ack::with(1, Reason::PACKET_IDENTIFIER_NOT_FOUND)),
            &[0x62, 0x03, 0x00, 0x01, 0x92],
        ),
        // DISCONNECT / AUTH with remaining length 0.
        (Packet::Disconnect(Disconnect::normal()), &[0xE0, 0x00]),
        (
            Packet::Disconnect(Disconnect::with(Reason::SESSION_TAKEN_OVER)),
            &[0xE0, 0x01, 0x8E],
        ),
        (
            Packet::Auth(Auth {
                reason: Reason::SUCCESS,
                props: None,
            }),
            &[0xF0, 0x00],
        ),
        // CONNACK always has the property length.
        (
            Packet::ConnAck(ConnAck {
                session_present: false,
                code: Reason::UNSUPPORTED_PROTOCOL_VERSION,
                props: None,
            }),
            &[0x20, 0x03, 0x00, 0x84, 0x00],
        ),
    ];
    for (packet, bytes) in cases {
        assert_eq!(bytes_of(&packet), bytes, "{packet:?}");
        assert_eq!(dec(bytes), Ok(Some((packet, bytes.len()))));
    }
    // A reason code and an empty property list decode as the short form.
    assert_eq!(
        dec(&[0x40, 0x04, 0x00, 0x01, 0x10, 0x00]),
        Ok(Some((
            Packet::PubAck(Ack::with(1, Reason::NO_MATCHING_SUBSCRIBERS)),
            6
        )))
    );
    // The same structs at 3.1.1: only what 3.1.1 has.
    let v3 = |p: &Packet| {
        let mut out = Vec::new();
        encode(p, ProtocolVersion::V311, &mut out);
        out
    };
    let refused = Packet::PubRec(Ack::with(1, Reason::UNSPECIFIED_ERROR));
    assert_eq!(v3(&refused), [0x50, 0x02, 0x00, 0x01]);
    let bye = Packet::Disconnect(Disconnect::with(Reason::SERVER_SHUTTING_DOWN));
    assert_eq!(v3(&bye), [0xE0, 0x00]);
    let ack = Packet::ConnAck(ConnAck {
        session_present: false,
        code: Reason::SERVER_BUSY,
        props: None,
    });
    assert_eq!(v3(&ack), [0x20, 0x02, 0x00, 0x03]);
    let sub = Packet::SubAck(SubAck {
        pkid: 1,
        codes: vec![SubAckCode::Refused(Reason::QUOTA_EXCEEDED)],
        props: reason_props("x"),
    });
    assert_eq!(v3(&sub), [0x90, 0x03, 0x00, 0x01, 0x80]);
}

/// `encode_publish_v5` writes the per-delivery fields in place of the
/// message's own, and `publish_v5_len` is its exact size.
#[test]
fn encode_publish_v5_uses_the_delivery_fields() {
    let msg = v5_publish();
    let props = msg.props.as_deref();
    let v5 = PublishV5 {
        props,
        topic_alias: Some(9),
        subscription_identifiers: &[5],
        message_expiry_interval: None,
    };
    let mut out = Vec::new();
    encode_publish_v5(
        &mut out,
        "",
        &msg.payload,
        QoS::AtLeastOnce,
        8,
        false,
        false,
        &v5,
    );
    assert_eq!(
        out.len(),
        publish_v5_len(0, msg.payload.len(), QoS::AtLeastOnce, &v5)
    );
    let Ok(Some((Packet::Publish(p), _))) = dec(&out) else {
        panic!("publish expected");
    };
    let mut expected = props.cloned().unwrap_or_default();
    expected.topic_alias = Some(9);
    expected.subscription_identifiers = vec![5];
    expected.message_expiry_interval = None;
    assert_eq!(p.props.as_deref(), Some(&expected));
    assert_eq!(&*p.topic, "");
    // Without properties: the property length 0 and nothing else.
    let bare = PublishV5::default();
    let mut out = Vec::new();
    encode_publish_v5(
        &mut out,
        "t",
        b"hi",
        QoS::AtMostOnce,
        0,
        false,
        false,
        &bare,
    );
    assert_eq!(out, [0x30, 0x06, 0x00, 0x01, b't', 0x00, b'h', b'i']);
    assert_eq!(publish_v5_len(1, 2, QoS::AtMostOnce, &bare), out.len());
}

/// A PUBLISH body: topic "t", QoS 0, then `props` (property length
/// included) and payload "p".
fn publish_with(props: &[u8]) -> Vec<u8> {
    let mut body = vec![0x00, 0x01, b't'];
    body.extend_from_slice(props);
    body.push(b'p');
    let mut out = vec![0x30, body.len() as u8];
    out.extend_from_slice(&body);
    out
}

/// A CONNECT at level 5 with `props` (property length included) and
/// client id "c".
fn connect_with(flags: u8, props: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut body = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 5, flags, 0x00, 0x0A];
    body.extend_from_slice(props);
    body.extend_from_slice(&[0x00, 0x01, b'c']);
    body.extend_from_slice(payload);
    let mut out = vec![0x10, body.len() as u8];
    out.extend_from_slice(&body);
    out
}

#[test]
fn v5_malformed_table() {
    use DecodeError::*;
    let not_allowed = |packet_type, id| PropertyNotAllowed { packet_type, id };
    let code = |packet_type, code| InvalidReasonCode { packet_type, code };
    let cases: Vec<(&str, Vec<u8>, DecodeError)> = vec![
        // [MQTT-2.2.2-1]/§2.2.2.2: an identifier MQTT 5 does not define.
        (
            "2.2.2.2 id 0x7F",
            publish_with(&[2, 0x7F, 0]),
            InvalidPropertyId(0x7F),
        ),
        (
            "2.2.2.2 id 0x80",
            publish_with(&[2, 0x80, 0]),
            InvalidPropertyId(0x80),
        ),
        // §2.2.2.2: a property not valid for the packet type.
        (
            "2.2.2.2 session expiry in PUBLISH",
            publish_with(&[5, 0x11, 0, 0, 0, 1]),
            not_allowed(3, 0x11),
        ),
        (
            "3.1.2.11 will delay in CONNECT",
            connect_with(2, &[5, 0x18, 0, 0, 0, 1], &[]),
            not_allowed(1, 0x18),
        ),
        (
            "3.1.3.2 receive maximum in will",
            connect_with(6, &[0], &[3, 0x21, 0, 1, 0, 1, b'w', 0, 0]),
            not_allowed(0, 0x21),
        ),
        // §2.2.2.2: property length past the end, value cut short.
        (
            "2.2.2.1 length",
            publish_with(&[9, 0x01, 0]),
            MalformedProperty,
        ),
        (
            "2.2.2.2 value short",
            publish_with(&[2, 0x02, 0]),
            MalformedProperty,
        ),
        // §1.5.5: a five-byte variable byte integer.
        (
            "1.5.5 varint",
            publish_with(&[0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
            MalformedVarInt,
        ),
        // §2.2.2.2: a property that may appear once, twice (protocol error).
        (
            "3.3.2.3.2 payload format twice",
            publish_with(&[4, 0x01, 0, 0x01, 1]),
            DuplicateProperty(0x01),
        ),
        (
            "3.1.2.11.2 session expiry twice",
            connect_with(2, &[10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2], &[]),
            DuplicateProperty(0x11),
        ),
        // [MQTT-3.3.2-14] Response Topic must be a topic name.
        (
            "3.3.2-14 wildcard",
            publish_with(&[4, 0x08, 0, 1, b'#']),
            InvalidPropertyValue(0x08),
        ),
        // §3.3.2.3.2 payload format indicator 0 or 1.
        (
            "3.3.2.3.2 pfi 2",
            publish_with(&[2, 0x01, 2]),
            InvalidPropertyValue(0x01),
        ),
        // §3.3.2.3.4 topic alias 0 is a protocol error.
        (
            "3.3.2.3.4 alias 0",
            publish_with(&[3, 0x23, 0, 0]),
            InvalidPropertyValue(0x23),
        ),
        // §3.8.2.1.2 subscription identifier 0.
        (
            "3.8.2.1.2 sub id 0",
            vec![0x82, 0x09, 0, 1, 2, 0x0B, 0, 0, 1, b'a', 0],
            InvalidPropertyValue(0x0B),
        ),
        (
            "3.8.2.1.2 sub id twice",
            vec![0x82, 0x0B, 0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, b'a', 0],
            DuplicateProperty(0x0B),
        ),
        // §3.1.2.11.3 receive maximum 0, §3.1.2.11.4 maximum packet size 0.
        (
            "3.1.2.11.3 receive max 0",
            connect_with(2, &[3, 0x21, 0, 0], &[]),
            InvalidPropertyValue(0x21),
        ),
        (
            "3.1.2.11.4 max packet 0",
            connect_with(2, &[5, 0x27, 0, 0, 0, 0], &[]),
            InvalidPropertyValue(0x27),
        ),
        (
            "3.1.2.11.6 request response 2",
            connect_with(2, &[2, 0x19, 2], &[]),
            InvalidPropertyValue(0x19),
        ),
        (
            "3.1.2.11.7 request problem 2",
            connect_with(2, &[2, 0x17, 2], &[]),
            InvalidPropertyValue(0x17),
        ),
        (
            "3.2.2.3.4 maximum qos 2",
            vec![0x20, 0x05, 0, 0, 2, 0x24, 2],
            InvalidPropertyValue(0x24),
        ),
        // §3.1.2.11.10 authentication data without method.
        (
            "3.1.2.11.10",
            connect_with(2, &[4, 0x16, 0, 1, b'x'], &[]),
            AuthDataWithoutMethod,
        ),
        // [MQTT-3.3.2-8] empty topic without a topic alias.
        ("3.3.2-8", vec![0x30, 0x03, 0, 0, 0], TopicAliasWithoutTopic),
        // [MQTT-3.3.2-2] wildcards still invalid in a topic name.
        (
            "3.3.2-2",
            publish_with(&[0])
                .iter()
                .map(|&b| if b == b't' { b'+' } else { b })
                .collect(),
            InvalidTopicName,
        ),
        // §3.4.2.1 / §3.6.2.1 / §3.14.2.1 / §3.15.2.1 reason codes per packet.
        (
            "3.4.2.1 puback 0x92",
            vec![0x40, 0x03, 0, 1, 0x92],
            code(4, 0x92),
        ),
        (
            "3.6.2.1 pubrel 0x80",
            vec![0x62, 0x03, 0, 1, 0x80],
            code(6, 0x80),
        ),
        (
            "3.9.3 suback 0x03",
            vec![0x90, 0x04, 0, 1, 0, 0x03],
            code(9, 0x03),
        ),
        (
            "3.11.3 unsuback 0x10",
            vec![0xB0, 0x04, 0, 1, 0, 0x10],
            code(11, 0x10),
        ),
        (
            "3.11.3 unsuback empty",
            vec![0xB0, 0x03, 0, 1, 0],
            Truncated,
        ),
        (
            "3.14.2.1 disconnect 0x84",
            vec![0xE0, 0x01, 0x84],
            code(14, 0x84),
        ),
        ("3.15.2.1 auth 0x80", vec![0xF0, 0x01, 0x80], code(15, 0x80)),
        (
            "3.2.2.2 connack 0x04",
            vec![0x20, 0x03, 0, 0x04, 0],
            code(2, 0x04),
        ),
        // [MQTT-3.8.3-5] reserved option bits, §3.8.3.1 retain handling 3.
        (
            "3.8.3-5 bits 6-7",
            vec![0x82, 0x07, 0, 1, 0, 0, 1, b'a', 0x40],
            InvalidSubscribeOptions(0x40),
        ),
        (
            "3.8.3.1 retain handling 3",
            vec![0x82, 0x07, 0, 1, 0, 0, 1, b'a', 0x30],
            InvalidSubscribeOptions(0x30),
        ),
        (
            "3.8.3.1 qos 3",
            vec![0x82, 0x07, 0, 1, 0, 0, 1, b'a', 0x03],
            InvalidQoS,
        ),
        // [MQTT-3.1.2-3] the reserved CONNECT flag is still reserved.
        ("3.1.2-3", connect_with(3, &[0], &[]), InvalidConnectFlags),
        // [MQTT-3.14.1-1] DISCONNECT flags are 0.
        (
            "3.14.1-1",
            vec![0xE1, 0x00],
            InvalidFlags {
                packet_type: 14,
                flags: 1,
            },
        ),
        // §3.1.3.6 leftover bytes after the declared fields.
        ("3.1.3 leftover", connect_with(2, &[0], &[0xAA]), Truncated),
    ];
    for (name, bytes, err) in cases {
        assert_eq!(dec(&bytes), Err(err.clone()), "[MQTT-{name}]");
    }
}

/// §3.1.2.9: MQTT 5 accepts a password without a user name, 3.1.1 not.
#[test]
fn password_without_user_name() {
    let v5 = connect_with(0x42, &[0], &[0, 1, b'p']);
    assert!(matches!(dec(&v5), Ok(Some((Packet::Connect(_), _)))));
}

/// [MQTT-3.3.4-6]: a server rejects a Subscription Identifier from a
/// client; a client accepts several from the server.
#[test]
fn subscription_identifier_in_publish_depends_on_side() {
    let bytes = publish_with(&[4, 0x0B, 1, 0x0B, 2]);
    let buf = Bytes::from(bytes);
    assert_eq!(
        decode(&buf, MAX, Side::Server, V5),
        Err(DecodeError::SubscriptionIdFromClient)
    );
    let Ok(Some((Packet::Publish(p), _))) = decode(&buf, MAX, Side::Client, V5) else {
        panic!("publish expected");
    };
    assert_eq!(
        p.props.map(|p| p.subscription_identifiers),
        Some(vec![1, 2])
    );
}

/// AUTH (type 15) exists only in MQTT 5; DISCONNECT and AUTH go both ways.
#[test]
fn auth_and_disconnect_by_version_and_side() {
    let auth = Bytes::from_static(&[0xF0, 0x00]);
    for v in [ProtocolVersion::V31, ProtocolVersion::V311] {
        assert_eq!(
            decode(&auth, MAX, Side::Server, v),
            Err(DecodeError::ReservedPacketType(15))
        );
        assert_eq!(
            frame_len(&auth, MAX, Side::Server, v),
            Err(DecodeError::ReservedPacketType(15))
        );
    }
    assert_eq!(frame_len(&auth, MAX, Side::Server, V5), Ok(Some(2)));
    let disconnect = Bytes::from_static(&[0xE0, 0x00]);
    for side in [Side::Server, Side::Client] {
        assert!(decode(&auth, MAX, side, V5).is_ok_and(|p| p.is_some()));
        assert!(decode(&disconnect, MAX, side, V5).is_ok_and(|p| p.is_some()));
    }
    assert_eq!(
        decode(&disconnect, MAX, Side::Client, ProtocolVersion::V311),
        Err(DecodeError::UnexpectedPacket(14))
    );
}

/// A CONNECT is decoded by its own level whatever the connection's version.
#[test]
fn connect_decodes_by_its_own_level() {
    let bytes = bytes_of(&Packet::Connect(Box::new(v5_connect())));
    let buf = Bytes::from(bytes);
    for v in [ProtocolVersion::V31, ProtocolVersion::V311, V5] {
        let Ok(Some((Packet::Connect(c), _))) = decode(&buf, MAX, Side::Server, v) else {
            panic!("connect expected at {v:?}");
        };
        assert_eq!(c.version, V5);
    }
}

/// The DISCONNECT reason a server sends for each kind of failure (§4.13).
#[test]
fn decode_errors_map_to_reasons() {
    let reason = |bytes: &[u8]| dec(bytes).err().map(|e| e.reason());
    assert_eq!(
        reason(&publish_with(&[2, 0x7F, 0])),
        Some(Reason::MALFORMED_PACKET)
    );
    // Topic alias 0: Topic Alias invalid (§3.3.2.3.4, [MQTT-3.3.2-8]).
    assert_eq!(
        reason(&publish_with(&[3, 0x23, 0, 0])),
        Some(Reason::TOPIC_ALIAS_INVALID)
    );
    assert_eq!(
        reason(&publish_with(&[2, 0x01, 2])),
        Some(Reason::PROTOCOL_ERROR)
    );
    assert_eq!(reason(&[0x30, 0x03, 0, 0, 0]), Some(Reason::PROTOCOL_ERROR));
    assert_eq!(reason(&[0xE0, 0x01, 0x84]), Some(Reason::MALFORMED_PACKET));
    let big = decode(&Bytes::from_static(&[0x30, 0x7F]), 10, Side::Server, V5);
    assert_eq!(
        big.err().map(|e| e.reason()),
        Some(Reason::PACKET_TOO_LARGE)
    );
}

/// Writes the fuzz seed corpus: every packet of this file and of the
/// 3.1.1 tests, each as `[selector] ++ bytes` where the selector byte
/// picks the version and side as the fuzz target reads it.
#[test]
fn write_fuzz_corpus() {
    if std::env::var_os("COREMQ_WRITE_CORPUS").is_none() {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode");
    std::fs::create_dir_all(&dir).expect("corpus dir");
    let sets = [
        (
            0u8,
            ProtocolVersion::V31,
            super::packet::tests::every_packet(),
        ),
        (
            1,
            ProtocolVersion::V311,
            super::packet::tests::every_packet(),
        ),
        (2, V5, every_v5_packet()),
    ];
    for (selector, version, packets) in sets {
        for (i, p) in packets.iter().enumerate() {
            let mut bytes = vec![selector];
            encode(p, version, &mut bytes);
            let name = format!("{version:?}-{i:02}").to_lowercase();
            std::fs::write(dir.join(name), bytes).expect("corpus file");
        }
    }
}

//! MQTT 5 reason codes (§2.4): the [`Reason`] newtype with a constant for
//! every code, which codes each packet type may carry (checked by the
//! decoders of `publish.rs`, `subscribe.rs`, `connect.rs` and `control.rs`),
//! the mapping to and from the 3.1.1 CONNACK return codes, and
//! [`DecodeError::reason`], the DISCONNECT reason the server sends when
//! decoding fails (called by the connection task).

use super::header;
use super::DecodeError;

/// An MQTT 5 reason code (§2.4). Values `>= 0x80` are errors.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Reason(pub u8);

impl Reason {
    pub const SUCCESS: Reason = Reason(0x00);
    pub const NORMAL_DISCONNECTION: Reason = Reason(0x00);
    pub const GRANTED_QOS0: Reason = Reason(0x00);
    pub const GRANTED_QOS1: Reason = Reason(0x01);
    pub const GRANTED_QOS2: Reason = Reason(0x02);
    pub const DISCONNECT_WITH_WILL: Reason = Reason(0x04);
    pub const NO_MATCHING_SUBSCRIBERS: Reason = Reason(0x10);
    pub const NO_SUBSCRIPTION_EXISTED: Reason = Reason(0x11);
    pub const CONTINUE_AUTHENTICATION: Reason = Reason(0x18);
    pub const REAUTHENTICATE: Reason = Reason(0x19);
    pub const UNSPECIFIED_ERROR: Reason = Reason(0x80);
    pub const MALFORMED_PACKET: Reason = Reason(0x81);
    pub const PROTOCOL_ERROR: Reason = Reason(0x82);
    pub const IMPLEMENTATION_SPECIFIC_ERROR: Reason = Reason(0x83);
    pub const UNSUPPORTED_PROTOCOL_VERSION: Reason = Reason(0x84);
    pub const CLIENT_IDENTIFIER_NOT_VALID: Reason = Reason(0x85);
    pub const BAD_USER_NAME_OR_PASSWORD: Reason = Reason(0x86);
    pub const NOT_AUTHORIZED: Reason = Reason(0x87);
    pub const SERVER_UNAVAILABLE: Reason = Reason(0x88);
    pub const SERVER_BUSY: Reason = Reason(0x89);
    pub const BANNED: Reason = Reason(0x8A);
    pub const SERVER_SHUTTING_DOWN: Reason = Reason(0x8B);
    pub const BAD_AUTHENTICATION_METHOD: Reason = Reason(0x8C);
    pub const KEEP_ALIVE_TIMEOUT: Reason = Reason(0x8D);
    pub const SESSION_TAKEN_OVER: Reason = Reason(0x8E);
    pub const TOPIC_FILTER_INVALID: Reason = Reason(0x8F);
    pub const TOPIC_NAME_INVALID: Reason = Reason(0x90);
    pub const PACKET_IDENTIFIER_IN_USE: Reason = Reason(0x91);
    pub const PACKET_IDENTIFIER_NOT_FOUND: Reason = Reason(0x92);
    pub const RECEIVE_MAXIMUM_EXCEEDED: Reason = Reason(0x93);
    pub const TOPIC_ALIAS_INVALID: Reason = Reason(0x94);
    pub const PACKET_TOO_LARGE: Reason = Reason(0x95);
    pub const MESSAGE_RATE_TOO_HIGH: Reason = Reason(0x96);
    pub const QUOTA_EXCEEDED: Reason = Reason(0x97);
    pub const ADMINISTRATIVE_ACTION: Reason = Reason(0x98);
    pub const PAYLOAD_FORMAT_INVALID: Reason = Reason(0x99);
    pub const RETAIN_NOT_SUPPORTED: Reason = Reason(0x9A);
    pub const QOS_NOT_SUPPORTED: Reason = Reason(0x9B);
    pub const USE_ANOTHER_SERVER: Reason = Reason(0x9C);
    pub const SERVER_MOVED: Reason = Reason(0x9D);
    pub const SHARED_SUBSCRIPTIONS_NOT_SUPPORTED: Reason = Reason(0x9E);
    pub const CONNECTION_RATE_EXCEEDED: Reason = Reason(0x9F);
    pub const MAXIMUM_CONNECT_TIME: Reason = Reason(0xA0);
    pub const SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED: Reason = Reason(0xA1);
    pub const WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED: Reason = Reason(0xA2);

    /// Whether this code reports an error (`>= 0x80`).
    pub fn is_error(self) -> bool {
        self.0 >= 0x80
    }

    /// The 3.1.1 CONNACK return code (§3.2.2.3) that says the most of
    /// what this reason says: 0 accepted, 1 protocol version, 2 client id,
    /// 3 server unavailable, 4 bad user name or password, 5 not authorized
    /// (every other refusal).
    pub fn v3_connack_code(self) -> u8 {
        match self {
            Reason::SUCCESS => 0,
            Reason::UNSUPPORTED_PROTOCOL_VERSION => 1,
            Reason::CLIENT_IDENTIFIER_NOT_VALID => 2,
            Reason::SERVER_UNAVAILABLE
            | Reason::SERVER_BUSY
            | Reason::SERVER_SHUTTING_DOWN
            | Reason::QUOTA_EXCEEDED
            | Reason::USE_ANOTHER_SERVER
            | Reason::SERVER_MOVED
            | Reason::CONNECTION_RATE_EXCEEDED => 3,
            Reason::BAD_USER_NAME_OR_PASSWORD => 4,
            _ => 5,
        }
    }

    /// The reason a 3.1.1 CONNACK return code stands for; `None` for the
    /// reserved codes 6..=255.
    pub fn from_v3_connack_code(code: u8) -> Option<Reason> {
        let reason = match code {
            0 => Reason::SUCCESS,
            1 => Reason::UNSUPPORTED_PROTOCOL_VERSION,
            2 => Reason::CLIENT_IDENTIFIER_NOT_VALID,
            3 => Reason::SERVER_UNAVAILABLE,
            4 => Reason::BAD_USER_NAME_OR_PASSWORD,
            5 => Reason::NOT_AUTHORIZED,
            _ => return None,
        };
        Some(reason)
    }
}

/// PUBACK and PUBREC (§3.4.2.1, §3.5.2.1).
const PUBACK_CODES: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
/// PUBREL and PUBCOMP (§3.6.2.1, §3.7.2.1).
const PUBREL_CODES: &[u8] = &[0x00, 0x92];
/// SUBACK (§3.9.3).
const SUBACK_CODES: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
/// UNSUBACK (§3.11.3).
const UNSUBACK_CODES: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
/// CONNACK (§3.2.2.2).
const CONNACK_CODES: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];
/// DISCONNECT (§3.14.2.1).
const DISCONNECT_CODES: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
/// AUTH (§3.15.2.1).
const AUTH_CODES: &[u8] = &[0x00, 0x18, 0x19];

/// The reason codes packets of `packet_type` may carry.
fn codes_for(packet_type: u8) -> &'static [u8] {
    match packet_type {
        header::PUBACK | header::PUBREC => PUBACK_CODES,
        header::PUBREL | header::PUBCOMP => PUBREL_CODES,
        header::SUBACK => SUBACK_CODES,
        header::UNSUBACK => UNSUBACK_CODES,
        header::CONNACK => CONNACK_CODES,
        header::DISCONNECT => DISCONNECT_CODES,
        header::AUTH => AUTH_CODES,
        _ => &[],
    }
}

/// `code` as the reason of a packet of `packet_type`, if that packet type
/// may carry it; `InvalidReasonCode` (malformed) otherwise.
pub(crate) fn check_reason(packet_type: u8, code: u8) -> Result<Reason, DecodeError> {
    if codes_for(packet_type).contains(&code) {
        Ok(Reason(code))
    } else {
        Err(DecodeError::InvalidReasonCode { packet_type, code })
    }
}

impl DecodeError {
    /// The reason code of the DISCONNECT (or CONNACK, before CONNECT was
    /// accepted) that a server sends for this error (§4.13): 0x95 for a
    /// packet over the maximum size, 0x84 for an unsupported protocol
    /// level, 0x90 for an invalid topic name, 0x94 for topic alias 0
    /// (§3.3.2.3.4), 0x82 for what the spec calls a protocol error, 0x81
    /// (malformed) for the rest.
    pub fn reason(&self) -> Reason {
        use DecodeError::*;
        match self {
            PacketTooLarge { .. } => Reason::PACKET_TOO_LARGE,
            UnsupportedProtocolLevel(_) => Reason::UNSUPPORTED_PROTOCOL_VERSION,
            InvalidTopicName => Reason::TOPIC_NAME_INVALID,
            InvalidPropertyValue(super::properties::TOPIC_ALIAS) => Reason::TOPIC_ALIAS_INVALID,
            UnexpectedPacket(_)
            | EmptySubscription
            | DuplicateProperty(_)
            | InvalidPropertyValue(_)
            | TopicAliasWithoutTopic
            | SubscriptionIdFromClient
            | AuthDataWithoutMethod => Reason::PROTOCOL_ERROR,
            ReservedPacketType(_)
            | InvalidFlags { .. }
            | MalformedRemainingLength
            | InvalidQoS
            | InvalidUtf8
            | Truncated
            | ZeroPacketId
            | InvalidProtocolName
            | InvalidConnectFlags
            | MalformedVarInt
            | MalformedProperty
            | InvalidPropertyId(_)
            | PropertyNotAllowed { .. }
            | InvalidReasonCode { .. }
            | InvalidSubscribeOptions(_) => Reason::MALFORMED_PACKET,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_error_from_0x80() {
        assert!(!Reason::SUCCESS.is_error());
        assert!(!Reason::REAUTHENTICATE.is_error());
        assert!(Reason::UNSPECIFIED_ERROR.is_error());
        assert!(Reason::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED.is_error());
    }

    /// §3.2.2.3 (3.1.1) return codes and their MQTT 5 equivalents.
    #[test]
    fn v3_connack_codes_round_trip() {
        for code in 0..=5u8 {
            let reason = Reason::from_v3_connack_code(code);
            assert_eq!(reason.map(Reason::v3_connack_code), Some(code));
        }
        assert_eq!(Reason::from_v3_connack_code(6), None);
        assert_eq!(Reason::from_v3_connack_code(0xFF), None);
        assert_eq!(Reason::SERVER_BUSY.v3_connack_code(), 3);
        assert_eq!(Reason::QUOTA_EXCEEDED.v3_connack_code(), 3);
        assert_eq!(Reason::BANNED.v3_connack_code(), 5);
        assert_eq!(Reason::BAD_AUTHENTICATION_METHOD.v3_connack_code(), 5);
        assert_eq!(Reason::UNSPECIFIED_ERROR.v3_connack_code(), 5);
    }

    #[test]
    fn reason_codes_per_packet() {
        assert_eq!(check_reason(header::PUBACK, 0x10), Ok(Reason(0x10)));
        assert!(check_reason(header::PUBACK, 0x92).is_err());
        assert_eq!(check_reason(header::PUBREL, 0x92), Ok(Reason(0x92)));
        assert!(check_reason(header::PUBCOMP, 0x80).is_err());
        assert!(check_reason(header::AUTH, 0x80).is_err());
        assert!(check_reason(header::DISCONNECT, 0x84).is_err());
        assert!(check_reason(header::CONNACK, 0x04).is_err());
    }

    /// §4.13: malformed packets and protocol errors.
    #[test]
    fn decode_error_reasons() {
        use DecodeError::*;
        assert_eq!(Truncated.reason(), Reason::MALFORMED_PACKET);
        assert_eq!(InvalidPropertyId(0x7F).reason(), Reason::MALFORMED_PACKET);
        assert_eq!(DuplicateProperty(0x11).reason(), Reason::PROTOCOL_ERROR);
        assert_eq!(InvalidPropertyValue(0x21).reason(), Reason::PROTOCOL_ERROR);
        // §3.3.2.3.4 [MQTT-3.3.2-8]: topic alias 0 is "Topic Alias invalid".
        assert_eq!(
            InvalidPropertyValue(0x23).reason(),
            Reason::TOPIC_ALIAS_INVALID
        );
        assert_eq!(
            PacketTooLarge { size: 2, max: 1 }.reason(),
            Reason::PACKET_TOO_LARGE
        );
    }
}

//! MQTT 3.1 / 3.1.1 / 5.0 wire codec: plain synchronous code, no I/O.
//!
//! Owns no state. Called by the connection task (decode what was read, encode
//! what the session wants sent, both for the connection's
//! [`ProtocolVersion`]) and by `coremq-bench` and the tests (the same codec on
//! the client side: there is one codec in this repository).
//!
//! * [`decode`] takes the bytes buffered so far and returns `Ok(None)` when a
//!   whole packet is not there yet ("need more bytes" is not an error), or the
//!   packet and the number of bytes it used. Anything malformed is a
//!   [`DecodeError`]; the caller closes that connection and nothing else
//!   ([`DecodeError::reason`] names the MQTT 5 DISCONNECT reason for it).
//! * [`encode`] appends one packet to an output buffer for a version;
//!   [`encode_publish`] / [`encode_publish_v5`] write a PUBLISH from borrowed
//!   parts (the broker's hot path).
//!
//! Every packet struct serves every version: MQTT 5 properties are one
//! [`Properties`] behind `props: Option<Box<Properties>>`, `None` when absent
//! (always for 3.1/3.1.1), and reason codes are [`Reason`].
//!
//! One file per packet family: `connect.rs` (CONNECT, CONNACK), `publish.rs`
//! (PUBLISH and its four acknowledgements), `subscribe.rs` (SUBSCRIBE, SUBACK,
//! UNSUBSCRIBE, UNSUBACK), `control.rs` (DISCONNECT, AUTH), `properties.rs`
//! (MQTT 5 properties), `reason.rs` (reason codes and [`DecodeError::reason`]),
//! `header.rs` (fixed header, variable byte integers, strings) and
//! `packet.rs` (the dispatch over packet types).

mod connect;
mod control;
mod header;
mod packet;
mod properties;
mod publish;
mod reason;
mod subscribe;
#[cfg(test)]
mod v5_tests;

pub use header::MAX_REMAINING_LENGTH;
pub use packet::{decode, encode, encoded_len, frame_len};
pub use properties::{read_message_properties, write_message_properties, Properties};
pub use publish::{encode_publish, encode_publish_v5, publish_v5_len, PublishV5};
pub use reason::Reason;

/// Bytes of a set of MQTT 5 properties on the wire (0 when there are none):
/// what they count against the byte limits of what the broker holds.
pub(crate) fn held_properties_len(p: Option<&Properties>) -> usize {
    p.map_or(0, |p| properties::properties_len(Some(p)))
}

use bytes::Bytes;
use std::fmt;
use std::sync::Arc;

/// The protocol level a connection speaks, from its CONNECT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProtocolVersion {
    /// MQTT 3.1: protocol name "MQIsdp", level 3.
    V31,
    /// MQTT 3.1.1: protocol name "MQTT", level 4.
    V311,
    /// MQTT 5.0: protocol name "MQTT", level 5.
    V5,
}

impl ProtocolVersion {
    /// The protocol level byte of CONNECT.
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V31 => 3,
            ProtocolVersion::V311 => 4,
            ProtocolVersion::V5 => 5,
        }
    }

    /// Whether packets carry MQTT 5 reason codes and properties.
    pub fn is_v5(self) -> bool {
        self == ProtocolVersion::V5
    }
}

/// Quality of service of a PUBLISH or a subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QoS {
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    /// QoS from its two-bit wire value; 3 is malformed.
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// The last will carried by CONNECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastWill {
    pub topic: Arc<str>,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// MQTT 5 will properties (will delay interval, message expiry, ...).
    pub props: Option<Box<Properties>>,
}

/// CONNECT (§3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    pub version: ProtocolVersion,
    pub client_id: String,
    /// Clean Session (3.1.1) or Clean Start (5).
    pub clean_session: bool,
    /// Seconds; 0 disables keepalive.
    pub keep_alive: u16,
    pub will: Option<LastWill>,
    pub username: Option<String>,
    pub password: Option<Bytes>,
    pub props: Option<Box<Properties>>,
}

/// CONNACK (§3.2). `code` is written as the 3.1.1 return code of
/// [`Reason::v3_connack_code`] on a 3.1/3.1.1 connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    pub code: Reason,
    pub props: Option<Box<Properties>>,
}

/// PUBLISH (§3.3). `pkid` is 0 for QoS 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Shared with the routed message: decoded once, never copied again.
    /// Empty only in MQTT 5, when `props.topic_alias` is set.
    pub topic: Arc<str>,
    pub pkid: u16,
    /// A zero-copy slice of the buffer the packet was decoded from.
    pub payload: Bytes,
    pub props: Option<Box<Properties>>,
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP (§3.4-§3.7): a packet id and, in
/// MQTT 5, a reason code and properties.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub pkid: u16,
    pub reason: Reason,
    pub props: Option<Box<Properties>>,
}

impl Ack {
    /// A successful acknowledgement of `pkid`, without properties.
    pub fn new(pkid: u16) -> Ack {
        Ack::with(pkid, Reason::SUCCESS)
    }

    /// An acknowledgement of `pkid` with `reason`, without properties.
    pub fn with(pkid: u16, reason: Reason) -> Ack {
        Ack {
            pkid,
            reason,
            props: None,
        }
    }
}

/// One topic filter of a SUBSCRIBE with its subscription options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscribeFilter {
    pub filter: String,
    pub qos: QoS,
    /// MQTT 5: do not send the client its own messages.
    pub no_local: bool,
    /// MQTT 5: keep the retain flag as published.
    pub retain_as_published: bool,
    /// MQTT 5: 0 send retained on subscribe, 1 only for a new
    /// subscription, 2 never.
    pub retain_handling: u8,
}

impl SubscribeFilter {
    /// A filter with the 3.1.1 options: only a QoS.
    pub fn new(filter: impl Into<String>, qos: QoS) -> SubscribeFilter {
        SubscribeFilter {
            filter: filter.into(),
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: 0,
        }
    }
}

/// SUBSCRIBE (§3.8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribe {
    pub pkid: u16,
    pub filters: Vec<SubscribeFilter>,
    pub props: Option<Box<Properties>>,
}

/// One SUBACK return code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubAckCode {
    /// The granted QoS.
    Granted(QoS),
    /// 0x80: unspecified failure.
    Failure,
    /// MQTT 5: a failure code other than 0x80. A 3.1/3.1.1 connection
    /// gets 0x80 for it.
    Refused(Reason),
}

/// SUBACK (§3.9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubAck {
    pub pkid: u16,
    pub codes: Vec<SubAckCode>,
    pub props: Option<Box<Properties>>,
}

/// UNSUBSCRIBE (§3.10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsubscribe {
    pub pkid: u16,
    pub filters: Vec<String>,
    pub props: Option<Box<Properties>>,
}

/// UNSUBACK (§3.11). 3.1/3.1.1 carry only the packet id (`reasons` is
/// empty when decoded, ignored when encoded); MQTT 5 one reason per filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsubAck {
    pub pkid: u16,
    pub reasons: Vec<Reason>,
    pub props: Option<Box<Properties>>,
}

impl UnsubAck {
    /// The 3.1.1 UNSUBACK of `pkid`.
    pub fn new(pkid: u16) -> UnsubAck {
        UnsubAck {
            pkid,
            reasons: Vec::new(),
            props: None,
        }
    }
}

/// DISCONNECT (§3.14). 3.1/3.1.1 encode the empty body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disconnect {
    pub reason: Reason,
    pub props: Option<Box<Properties>>,
}

impl Disconnect {
    /// Normal disconnection (0x00), without properties.
    pub fn normal() -> Disconnect {
        Disconnect::with(Reason::NORMAL_DISCONNECTION)
    }

    /// A DISCONNECT with `reason`, without properties.
    pub fn with(reason: Reason) -> Disconnect {
        Disconnect {
            reason,
            props: None,
        }
    }
}

/// AUTH (§3.15), MQTT 5 only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Auth {
    pub reason: Reason,
    pub props: Option<Box<Properties>>,
}

/// Every MQTT control packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(Ack),
    PubRec(Ack),
    PubRel(Ack),
    PubComp(Ack),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    Auth(Auth),
}

/// Why bytes could not be decoded. Every variant closes the connection;
/// [`DecodeError::reason`] gives the MQTT 5 reason code for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Packet type 0, or 15 before MQTT 5.
    ReservedPacketType(u8),
    /// Fixed-header flag bits that the spec fixes were wrong (§2.2.2), or
    /// reserved CONNACK acknowledge flags.
    InvalidFlags { packet_type: u8, flags: u8 },
    /// Remaining length over four bytes or 268,435,455.
    MalformedRemainingLength,
    /// The whole packet is larger than the configured maximum.
    PacketTooLarge { size: usize, max: usize },
    /// QoS 3 in PUBLISH, will or SUBSCRIBE.
    InvalidQoS,
    /// A string that is not well-formed UTF-8, or has U+0000 (§1.5.3).
    InvalidUtf8,
    /// The variable header or payload ended early, or had bytes left over.
    Truncated,
    /// A packet identifier of 0 where one is required (§2.3.1).
    ZeroPacketId,
    /// A PUBLISH or will topic name with wildcards, or empty (§3.3.2.1).
    InvalidTopicName,
    /// SUBSCRIBE/UNSUBSCRIBE with no filter (§3.8.3-3, §3.10.3-2).
    EmptySubscription,
    /// Protocol name other than "MQTT"/"MQIsdp". The spec says close
    /// without CONNACK (§3.1.2-1).
    InvalidProtocolName,
    /// Known protocol name with an unsupported level: CONNACK 0x01 is due.
    UnsupportedProtocolLevel(u8),
    /// CONNECT flags: reserved bit set, or will flags inconsistent,
    /// or (before MQTT 5) password without username.
    InvalidConnectFlags,
    /// A packet type only the server sends, received by the server
    /// (or the reverse when decoding as a client).
    UnexpectedPacket(u8),
    /// A variable byte integer longer than four bytes (§1.5.5).
    MalformedVarInt,
    /// A property value or the property length runs past its bounds.
    MalformedProperty,
    /// A property identifier MQTT 5 does not define (§2.2.2.2).
    InvalidPropertyId(u8),
    /// A defined property in a packet that may not carry it (packet type 0
    /// stands for the will properties).
    PropertyNotAllowed { packet_type: u8, id: u8 },
    /// A property that may appear once appeared again.
    DuplicateProperty(u8),
    /// A property value the spec calls a protocol error (0 where a
    /// nonzero value is due, not 0 or 1, a wildcard in Response Topic).
    InvalidPropertyValue(u8),
    /// A reason code not defined for that packet type.
    InvalidReasonCode { packet_type: u8, code: u8 },
    /// MQTT 5 SUBSCRIBE options with reserved bits or retain handling 3.
    InvalidSubscribeOptions(u8),
    /// A PUBLISH with an empty topic and no topic alias ([MQTT-3.3.2-8]).
    TopicAliasWithoutTopic,
    /// A Subscription Identifier in a PUBLISH from a client ([MQTT-3.3.4-6]).
    SubscriptionIdFromClient,
    /// Authentication Data without Authentication Method (§3.1.2.11.10).
    AuthDataWithoutMethod,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for DecodeError {}

/// Which side decodes: the server rejects packets only a server sends and
/// the reverse. `Any` accepts every type (tests, tools).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Server,
    Client,
    Any,
}

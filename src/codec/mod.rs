//! MQTT 3.1 / 3.1.1 wire codec: plain synchronous code, no I/O.
//!
//! Owns no state. Called by the connection task (decode what was read, encode
//! what the session wants sent) and by `coremq-bench` (the same codec on the
//! client side: there is one codec in this repository).
//!
//! * [`decode`] takes the bytes buffered so far and returns `Ok(None)` when a
//!   whole packet is not there yet ("need more bytes" is not an error), or the
//!   packet and the number of bytes it used. Anything malformed is a
//!   [`DecodeError`]; the caller closes that connection and nothing else.
//! * [`encode`] appends one packet to an output buffer.
//!
//! Every packet carries enough to be encoded for the protocol version of its
//! connection ([`ProtocolVersion`]); MQTT 5 properties will be added to these
//! structs, not beside them.
//!
//! One file per packet family: `connect.rs` (CONNECT, CONNACK), `publish.rs`
//! (PUBLISH and its four acknowledgements), `subscribe.rs` (SUBSCRIBE, SUBACK,
//! UNSUBSCRIBE, UNSUBACK), `header.rs` (fixed header, remaining length,
//! strings) and `packet.rs` (the dispatch over packet types).

mod connect;
mod header;
mod packet;
mod publish;
mod subscribe;

pub use header::MAX_REMAINING_LENGTH;
pub use packet::{decode, encode, encoded_len, frame_len};
pub use publish::encode_publish;

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
}

impl ProtocolVersion {
    /// The protocol level byte of CONNECT.
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V31 => 3,
            ProtocolVersion::V311 => 4,
        }
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

/// CONNACK return codes of MQTT 3.1.1 §3.2.2.3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectReturnCode {
    Accepted = 0,
    UnacceptableProtocolVersion = 1,
    IdentifierRejected = 2,
    ServerUnavailable = 3,
    BadUsernameOrPassword = 4,
    NotAuthorized = 5,
}

/// The last will carried by CONNECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastWill {
    pub topic: Arc<str>,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
}

/// CONNECT (§3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    pub version: ProtocolVersion,
    pub client_id: String,
    pub clean_session: bool,
    /// Seconds; 0 disables keepalive.
    pub keep_alive: u16,
    pub will: Option<LastWill>,
    pub username: Option<String>,
    pub password: Option<Bytes>,
}

/// CONNACK (§3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    pub code: ConnectReturnCode,
}

/// PUBLISH (§3.3). `pkid` is 0 for QoS 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Shared with the routed message: decoded once, never copied again.
    pub topic: Arc<str>,
    pub pkid: u16,
    /// A zero-copy slice of the buffer the packet was decoded from.
    pub payload: Bytes,
}

/// One topic filter of a SUBSCRIBE with its requested QoS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscribeFilter {
    pub filter: String,
    pub qos: QoS,
}

/// SUBSCRIBE (§3.8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribe {
    pub pkid: u16,
    pub filters: Vec<SubscribeFilter>,
}

/// One SUBACK return code: the granted QoS or failure (0x80).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubAckCode {
    Granted(QoS),
    Failure,
}

/// SUBACK (§3.9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubAck {
    pub pkid: u16,
    pub codes: Vec<SubAckCode>,
}

/// UNSUBSCRIBE (§3.10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsubscribe {
    pub pkid: u16,
    pub filters: Vec<String>,
}

/// Every MQTT 3.1/3.1.1 control packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(u16),
    PingReq,
    PingResp,
    Disconnect,
}

/// Why bytes could not be decoded. Every variant closes the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Packet type 0 or 15.
    ReservedPacketType(u8),
    /// Fixed-header flag bits that the spec fixes were wrong (§2.2.2).
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
    /// A PUBLISH topic name with wildcards or empty (§3.3.2.1).
    InvalidTopicName,
    /// SUBSCRIBE/UNSUBSCRIBE with no filter (§3.8.3-3, §3.10.3-2).
    EmptySubscription,
    /// Protocol name other than "MQTT"/"MQIsdp". The spec says close
    /// without CONNACK (§3.1.2-1).
    InvalidProtocolName,
    /// Known protocol name with an unsupported level: CONNACK 0x01 is due.
    UnsupportedProtocolLevel(u8),
    /// CONNECT flags: reserved bit set, or will flags inconsistent,
    /// or password without username (§3.1.2-3, -11..-15, -22).
    InvalidConnectFlags,
    /// A packet type only the server sends, received by the server
    /// (or the reverse when decoding as a client).
    UnexpectedPacket(u8),
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

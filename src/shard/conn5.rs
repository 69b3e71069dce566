//! What an MQTT 5 connection asked of the broker, and the broker's state for
//! it that a 3.1.1 connection never needs.
//!
//! Owned by the connection's [`Conn`](super::conns::Conn) (boxed, absent for
//! 3.1/3.1.1, so those pay one word). Set once by the CONNECT handler
//! (`protocol/connect.rs`) from the CONNECT properties; read by whatever
//! sends to the client (the PUBLISH encoder, the window, reason strings).

use crate::codec::Properties;

/// The client's limits and wishes from its CONNECT properties (§3.1.2.11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnV5 {
    /// Largest packet the client accepts (Maximum Packet Size; unlimited
    /// when absent) [MQTT-3.1.2-24].
    pub max_packet_size: u32,
    /// Topic aliases the client accepts from the broker (0: none).
    pub topic_alias_maximum: u16,
    /// QoS 1/2 PUBLISHes the client takes unacknowledged (Receive Maximum).
    pub receive_maximum: u16,
    /// Whether reason strings and user properties may be sent on packets
    /// other than PUBLISH, CONNACK and DISCONNECT (Request Problem
    /// Information) [MQTT-3.1.2-29].
    pub problem_information: bool,
    /// The session expiry interval the connection set (CONNECT, then
    /// DISCONNECT): a zero one may not be raised on DISCONNECT [MQTT-3.14.2-2].
    pub session_expiry_s: u32,
    /// The CONNECT's Authentication Method: a re-authentication must use
    /// the same one [MQTT-4.12.1-1]; none, no AUTH at all [MQTT-4.12.0-7].
    pub auth_method: Option<String>,
}

impl ConnV5 {
    /// From the CONNECT's properties (absent ones take their defaults).
    pub fn from_connect(props: Option<&Properties>) -> ConnV5 {
        let none = Properties::default();
        let p = props.unwrap_or(&none);
        ConnV5 {
            max_packet_size: p.maximum_packet_size.unwrap_or(u32::MAX),
            topic_alias_maximum: p.topic_alias_maximum.unwrap_or(0),
            receive_maximum: p.receive_maximum.unwrap_or(u16::MAX),
            problem_information: p.request_problem_information != Some(0),
            session_expiry_s: p.session_expiry_interval.unwrap_or(0),
            auth_method: p.authentication_method.clone(),
        }
    }
}

//! What an MQTT 5 connection asked of the broker, and the broker's state for
//! it that a 3.1.1 connection never needs.
//!
//! Owned by the connection's [`Conn`](super::conns::Conn) (boxed, absent for
//! 3.1/3.1.1, so those pay one word). Set once by the CONNECT handler
//! (`protocol/connect.rs`) from the CONNECT properties; read by whatever
//! sends to the client (the PUBLISH encoder, the window, reason strings).
//! Also holds the connection's topic aliases ([`super::aliases`]) and
//! encodes its PUBLISHes ([`ConnV5::encode_publish`]): the message's
//! forwarded properties with this delivery's remaining expiry,
//! subscription identifiers and topic alias.

use super::aliases::{InAliases, OutAlias, OutAliases};
use crate::codec::{self, Properties, PublishV5, QoS};
use crate::message::{wall_clock_us, Message};

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
    /// The Session Expiry Interval the CONNECT asked for (before the broker's
    /// cap): if it was 0, a DISCONNECT may not set one [MQTT-3.14.2-2].
    pub session_expiry_s: u32,
    /// The CONNECT's Authentication Method: a re-authentication must use
    /// the same one [MQTT-4.12.1-1]; none, no AUTH at all [MQTT-4.12.0-7].
    pub auth_method: Option<String>,
    /// The topic aliases the client set (inbound PUBLISH).
    pub aliases_in: InAliases,
    /// The topic aliases the broker assigned (outbound PUBLISH); none until
    /// [`cap_aliases_out`](Self::cap_aliases_out).
    pub aliases_out: OutAliases,
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
            aliases_in: InAliases::default(),
            aliases_out: OutAliases::new(0),
        }
    }

    /// Assign at most `max_out` (`mqtt.max_topic_aliases_out`) outbound
    /// aliases, never more than the client's Topic Alias Maximum [MQTT-3.3.2-10].
    pub fn cap_aliases_out(&mut self, max_out: u16) {
        self.aliases_out = OutAliases::new(max_out.min(self.topic_alias_maximum));
    }

    /// Whether a PUBLISH of `msg` at `qos` with `sub_ids` fits the client's
    /// Maximum Packet Size as it would go out now [MQTT-3.1.2-24].
    pub fn fits(&self, msg: &Message, qos: QoS, sub_ids: &[u32]) -> bool {
        if self.max_packet_size == u32::MAX {
            return true;
        }
        let alias = self.aliases_out.plan(&msg.topic);
        let v5 = PublishV5 {
            props: msg.props.as_deref(),
            topic_alias: alias.alias(),
            subscription_identifiers: sub_ids,
            // The property's size does not depend on its value.
            message_expiry_interval: msg.expiry_interval_s(),
        };
        let topic_len = alias.topic(&msg.topic).len();
        let len = codec::publish_v5_len(topic_len, msg.payload.len(), qos, &v5);
        len <= self.max_packet_size as usize
    }

    /// Append an MQTT 5 PUBLISH of `msg`: its forwarded properties, the
    /// expiry interval left [MQTT-3.3.2-6], `sub_ids`, and the topic alias
    /// (assigned on the topic's first PUBLISH, then standing for it
    /// [MQTT-3.3.2-11/12]). A re-sent PUBLISH (`dup`) names its topic in
    /// full: it may go to a new connection, whose client knows no alias.
    #[allow(clippy::too_many_arguments)]
    pub fn encode_publish(
        &mut self,
        out: &mut Vec<u8>,
        msg: &Message,
        retain: bool,
        qos: QoS,
        pkid: u16,
        dup: bool,
        sub_ids: &[u32],
    ) {
        let alias = match dup {
            true => OutAlias::None,
            false => self.aliases_out.assign(&msg.topic),
        };
        let expiry = msg
            .expiry_interval_s()
            .and_then(|_| msg.expiry_left_s(wall_clock_us()));
        let v5 = PublishV5 {
            props: msg.props.as_deref(),
            topic_alias: alias.alias(),
            subscription_identifiers: sub_ids,
            message_expiry_interval: expiry,
        };
        let topic = alias.topic(&msg.topic);
        codec::encode_publish_v5(out, topic, &msg.payload, qos, pkid, retain, dup, &v5);
    }
}

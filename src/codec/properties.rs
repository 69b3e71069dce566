//! MQTT 5 properties (§2.2.2): the one [`Properties`] struct every packet
//! carries behind `props: Option<Box<Properties>>`, and its decoding,
//! encoding and sizing.
//!
//! Called by the packet files (`connect.rs`, `publish.rs`, `subscribe.rs`,
//! `control.rs`) for MQTT 5 packets only. Decoding checks each property
//! against the allow-list of the packet type it is read for (packet type 0
//! stands for the will properties of CONNECT), rejects a property that may
//! appear once appearing twice, and the values the spec calls a protocol
//! error. Encoding writes the properties that are set in identifier order,
//! user properties last and in their order; the PUBLISH hot path
//! ([`super::encode_publish_v5`]) swaps in its per-delivery fields through
//! [`Delivery`].

use super::header::{remaining_length_len, Reader, MAX_REMAINING_LENGTH};
use super::header::{
    AUTH, CONNACK, CONNECT, DISCONNECT, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK,
    SUBSCRIBE, UNSUBACK, UNSUBSCRIBE,
};
use super::{header, DecodeError, ProtocolVersion, Side};
use bytes::Bytes;

/// Every MQTT 5 property, each a plain field (`None` / empty when absent).
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct Properties {
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<String>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    /// May repeat only in a PUBLISH from the server.
    pub subscription_identifiers: Vec<u32>,
    pub session_expiry_interval: Option<u32>,
    pub assigned_client_identifier: Option<String>,
    pub server_keep_alive: Option<u16>,
    pub authentication_method: Option<String>,
    pub authentication_data: Option<Bytes>,
    pub request_problem_information: Option<u8>,
    pub will_delay_interval: Option<u32>,
    pub request_response_information: Option<u8>,
    pub response_information: Option<String>,
    pub server_reference: Option<String>,
    pub reason_string: Option<String>,
    pub receive_maximum: Option<u16>,
    pub topic_alias_maximum: Option<u16>,
    pub topic_alias: Option<u16>,
    pub maximum_qos: Option<u8>,
    pub retain_available: Option<u8>,
    /// In order; a name may repeat.
    pub user_properties: Vec<(String, String)>,
    pub maximum_packet_size: Option<u32>,
    pub wildcard_subscription_available: Option<u8>,
    pub subscription_identifier_available: Option<u8>,
    pub shared_subscription_available: Option<u8>,
}

const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
const CONTENT_TYPE: u8 = 0x03;
const RESPONSE_TOPIC: u8 = 0x08;
const CORRELATION_DATA: u8 = 0x09;
const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
const SERVER_KEEP_ALIVE: u8 = 0x13;
const AUTHENTICATION_METHOD: u8 = 0x15;
const AUTHENTICATION_DATA: u8 = 0x16;
const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
const WILL_DELAY_INTERVAL: u8 = 0x18;
const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
const RESPONSE_INFORMATION: u8 = 0x1A;
const SERVER_REFERENCE: u8 = 0x1C;
const REASON_STRING: u8 = 0x1F;
const RECEIVE_MAXIMUM: u8 = 0x21;
const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
pub(crate) const TOPIC_ALIAS: u8 = 0x23;
const MAXIMUM_QOS: u8 = 0x24;
const RETAIN_AVAILABLE: u8 = 0x25;
const USER_PROPERTY: u8 = 0x26;
const MAXIMUM_PACKET_SIZE: u8 = 0x27;
const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;

/// The pseudo packet type of the will properties in CONNECT.
pub(crate) const WILL: u8 = 0;

/// A set of packet types as a bit mask (bit 0: the will properties).
const fn mask(types: &[u8]) -> u16 {
    let mut m = 0;
    let mut i = 0;
    while i < types.len() {
        m |= 1 << types[i];
        i += 1;
    }
    m
}

const MESSAGE: u16 = mask(&[PUBLISH, WILL]);
const ACKS: u16 = mask(&[PUBACK, PUBREC, PUBREL, PUBCOMP]);
const WITH_REASON_STRING: u16 = ACKS | mask(&[CONNACK, SUBACK, UNSUBACK, DISCONNECT, AUTH]);
const WITH_USER_PROPERTY: u16 =
    WITH_REASON_STRING | mask(&[CONNECT, PUBLISH, WILL, SUBSCRIBE, UNSUBSCRIBE]);

/// The packet types that may carry property `id` (the table of §2.2.2.2);
/// `None` for an identifier MQTT 5 does not define.
fn allowed_in(id: u8) -> Option<u16> {
    let m = match id {
        PAYLOAD_FORMAT_INDICATOR
        | MESSAGE_EXPIRY_INTERVAL
        | CONTENT_TYPE
        | RESPONSE_TOPIC
        | CORRELATION_DATA => MESSAGE,
        SUBSCRIPTION_IDENTIFIER => mask(&[PUBLISH, SUBSCRIBE]),
        SESSION_EXPIRY_INTERVAL => mask(&[CONNECT, CONNACK, DISCONNECT]),
        ASSIGNED_CLIENT_IDENTIFIER
        | SERVER_KEEP_ALIVE
        | RESPONSE_INFORMATION
        | MAXIMUM_QOS
        | RETAIN_AVAILABLE
        | WILDCARD_SUBSCRIPTION_AVAILABLE
        | SUBSCRIPTION_IDENTIFIER_AVAILABLE
        | SHARED_SUBSCRIPTION_AVAILABLE => mask(&[CONNACK]),
        AUTHENTICATION_METHOD | AUTHENTICATION_DATA => mask(&[CONNECT, CONNACK, AUTH]),
        REQUEST_PROBLEM_INFORMATION | REQUEST_RESPONSE_INFORMATION => mask(&[CONNECT]),
        WILL_DELAY_INTERVAL => mask(&[WILL]),
        SERVER_REFERENCE => mask(&[CONNACK, DISCONNECT]),
        REASON_STRING => WITH_REASON_STRING,
        RECEIVE_MAXIMUM | TOPIC_ALIAS_MAXIMUM | MAXIMUM_PACKET_SIZE => mask(&[CONNECT, CONNACK]),
        TOPIC_ALIAS => mask(&[PUBLISH]),
        USER_PROPERTY => WITH_USER_PROPERTY,
        _ => return None,
    };
    Some(m)
}

/// Whether property `id` may appear more than once in a `packet_type`.
fn repeatable(id: u8, packet_type: u8) -> bool {
    id == USER_PROPERTY || (id == SUBSCRIPTION_IDENTIFIER && packet_type == PUBLISH)
}

/// Reads the property length and the properties of a packet of
/// `packet_type` (or [`WILL`]). `None` when the property length is 0.
/// `side` is the decoding side: a server rejects a Subscription
/// Identifier in PUBLISH ([MQTT-3.3.4-6]).
pub(crate) fn read_properties(
    r: &mut Reader<'_>,
    packet_type: u8,
    side: Side,
) -> Result<Option<Box<Properties>>, DecodeError> {
    let len = r.varint()? as usize;
    if len == 0 {
        return Ok(None);
    }
    let mut body = r.take(len).map_err(|_| DecodeError::MalformedProperty)?;
    let mut props = Properties::default();
    let mut seen = 0u64;
    while !body.is_empty() {
        let id = read_id(&mut body, packet_type)?;
        if seen & (1 << id) != 0 && !repeatable(id, packet_type) {
            return Err(DecodeError::DuplicateProperty(id));
        }
        seen |= 1 << id;
        read_value(&mut body, id, &mut props).map_err(|e| match e {
            DecodeError::Truncated => DecodeError::MalformedProperty,
            other => other,
        })?;
    }
    check_consistent(&props, packet_type, side)?;
    Ok(Some(Box::new(props)))
}

/// A property identifier that is defined and allowed in `packet_type`.
/// Identifiers are one-byte variable byte integers: a continuation bit
/// would make one of 128 or more, none of which is defined.
fn read_id(r: &mut Reader<'_>, packet_type: u8) -> Result<u8, DecodeError> {
    let id = r.u8()?;
    let allowed = allowed_in(id).ok_or(DecodeError::InvalidPropertyId(id))?;
    if allowed & (1 << packet_type) == 0 {
        return Err(DecodeError::PropertyNotAllowed { packet_type, id });
    }
    Ok(id)
}

/// A byte property that must be 0 or 1.
fn flag(r: &mut Reader<'_>, id: u8) -> Result<Option<u8>, DecodeError> {
    match r.u8()? {
        v @ (0 | 1) => Ok(Some(v)),
        _ => Err(DecodeError::InvalidPropertyValue(id)),
    }
}

/// A two-byte property that must not be 0.
fn nonzero_u16(r: &mut Reader<'_>, id: u8) -> Result<Option<u16>, DecodeError> {
    match r.u16()? {
        0 => Err(DecodeError::InvalidPropertyValue(id)),
        v => Ok(Some(v)),
    }
}

/// A four-byte property that must not be 0.
fn nonzero_u32(r: &mut Reader<'_>, id: u8) -> Result<Option<u32>, DecodeError> {
    match r.u32()? {
        0 => Err(DecodeError::InvalidPropertyValue(id)),
        v => Ok(Some(v)),
    }
}

/// A Subscription Identifier: 1..=268,435,455 (§3.3.2.3.8).
fn subscription_identifier(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
    match r.varint()? {
        0 => Err(DecodeError::InvalidPropertyValue(SUBSCRIPTION_IDENTIFIER)),
        v => Ok(v),
    }
}

/// A Response Topic: a topic name, so no wildcards ([MQTT-3.3.2-14]).
fn response_topic(r: &mut Reader<'_>) -> Result<Option<String>, DecodeError> {
    let topic = r.str()?;
    if !crate::topic::valid_topic_name(topic) {
        return Err(DecodeError::InvalidPropertyValue(RESPONSE_TOPIC));
    }
    Ok(Some(topic.to_owned()))
}

/// Reads the value of property `id` into `p`.
fn read_value(r: &mut Reader<'_>, id: u8, p: &mut Properties) -> Result<(), DecodeError> {
    match id {
        PAYLOAD_FORMAT_INDICATOR => p.payload_format_indicator = flag(r, id)?,
        MESSAGE_EXPIRY_INTERVAL => p.message_expiry_interval = Some(r.u32()?),
        CONTENT_TYPE => p.content_type = Some(r.string()?),
        RESPONSE_TOPIC => p.response_topic = response_topic(r)?,
        CORRELATION_DATA => p.correlation_data = Some(r.binary()?),
        SUBSCRIPTION_IDENTIFIER => p.subscription_identifiers.push(subscription_identifier(r)?),
        SESSION_EXPIRY_INTERVAL => p.session_expiry_interval = Some(r.u32()?),
        ASSIGNED_CLIENT_IDENTIFIER => p.assigned_client_identifier = Some(r.string()?),
        SERVER_KEEP_ALIVE => p.server_keep_alive = Some(r.u16()?),
        AUTHENTICATION_METHOD => p.authentication_method = Some(r.string()?),
        AUTHENTICATION_DATA => p.authentication_data = Some(r.binary()?),
        REQUEST_PROBLEM_INFORMATION => p.request_problem_information = flag(r, id)?,
        WILL_DELAY_INTERVAL => p.will_delay_interval = Some(r.u32()?),
        REQUEST_RESPONSE_INFORMATION => p.request_response_information = flag(r, id)?,
        RESPONSE_INFORMATION => p.response_information = Some(r.string()?),
        SERVER_REFERENCE => p.server_reference = Some(r.string()?),
        REASON_STRING => p.reason_string = Some(r.string()?),
        RECEIVE_MAXIMUM => p.receive_maximum = nonzero_u16(r, id)?,
        TOPIC_ALIAS_MAXIMUM => p.topic_alias_maximum = Some(r.u16()?),
        TOPIC_ALIAS => p.topic_alias = nonzero_u16(r, id)?,
        MAXIMUM_QOS => p.maximum_qos = flag(r, id)?,
        RETAIN_AVAILABLE => p.retain_available = flag(r, id)?,
        USER_PROPERTY => {
            let name = r.string()?;
            p.user_properties.push((name, r.string()?));
        }
        MAXIMUM_PACKET_SIZE => p.maximum_packet_size = nonzero_u32(r, id)?,
        WILDCARD_SUBSCRIPTION_AVAILABLE => p.wildcard_subscription_available = flag(r, id)?,
        SUBSCRIPTION_IDENTIFIER_AVAILABLE => p.subscription_identifier_available = flag(r, id)?,
        SHARED_SUBSCRIPTION_AVAILABLE => p.shared_subscription_available = flag(r, id)?,
        other => return Err(DecodeError::InvalidPropertyId(other)),
    }
    Ok(())
}

/// Rules across properties: Authentication Data needs Authentication
/// Method (§3.1.2.11.10), and a client sends no Subscription Identifier
/// in PUBLISH ([MQTT-3.3.4-6]).
fn check_consistent(p: &Properties, packet_type: u8, side: Side) -> Result<(), DecodeError> {
    if p.authentication_data.is_some() && p.authentication_method.is_none() {
        return Err(DecodeError::AuthDataWithoutMethod);
    }
    if packet_type == PUBLISH && side == Side::Server && !p.subscription_identifiers.is_empty() {
        return Err(DecodeError::SubscriptionIdFromClient);
    }
    Ok(())
}

/// The PUBLISH properties that change with each delivery of a message:
/// they are written from here, not from the [`Properties`] they go with.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Delivery<'a> {
    pub topic_alias: Option<u16>,
    pub subscription_identifiers: &'a [u32],
    pub message_expiry_interval: Option<u32>,
}

impl<'a> Delivery<'a> {
    /// The per-delivery fields `p` holds itself.
    pub fn of(p: Option<&'a Properties>) -> Delivery<'a> {
        p.map_or_else(Delivery::default, |p| Delivery {
            topic_alias: p.topic_alias,
            subscription_identifiers: &p.subscription_identifiers,
            message_expiry_interval: p.message_expiry_interval,
        })
    }
}

/// Where properties are written: an output buffer, or a byte counter
/// (so that sizing and encoding are the same code).
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

struct Count(usize);

impl Sink for Count {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

fn put_varint(s: &mut impl Sink, v: u32) {
    let (bytes, n) = header::varint_bytes((v as usize).min(MAX_REMAINING_LENGTH));
    s.put(bytes.get(..n).unwrap_or(&bytes));
}

/// A length-prefixed field, cut at 65,535 bytes as `header::write_binary`.
fn put_binary(s: &mut impl Sink, data: &[u8]) {
    let data = data.get(..usize::from(u16::MAX)).unwrap_or(data);
    s.put(&(data.len() as u16).to_be_bytes());
    s.put(data);
}

fn put_u8(s: &mut impl Sink, id: u8, v: Option<u8>) {
    if let Some(v) = v {
        s.put(&[id, v]);
    }
}

fn put_u16(s: &mut impl Sink, id: u8, v: Option<u16>) {
    if let Some(v) = v {
        s.put(&[id]);
        s.put(&v.to_be_bytes());
    }
}

fn put_u32(s: &mut impl Sink, id: u8, v: Option<u32>) {
    if let Some(v) = v {
        s.put(&[id]);
        s.put(&v.to_be_bytes());
    }
}

fn put_str(s: &mut impl Sink, id: u8, v: Option<&[u8]>) {
    if let Some(v) = v {
        s.put(&[id]);
        put_binary(s, v);
    }
}

/// A string property's bytes, if it is set.
fn text(v: &Option<String>) -> Option<&[u8]> {
    v.as_deref().map(str::as_bytes)
}

/// Every property of `p` but the per-delivery ones, then those of `d`, then
/// the user properties.
/// Subscription identifiers, one property each, in order.
fn put_ids(s: &mut impl Sink, ids: &[u32]) {
    for &id in ids {
        s.put(&[SUBSCRIPTION_IDENTIFIER]);
        put_varint(s, id);
    }
}

fn put_all(s: &mut impl Sink, p: Option<&Properties>, d: Delivery<'_>) {
    let Some(p) = p else {
        // The common delivery (a message without properties): no empty
        // `Properties` built and dropped per packet, the same bytes.
        put_u32(s, MESSAGE_EXPIRY_INTERVAL, d.message_expiry_interval);
        put_ids(s, d.subscription_identifiers);
        put_u16(s, TOPIC_ALIAS, d.topic_alias);
        return;
    };
    put_u8(s, PAYLOAD_FORMAT_INDICATOR, p.payload_format_indicator);
    put_u32(s, MESSAGE_EXPIRY_INTERVAL, d.message_expiry_interval);
    put_str(s, CONTENT_TYPE, text(&p.content_type));
    put_str(s, RESPONSE_TOPIC, text(&p.response_topic));
    put_str(s, CORRELATION_DATA, p.correlation_data.as_deref());
    put_ids(s, d.subscription_identifiers);
    put_u32(s, SESSION_EXPIRY_INTERVAL, p.session_expiry_interval);
    put_str(
        s,
        ASSIGNED_CLIENT_IDENTIFIER,
        text(&p.assigned_client_identifier),
    );
    put_u16(s, SERVER_KEEP_ALIVE, p.server_keep_alive);
    put_str(s, AUTHENTICATION_METHOD, text(&p.authentication_method));
    put_str(s, AUTHENTICATION_DATA, p.authentication_data.as_deref());
    put_u8(
        s,
        REQUEST_PROBLEM_INFORMATION,
        p.request_problem_information,
    );
    put_u32(s, WILL_DELAY_INTERVAL, p.will_delay_interval);
    put_u8(
        s,
        REQUEST_RESPONSE_INFORMATION,
        p.request_response_information,
    );
    put_str(s, RESPONSE_INFORMATION, text(&p.response_information));
    put_str(s, SERVER_REFERENCE, text(&p.server_reference));
    put_str(s, REASON_STRING, text(&p.reason_string));
    put_u16(s, RECEIVE_MAXIMUM, p.receive_maximum);
    put_u16(s, TOPIC_ALIAS_MAXIMUM, p.topic_alias_maximum);
    put_u16(s, TOPIC_ALIAS, d.topic_alias);
    put_u8(s, MAXIMUM_QOS, p.maximum_qos);
    put_u8(s, RETAIN_AVAILABLE, p.retain_available);
    put_u32(s, MAXIMUM_PACKET_SIZE, p.maximum_packet_size);
    put_u8(
        s,
        WILDCARD_SUBSCRIPTION_AVAILABLE,
        p.wildcard_subscription_available,
    );
    put_u8(
        s,
        SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        p.subscription_identifier_available,
    );
    put_u8(
        s,
        SHARED_SUBSCRIPTION_AVAILABLE,
        p.shared_subscription_available,
    );
    for (name, value) in &p.user_properties {
        s.put(&[USER_PROPERTY]);
        put_binary(s, name.as_bytes());
        put_binary(s, value.as_bytes());
    }
}

/// Bytes of the properties themselves, without the property length.
fn content_len(p: Option<&Properties>, d: Delivery<'_>) -> usize {
    let mut count = Count(0);
    put_all(&mut count, p, d);
    count.0
}

/// Bytes of the property length and the properties of `p`, with the
/// per-delivery fields of `d`.
pub(crate) fn properties_len_with(p: Option<&Properties>, d: Delivery<'_>) -> usize {
    let len = content_len(p, d);
    remaining_length_len(len) + len
}

/// Appends the property length and the properties, as sized by
/// [`properties_len_with`].
pub(crate) fn write_properties_with(out: &mut Vec<u8>, p: Option<&Properties>, d: Delivery<'_>) {
    let len = content_len(p, d);
    put_varint(out, len as u32);
    put_all(out, p, d);
}

/// Bytes of the property length and the properties of `p`.
pub(crate) fn properties_len(p: Option<&Properties>) -> usize {
    properties_len_with(p, Delivery::of(p))
}

/// Appends the property length and the properties of `p`.
pub(crate) fn write_properties(out: &mut Vec<u8>, p: Option<&Properties>) {
    write_properties_with(out, p, Delivery::of(p));
}

/// [`read_properties`] on an MQTT 5 connection; `None` before MQTT 5,
/// whose packets have no properties.
pub(crate) fn read_if_v5(
    r: &mut Reader<'_>,
    version: ProtocolVersion,
    packet_type: u8,
    side: Side,
) -> Result<Option<Box<Properties>>, DecodeError> {
    if version.is_v5() {
        read_properties(r, packet_type, side)
    } else {
        Ok(None)
    }
}

/// [`properties_len`] on an MQTT 5 connection; 0 before.
pub(crate) fn len_if_v5(version: ProtocolVersion, p: Option<&Properties>) -> usize {
    if version.is_v5() {
        properties_len(p)
    } else {
        0
    }
}

/// [`write_properties`] on an MQTT 5 connection; nothing before.
pub(crate) fn write_if_v5(out: &mut Vec<u8>, version: ProtocolVersion, p: Option<&Properties>) {
    if version.is_v5() {
        write_properties(out, p);
    }
}

/// A message's forwarded properties as the storage log keeps them: the
/// property length and the properties, as in a PUBLISH.
pub fn write_message_properties(out: &mut Vec<u8>, p: Option<&Properties>) {
    write_properties(out, p);
}

/// Read back what [`write_message_properties`] wrote (`None`: none).
pub fn read_message_properties(buf: &Bytes) -> Result<Option<Box<Properties>>, DecodeError> {
    let mut r = Reader::new(buf, 0, buf.len());
    let props = read_properties(&mut r, super::header::PUBLISH, Side::Any)?;
    if !r.is_empty() {
        return Err(DecodeError::MalformedProperty);
    }
    Ok(props)
}

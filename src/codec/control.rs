//! DISCONNECT (§3.14) and AUTH (§3.15): body decoding, encoding and sizing,
//! and the "reason code, then properties" tail they share with the MQTT 5
//! acknowledgements of `publish.rs`.
//!
//! Called by `packet.rs`. Before MQTT 5 DISCONNECT has an empty body and
//! AUTH does not exist (its type is rejected by `header.rs`). In MQTT 5 both
//! have short forms (§3.14.2.1, §3.15.2.1): remaining length 0 is reason
//! 0x00 without properties, and the property length may be left out.

use super::properties::{properties_len, read_properties, write_properties};
use super::reason::check_reason;
use super::{header, Auth, DecodeError, Disconnect, Properties, ProtocolVersion, Reason, Side};
use header::Reader;

/// A reason code and properties as MQTT 5 writes them at the end of a
/// packet of `packet_type`: nothing left means 0x00 without properties, a
/// lone reason code means no properties.
pub(crate) fn read_reason_tail(
    packet_type: u8,
    r: &mut Reader<'_>,
) -> Result<(Reason, Option<Box<Properties>>), DecodeError> {
    if r.is_empty() {
        return Ok((Reason::SUCCESS, None));
    }
    let reason = check_reason(packet_type, r.u8()?)?;
    let props = match r.is_empty() {
        true => None,
        false => read_properties(r, packet_type, Side::Any)?,
    };
    r.finish()?;
    Ok((reason, props))
}

/// Bytes of the shortest tail that says `reason` and `props`.
pub(crate) fn reason_tail_len(reason: Reason, props: Option<&Properties>) -> usize {
    match (reason, props) {
        (Reason::SUCCESS, None) => 0,
        (_, None) => 1,
        (_, Some(props)) => 1 + properties_len(Some(props)),
    }
}

/// Appends the tail sized by [`reason_tail_len`].
pub(crate) fn write_reason_tail(out: &mut Vec<u8>, reason: Reason, props: Option<&Properties>) {
    let len = reason_tail_len(reason, props);
    if len > 0 {
        out.push(reason.0);
    }
    if len > 1 {
        write_properties(out, props);
    }
}

/// Decodes the body of a DISCONNECT: empty before MQTT 5.
pub(crate) fn decode_disconnect(
    r: &mut Reader<'_>,
    version: ProtocolVersion,
) -> Result<Disconnect, DecodeError> {
    if !version.is_v5() {
        r.finish()?;
        return Ok(Disconnect::normal());
    }
    let (reason, props) = read_reason_tail(header::DISCONNECT, r)?;
    Ok(Disconnect { reason, props })
}

/// Remaining length of a DISCONNECT.
pub(crate) fn disconnect_body_len(d: &Disconnect, version: ProtocolVersion) -> usize {
    match version.is_v5() {
        true => reason_tail_len(d.reason, d.props.as_deref()),
        false => 0,
    }
}

/// Appends the body of a DISCONNECT (no fixed header).
pub(crate) fn encode_disconnect_body(d: &Disconnect, version: ProtocolVersion, out: &mut Vec<u8>) {
    if version.is_v5() {
        write_reason_tail(out, d.reason, d.props.as_deref());
    }
}

/// Decodes the body of an AUTH (MQTT 5 only; `header.rs` has rejected the
/// type on other connections).
pub(crate) fn decode_auth(r: &mut Reader<'_>) -> Result<Auth, DecodeError> {
    let (reason, props) = read_reason_tail(header::AUTH, r)?;
    Ok(Auth { reason, props })
}

/// Remaining length of an AUTH.
pub(crate) fn auth_body_len(a: &Auth) -> usize {
    reason_tail_len(a.reason, a.props.as_deref())
}

/// Appends the body of an AUTH (no fixed header).
pub(crate) fn encode_auth_body(a: &Auth, out: &mut Vec<u8>) {
    write_reason_tail(out, a.reason, a.props.as_deref());
}

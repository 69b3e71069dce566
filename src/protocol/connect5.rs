//! What MQTT 5 adds to connecting and disconnecting: the session expiry a
//! client asks for (and may change on DISCONNECT), the CONNACK properties
//! that tell it the broker's limits, the will's availability checks, and a
//! client's DISCONNECT with its reason code.
//!
//! Called by the CONNECT handler (`connect.rs`) and by the packet dispatch
//! (`mod.rs`, DISCONNECT). Owns no state: what the client asked is kept on
//! its connection ([`ConnV5`]), the expiry in its session.

use crate::codec::{Connect, Disconnect, LastWill, Properties, Reason};
use crate::session::Expiry;
use crate::shard::conns::ConnV5;
use crate::shard::{CloseReason, ConnKey, SessionKey, Shard};

/// An expiry in seconds as MQTT 5 states it (0: ends with the connection).
pub(super) fn expiry_secs(e: Expiry) -> u32 {
    match e {
        Expiry::OnDisconnect => 0,
        Expiry::AfterSecs(s) => s,
    }
}

impl Shard {
    /// The session expiry a CONNECT sets. MQTT 3.1.1: clean session 1 ends
    /// with the connection, 0 keeps it `session.expiry_s`. MQTT 5: what the
    /// client asks (0 when absent) [MQTT-3.1.2-23], at most `session.expiry_s`
    /// (the connection keeps what was asked: [MQTT-3.14.2-2] is about it).
    pub(super) fn expiry_for(&self, clean_session: bool, peer: Option<&ConnV5>) -> Expiry {
        let cap = u32::try_from(self.cfg.session.expiry_s).unwrap_or(u32::MAX);
        let Some(peer) = peer else {
            return match clean_session {
                true => Expiry::OnDisconnect,
                false => Expiry::AfterSecs(cap),
            };
        };
        self.expiry_of(peer.session_expiry_s)
    }

    /// An MQTT 5 session expiry interval as granted (capped by `session.expiry_s`).
    fn expiry_of(&self, secs: u32) -> Expiry {
        let cap = u32::try_from(self.cfg.session.expiry_s).unwrap_or(u32::MAX);
        match secs.min(cap) {
            0 => Expiry::OnDisconnect,
            s => Expiry::AfterSecs(s),
        }
    }

    /// The CONNACK properties for an MQTT 5 client: the broker's limits
    /// (§3.2.2.3), and what the broker decided for it — an assigned client
    /// id [MQTT-3.2.2-16], a lower session expiry, a server keep alive
    /// [MQTT-3.2.2-21], response information when asked and configured.
    pub(super) fn connack_props(
        &self,
        connect: &Connect,
        client_id: &str,
        assigned: bool,
        lowered_expiry: Option<u32>,
        server_keep_alive: Option<u16>,
    ) -> Box<Properties> {
        let m = &self.cfg.mqtt;
        let receive_maximum = u16::try_from(self.cfg.session.max_awaiting_rel).unwrap_or(u16::MAX);
        let asks_response = connect
            .props
            .as_ref()
            .is_some_and(|p| p.request_response_information == Some(1));
        let response_information = (asks_response && !m.response_information.is_empty())
            .then(|| format!("{}{client_id}", m.response_information));
        Box::new(Properties {
            session_expiry_interval: lowered_expiry,
            assigned_client_identifier: assigned.then(|| client_id.to_owned()),
            server_keep_alive,
            receive_maximum: (receive_maximum < u16::MAX).then_some(receive_maximum),
            maximum_packet_size: u32::try_from(m.max_packet_size).ok(),
            topic_alias_maximum: (m.topic_alias_maximum > 0).then_some(m.topic_alias_maximum),
            maximum_qos: (m.maximum_qos < 2).then_some(m.maximum_qos),
            retain_available: (!m.retain_available).then_some(0),
            wildcard_subscription_available: (!m.wildcard_subscriptions).then_some(0),
            subscription_identifier_available: (!m.subscription_identifiers).then_some(0),
            shared_subscription_available: (!m.shared_subscriptions).then_some(0),
            response_information,
            ..Properties::default()
        })
    }

    /// A will the broker cannot publish: above `maximum_qos` [MQTT-3.2.2-12]
    /// or retained while `retain_available` is off [MQTT-3.2.2-13].
    pub(super) fn will_unavailable(&self, w: &LastWill) -> Option<(Reason, &'static str)> {
        let m = &self.cfg.mqtt;
        if w.qos as u8 > m.maximum_qos {
            return Some((Reason::QOS_NOT_SUPPORTED, "will QoS above maximum_qos"));
        }
        if w.retain && !m.retain_available {
            return Some((
                Reason::RETAIN_NOT_SUPPORTED,
                "retained will, retain not available",
            ));
        }
        None
    }

    /// DISCONNECT from a client. Reason 0x00 discards the will [MQTT-3.14.4-3];
    /// any other (0x04 Disconnect with Will Message, or an error) keeps it,
    /// so it is published. An MQTT 5 DISCONNECT may set a new session expiry,
    /// but not raise one that was 0 [MQTT-3.14.2-2] (a protocol error).
    pub(super) fn on_disconnect(
        &mut self,
        conn: ConnKey,
        sk: SessionKey,
        d: Disconnect,
    ) -> Result<(), CloseReason> {
        let set = d.props.as_ref().and_then(|p| p.session_expiry_interval);
        let current = self
            .conns
            .get(conn)
            .and_then(|c| c.v5())
            .map(|v| v.session_expiry_s);
        if let (Some(secs), Some(current)) = (set, current) {
            if current == 0 && secs != 0 {
                log::info!(
                    "{}: DISCONNECT raises a session expiry of 0, closing [MQTT-3.14.2-2]",
                    self.who(conn)
                );
                self.metrics.protocol_errors += 1;
                return Err(CloseReason::ProtocolError);
            }
            let expiry = self.expiry_of(secs);
            self.sessions.set_expiry(&mut self.journal, sk, expiry);
        }
        if d.reason != Reason::NORMAL_DISCONNECTION {
            log::debug!("{}: DISCONNECT {:?}", self.who(conn), d.reason);
            return Err(CloseReason::ClientError);
        }
        if let Some(s) = self.sessions.get_mut(sk) {
            s.set_will(None);
        }
        Err(CloseReason::Normal)
    }
}

//! The checks an inbound PUBLISH passes before it is routed, where MQTT 5
//! gives the broker a say: what the broker offers (Retain Available, Maximum
//! QoS), the client's topic aliases, the broker's Receive Maximum and the
//! Payload Format Indicator. Called by `publish.rs` ([`Shard::on_publish`]);
//! each refusal is counted and logged on the shard's rate-limited lines.

use crate::codec::Publish;
use crate::config::Strictness;
use crate::shard::{AliasError, CloseReason, ConnKey, SessionKey, Shard};

impl Shard {
    /// A retained PUBLISH while `mqtt.retain_available` is off (0x9A)
    /// [MQTT-3.3.1-?], or one above `mqtt.maximum_qos` (0x9B) [MQTT-3.2.2-11]:
    /// the connection is closed (an MQTT 5 client is told why first).
    pub(super) fn refuse_unavailable(
        &mut self,
        conn: ConnKey,
        p: &Publish,
    ) -> Result<(), CloseReason> {
        let mqtt = &self.cfg.mqtt;
        let reason = if p.retain && !mqtt.retain_available {
            CloseReason::RetainNotSupported
        } else if p.qos as u8 > mqtt.maximum_qos {
            CloseReason::QosNotSupported
        } else {
            return Ok(());
        };
        self.metrics.publishes_refused += 1;
        if let Some(held) = self.lines.strict.allow() {
            log::info!(
                "{}: PUBLISH {} (retain {}, QoS {}) not supported, closing{held}",
                self.who(conn),
                p.topic,
                p.retain,
                p.qos as u8
            );
        }
        Err(reason)
    }

    /// Resolve an MQTT 5 PUBLISH's topic through the connection's topic
    /// aliases: alias 0 or above `mqtt.topic_alias_maximum` closes with 0x94
    /// [MQTT-3.3.2-8/9], an empty topic with an alias never set with 0x82.
    pub(super) fn resolve_topic_alias(
        &mut self,
        conn: ConnKey,
        p: &mut Publish,
    ) -> Result<(), CloseReason> {
        let alias = p.props.as_deref().and_then(|props| props.topic_alias);
        let max = self.cfg.mqtt.topic_alias_maximum;
        // 3.1.1: nothing to resolve, the topic is not touched.
        let Some(v5) = self.conns.get_mut(conn).and_then(|c| c.v5_mut()) else {
            return Ok(());
        };
        let err = match v5.aliases_in.resolve(p.topic.clone(), alias, max) {
            Ok(topic) => {
                p.topic = topic;
                return Ok(());
            }
            Err(e) => e,
        };
        self.metrics.protocol_errors += 1;
        if let Some(held) = self.lines.strict.allow() {
            log::info!(
                "{}: PUBLISH with topic alias {alias:?} ({err:?}, maximum {max}), closing{held}",
                self.who(conn)
            );
        }
        Err(match err {
            AliasError::OutOfRange => CloseReason::TopicAliasInvalid,
            AliasError::Unknown => CloseReason::ProtocolError,
        })
    }

    /// An MQTT 5 client sending a QoS 1 PUBLISH while as many as the
    /// broker's Receive Maximum (`session.max_awaiting_rel`, at most 65535)
    /// are unanswered: its QoS 2 ones awaiting PUBREL and its PUBACKs held
    /// behind a barrier. Closes with 0x93 [MQTT-3.3.4-8]. (QoS 2 ones are
    /// held to the same bound by the awaiting-PUBREL set.)
    pub(super) fn refuse_over_receive_maximum(
        &mut self,
        conn: ConnKey,
        sk: SessionKey,
    ) -> Result<(), CloseReason> {
        let Some(c) = self.conns.get(conn).filter(|c| c.v5().is_some()) else {
            return Ok(());
        };
        let held = c.held_pubacks();
        let awaiting = self.sessions.get(sk).map_or(0, |s| s.awaiting_rel_len());
        let max = self.cfg.session.max_awaiting_rel.min(65535);
        if held + awaiting < max {
            return Ok(());
        }
        self.metrics.protocol_errors += 1;
        if let Some(held) = self.lines.awaiting_rel_full.allow() {
            log::warn!(
                "{}: more than {max} QoS 1/2 PUBLISHes unanswered (Receive Maximum), closing{held}",
                self.who(conn)
            );
        }
        Err(CloseReason::ReceiveMaximumExceeded)
    }

    /// False for a PUBLISH whose Payload Format Indicator is 1 (UTF-8) but
    /// whose payload is not UTF-8, under `strict.payload_format = "reject"`.
    pub(super) fn payload_format_ok(&self, p: &Publish) -> bool {
        let utf8 = p
            .props
            .as_deref()
            .is_some_and(|props| props.payload_format_indicator == Some(1));
        !utf8
            || self.cfg.strict.payload_format == Strictness::Allow
            || std::str::from_utf8(&p.payload).is_ok()
    }
}

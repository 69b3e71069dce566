//! Inbound PUBLISH (QoS 0/1/2, exactly-once via the awaiting-PUBREL set) and
//! the acknowledgements of outbound deliveries (PUBACK, PUBREC, PUBCOMP).
//! The MQTT 5 checks made before a PUBLISH is routed (availability, topic
//! aliases, Receive Maximum, payload format) are in `publish5.rs`.

use crate::codec::{Ack, Packet, Publish, QoS, Reason};
use crate::hooks::ClientInfo;
use crate::message::{compact, forwarded, Message};
use crate::router::retained::Applied;
use crate::session::event::SessionEvent;
use crate::session::inflight::Phase;
use crate::session::store::Awaiting;
use crate::shard::mesh::MeshMsg;
use crate::shard::{CloseReason, ConnKey, SessionKey, Shard};
use bytes::Bytes;
use std::sync::Arc;

/// What became of a message handed to [`Shard::publish_message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Routed {
    /// The barrier its acknowledgement waits for (0: none).
    pub barrier: u64,
    /// The MQTT 5 reason of its PUBACK/PUBREC: success, 0x10 when no shard
    /// has a subscriber for it, 0x87 when a `message.publish` hook dropped it.
    pub reason: Reason,
    /// The message's id; None when it was not routed (a duplicate, or a
    /// hook dropped it).
    pub id: Option<crate::message::MsgId>,
}

impl Shard {
    /// PUBLISH from a client: check it, route it, then acknowledge per its QoS.
    pub(super) fn on_publish(
        &mut self,
        conn: ConnKey,
        sk: SessionKey,
        mut p: Publish,
    ) -> Result<(), CloseReason> {
        self.metrics.publish_received += 1;
        self.refuse_unavailable(conn, &p)?;
        self.resolve_topic_alias(conn, &mut p)?;
        self.refuse_control_chars(conn, [("PUBLISH topic", &*p.topic)])?;
        let Some(info) = self.conns.get(conn).and_then(|c| c.info().cloned()) else {
            return Err(CloseReason::ProtocolError);
        };
        let v5 = info.version.is_v5();
        if !self.payload_format_ok(&p) {
            self.metrics.dropped_payload_format += 1;
            self.ack_unrouted(conn, &p, Reason::PAYLOAD_FORMAT_INVALID);
            return Ok(());
        }
        if !self.acl_allows_publish(conn, &info, &p.topic) {
            // Acknowledged as usual and dropped (3.1.1); 0x87 for MQTT 5.
            let reason = match v5 {
                true => Reason::NOT_AUTHORIZED,
                false => Reason::SUCCESS,
            };
            self.ack_unrouted(conn, &p, reason);
            return Ok(());
        }
        let pkid = p.pkid;
        match p.qos {
            QoS::AtMostOnce => {
                self.publish_message(&info, p, None);
            }
            QoS::AtLeastOnce => {
                self.refuse_over_receive_maximum(conn, sk)?;
                let r = self.publish_message(&info, p, Some(conn));
                let ack = Ack::with(pkid, if v5 { r.reason } else { Reason::SUCCESS });
                self.send_ack(conn, Packet::PubAck(ack), r.barrier);
            }
            QoS::ExactlyOnce => {
                let r = match self.sessions.await_rel(&mut self.journal, sk, pkid) {
                    // A re-sent PUBLISH (DUP) of a message already routed: not again [MQTT-4.3.3-2].
                    Awaiting::Duplicate => {
                        self.metrics.qos2_duplicates += 1;
                        Routed {
                            barrier: 0,
                            reason: Reason::SUCCESS,
                            id: None,
                        }
                    }
                    Awaiting::Full => return Err(self.awaiting_rel_full(conn, v5)),
                    Awaiting::New => self.publish_message(&info, p, Some(conn)),
                };
                let mut reason = Reason::SUCCESS;
                if v5 {
                    reason = r.reason;
                    if reason.is_error() {
                        // A refused QoS 2 PUBLISH gets no PUBREL [MQTT-4.3.3-?].
                        self.sessions.release_rel(&mut self.journal, sk, pkid);
                    }
                }
                self.send_ack(conn, Packet::PubRec(Ack::with(pkid, reason)), r.barrier);
            }
        }
        Ok(())
    }

    /// Acknowledge a PUBLISH that is not routed with `reason` (QoS 0: nothing).
    /// A QoS 2 one is not awaiting PUBREL: a PUBREL for it still gets PUBCOMP.
    fn ack_unrouted(&mut self, conn: ConnKey, p: &Publish, reason: Reason) {
        let ack = Ack::with(p.pkid, reason);
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.send_ack(conn, Packet::PubAck(ack), 0),
            QoS::ExactlyOnce => self.send_ack(conn, Packet::PubRec(ack), 0),
        }
    }

    /// More inbound QoS 2 messages await PUBREL than `max_awaiting_rel`:
    /// an MQTT 5 client went over the broker's Receive Maximum (0x93)
    /// [MQTT-3.3.4-8]; a 3.1.1 one is closed as a protocol error.
    fn awaiting_rel_full(&mut self, conn: ConnKey, v5: bool) -> CloseReason {
        if let Some(held) = self.lines.awaiting_rel_full.allow() {
            log::warn!(
                "{}: more than {} QoS 2 messages awaiting PUBREL, closing{held}",
                self.who(conn),
                self.cfg.session.max_awaiting_rel
            );
        }
        self.metrics.protocol_errors += 1;
        match v5 {
            true => CloseReason::ReceiveMaximumExceeded,
            false => CloseReason::ProtocolError,
        }
    }

    /// Build a message, run the `message.publish` hooks, update the retained
    /// store and route it. Used for client publishes and wills (whose
    /// properties travel with it, see [`forwarded`]). A retained message
    /// published by `ack_to` on a multi-shard broker gets a barrier its
    /// acknowledgement must wait for.
    pub(crate) fn publish_message(
        &mut self,
        info: &ClientInfo,
        p: Publish,
        ack_to: Option<ConnKey>,
    ) -> Routed {
        // A message that may be kept (in a window, a queue, the retained
        // store) must not pin the read buffer its payload came in: small
        // payloads are copied once here, before any shard keeps them.
        let kept = p.qos != QoS::AtMostOnce || p.retain || self.cfg.session.store_qos0;
        let msg = Message {
            id: self.ids.next_id(),
            topic: p.topic,
            payload: if kept { compact(p.payload) } else { p.payload },
            qos: p.qos,
            retain: p.retain,
            from: info.client_id.clone(),
            props: forwarded(p.props),
        };
        // The broker's own `$SYS` state and alarms are not shown to the
        // message.publish hooks (they see clients', wills and the API's).
        let own = info.client_id.is_empty() && msg.topic.starts_with("$SYS/");
        let msg = if own {
            Some(msg)
        } else {
            self.hooks.message_publish(info, msg)
        };
        let Some(msg) = msg else {
            self.metrics.dropped_by_hook += 1;
            return Routed {
                barrier: 0,
                reason: Reason::NOT_AUTHORIZED,
                id: None,
            };
        };
        let msg = Arc::new(msg);
        let id = Some(msg.id);
        let barrier = if msg.retain {
            self.retain_everywhere(&msg, ack_to)
        } else {
            0
        };
        let matched = self.route(msg);
        // The broker's own messages ($SYS, alarms) are not counted.
        if !matched && !info.client_id.is_empty() {
            self.metrics.dropped_no_subscribers += 1;
        }
        Routed {
            barrier,
            reason: match matched {
                true => Reason::SUCCESS,
                false => Reason::NO_MATCHING_SUBSCRIBERS,
            },
            id,
        }
    }

    /// Set (or delete) a retained message in this shard's replica and every
    /// peer's; the barrier `ack_to`'s acknowledgement waits for (0: none).
    fn retain_everywhere(&mut self, msg: &Arc<Message>, ack_to: Option<ConnKey>) -> u64 {
        self.apply_retained(msg, true);
        if self.shards < 2 {
            return 0;
        }
        let barrier = ack_to.map_or(0, |conn| self.new_barrier(conn));
        self.broadcast(|| MeshMsg::Retain {
            msg: msg.clone(),
            barrier,
        });
        barrier
    }

    /// Delete the retained message of `topic` on every shard without
    /// routing anything (the HTTP API's delete: subscribers get nothing).
    pub(crate) fn clear_retained(&mut self, topic: Arc<str>) {
        let msg = Arc::new(Message {
            id: self.ids.next_id(),
            topic,
            payload: Bytes::new(),
            qos: QoS::AtMostOnce,
            retain: true,
            from: "".into(),
            props: None,
        });
        self.retain_everywhere(&msg, None);
    }

    /// Apply a retained message (or deletion) to this shard's replica: the
    /// one door for retained state, emitting its session event. A refusal
    /// (max_retained) is counted and logged by the `origin` shard only.
    pub fn apply_retained(&mut self, msg: &Arc<Message>, origin: bool) {
        match self.router.apply_retained(msg) {
            Applied::Stored => self
                .journal
                .emit(|| SessionEvent::RetainedSet { msg: msg.clone() }),
            Applied::Deleted => self
                .journal
                .emit(|| SessionEvent::RetainedCleared { msg: msg.clone() }),
            Applied::Refused if origin => {
                self.metrics.retained_refused += 1;
                if let Some(held) = self.lines.retained_full.allow() {
                    log::warn!(
                        "shard {}: max_retained ({}) or max_retained_bytes ({}) reached, {:?} not retained{held}",
                        self.id,
                        self.cfg.mqtt.max_retained,
                        self.cfg.mqtt.max_retained_bytes,
                        msg.topic
                    );
                }
            }
            Applied::Refused | Applied::Stale => {}
        }
    }

    /// PUBACK: a QoS 1 delivery is complete (one of QoS 2: `strict.wrong_qos_ack`).
    pub(super) fn on_puback(
        &mut self,
        conn: ConnKey,
        sk: SessionKey,
        pkid: u16,
    ) -> Result<(), CloseReason> {
        self.refuse_wrong_qos_ack(conn, sk, "PUBACK", QoS::AtLeastOnce, pkid)?;
        self.complete(sk, pkid, QoS::AtLeastOnce, Phase::Published);
        Ok(())
    }

    /// PUBCOMP: a QoS 2 delivery is complete (one of QoS 1: `strict.wrong_qos_ack`).
    pub(super) fn on_pubcomp(
        &mut self,
        conn: ConnKey,
        sk: SessionKey,
        pkid: u16,
    ) -> Result<(), CloseReason> {
        self.refuse_wrong_qos_ack(conn, sk, "PUBCOMP", QoS::ExactlyOnce, pkid)?;
        self.complete(sk, pkid, QoS::ExactlyOnce, Phase::PubRelSent);
        Ok(())
    }

    fn complete(&mut self, sk: SessionKey, pkid: u16, qos: QoS, phase: Phase) {
        let Some(entry) = self
            .sessions
            .complete(&mut self.journal, sk, pkid, qos, phase)
        else {
            log::debug!(
                "shard {}: {:?} acked unknown packet id {pkid}",
                self.id,
                self.sessions.get(sk).map(|s| s.client_id().clone())
            );
            return;
        };
        let info = self
            .sessions
            .get(sk)
            .and_then(|s| s.conn())
            .and_then(|c| self.conns.get(c))
            .and_then(|c| c.info().cloned());
        if let Some(info) = info {
            self.hooks.message_acked(&info, &entry.delivery.msg);
        }
        self.refill_window(sk);
    }

    /// PUBREC: answer PUBREL (also for an id we no longer know, so the
    /// client can finish; one of a QoS 1 delivery: `strict.wrong_qos_ack`).
    pub(super) fn on_pubrec(
        &mut self,
        conn: ConnKey,
        sk: SessionKey,
        pkid: u16,
    ) -> Result<(), CloseReason> {
        self.refuse_wrong_qos_ack(conn, sk, "PUBREC", QoS::ExactlyOnce, pkid)?;
        let now = self.timers.now_ms();
        if !self.sessions.pubrec(&mut self.journal, sk, pkid, now) {
            log::debug!("{}: PUBREC for unknown packet id {pkid}", self.who(conn));
        }
        self.send_packet(conn, &Packet::PubRel(Ack::new(pkid)));
        Ok(())
    }

    /// PUBREL: the client released an inbound QoS 2 message; answer PUBCOMP.
    pub(super) fn on_pubrel(&mut self, conn: ConnKey, sk: SessionKey, pkid: u16) {
        self.sessions.release_rel(&mut self.journal, sk, pkid);
        self.send_ack(conn, Packet::PubComp(Ack::new(pkid)), 0);
    }
}

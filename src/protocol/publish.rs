//! Inbound PUBLISH (QoS 0/1/2, exactly-once via the awaiting-PUBREL set) and
//! the acknowledgements of outbound deliveries (PUBACK, PUBREC, PUBCOMP).

use crate::codec::{Ack, Packet, Publish, QoS};
use crate::hooks::ClientInfo;
use crate::message::{compact, Message};
use crate::router::retained::Applied;
use crate::session::event::SessionEvent;
use crate::session::inflight::Phase;
use crate::session::store::Awaiting;
use crate::shard::mesh::MeshMsg;
use crate::shard::{CloseReason, ConnKey, SessionKey, Shard};
use bytes::Bytes;
use std::sync::Arc;

impl Shard {
    /// PUBLISH from a client: route it, then acknowledge per its QoS.
    pub(super) fn on_publish(
        &mut self,
        conn: ConnKey,
        sk: SessionKey,
        p: Publish,
    ) -> Result<(), CloseReason> {
        self.metrics.publish_received += 1;
        self.refuse_control_chars(conn, [("PUBLISH topic", &*p.topic)])?;
        let Some(info) = self.conns.get(conn).and_then(|c| c.info().cloned()) else {
            return Err(CloseReason::ProtocolError);
        };
        match p.qos {
            QoS::AtMostOnce => {
                self.publish_message(&info, p.topic, p.payload, p.qos, p.retain, None);
            }
            QoS::AtLeastOnce => {
                let barrier =
                    self.publish_message(&info, p.topic, p.payload, p.qos, p.retain, Some(conn));
                self.send_ack(conn, Packet::PubAck(Ack::new(p.pkid)), barrier);
            }
            QoS::ExactlyOnce => {
                let barrier = match self.sessions.await_rel(&mut self.journal, sk, p.pkid) {
                    // A re-sent PUBLISH (DUP) of a message already routed: not again [MQTT-4.3.3-2].
                    Awaiting::Duplicate => {
                        self.metrics.qos2_duplicates += 1;
                        0
                    }
                    Awaiting::Full => {
                        if let Some(held) = self.lines.awaiting_rel_full.allow() {
                            log::warn!(
                                "{}: more than {} QoS 2 messages awaiting PUBREL, closing{held}",
                                self.who(conn),
                                self.cfg.session.max_awaiting_rel
                            );
                        }
                        self.metrics.protocol_errors += 1;
                        return Err(CloseReason::ProtocolError);
                    }
                    Awaiting::New => {
                        self.publish_message(&info, p.topic, p.payload, p.qos, p.retain, Some(conn))
                    }
                };
                self.send_ack(conn, Packet::PubRec(Ack::new(p.pkid)), barrier);
            }
        }
        Ok(())
    }

    /// Build a message, run the `message.publish` hooks, update the retained
    /// store and route it. Used for client publishes and wills. A retained
    /// message published by `ack_to` on a multi-shard broker returns the
    /// barrier its acknowledgement must wait for (else 0).
    pub(super) fn publish_message(
        &mut self,
        info: &ClientInfo,
        topic: Arc<str>,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        ack_to: Option<ConnKey>,
    ) -> u64 {
        // A message that may be kept (in a window, a queue, the retained
        // store) must not pin the read buffer its payload came in: small
        // payloads are copied once here, before any shard keeps them.
        let kept = qos != QoS::AtMostOnce || retain || self.cfg.session.store_qos0;
        let msg = Message {
            id: self.ids.next_id(),
            topic,
            payload: if kept { compact(payload) } else { payload },
            qos,
            retain,
            from: info.client_id.clone(),
        };
        let Some(msg) = self.hooks.message_publish(info, msg) else {
            self.metrics.dropped_by_hook += 1;
            return 0;
        };
        let msg = Arc::new(msg);
        let mut barrier = 0;
        if msg.retain {
            self.apply_retained(&msg, true);
            if self.shards > 1 {
                barrier = ack_to.map_or(0, |conn| self.new_barrier(conn));
                self.broadcast(|| MeshMsg::Retain {
                    msg: msg.clone(),
                    barrier,
                });
            }
        }
        self.route(msg);
        barrier
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

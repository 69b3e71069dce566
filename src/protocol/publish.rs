//! Inbound PUBLISH (QoS 0/1/2, exactly-once via the awaiting-PUBREL set) and
//! the acknowledgements of outbound deliveries (PUBACK, PUBREC, PUBCOMP).

use crate::codec::{Packet, Publish, QoS};
use crate::hooks::ClientInfo;
use crate::message::Message;
use crate::router::retained::Applied;
use crate::session::inflight::Phase;
use crate::shard::mesh::MeshMsg;
use crate::shard::slab::Key;
use crate::shard::{CloseReason, Shard};
use bytes::Bytes;
use std::sync::Arc;

impl Shard {
    /// PUBLISH from a client: route it, then acknowledge per its QoS.
    pub(super) fn on_publish(&mut self, conn: Key, sk: Key, p: Publish) -> Result<(), CloseReason> {
        self.metrics.publish_received += 1;
        let Some(info) = self.conns.get(conn).and_then(|c| c.info.clone()) else {
            return Err(CloseReason::ProtocolError);
        };
        match p.qos {
            QoS::AtMostOnce => {
                self.publish_message(&info, p.topic, p.payload, p.qos, p.retain, None);
            }
            QoS::AtLeastOnce => {
                let barrier =
                    self.publish_message(&info, p.topic, p.payload, p.qos, p.retain, Some(conn));
                self.send_ack(conn, Packet::PubAck(p.pkid), barrier);
            }
            QoS::ExactlyOnce => {
                let max = self.cfg.session.max_awaiting_rel;
                let Some(s) = self.sessions.get_mut(sk) else {
                    return Err(CloseReason::ProtocolError);
                };
                let mut barrier = 0;
                if s.awaiting_rel.get(&p.pkid).is_some() {
                    // A re-sent PUBLISH (DUP) of a message already routed: not again [MQTT-4.3.3-2].
                    self.metrics.qos2_duplicates += 1;
                } else if s.awaiting_rel.len() >= max {
                    log::warn!(
                        "{}: more than {max} QoS 2 messages awaiting PUBREL, closing",
                        self.who(conn)
                    );
                    self.metrics.protocol_errors += 1;
                    return Err(CloseReason::ProtocolError);
                } else {
                    s.awaiting_rel.insert(p.pkid, ());
                    barrier = self.publish_message(
                        &info,
                        p.topic,
                        p.payload,
                        p.qos,
                        p.retain,
                        Some(conn),
                    );
                }
                self.send_ack(conn, Packet::PubRec(p.pkid), barrier);
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
        ack_to: Option<Key>,
    ) -> u64 {
        let msg = Message {
            id: self.ids.next_id(),
            topic,
            payload,
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

    /// Apply a retained message (or deletion) to this shard's replica. A
    /// refusal (max_retained) is counted and logged by the `origin` shard only.
    pub fn apply_retained(&mut self, msg: &Arc<Message>, origin: bool) {
        if self.retained.apply(msg) == Applied::Refused && origin {
            self.metrics.retained_refused += 1;
            log::warn!(
                "shard {}: max_retained ({}) reached, {:?} not retained",
                self.id,
                self.cfg.mqtt.max_retained,
                msg.topic
            );
        }
    }

    /// PUBACK: a QoS 1 delivery is complete.
    pub(super) fn on_puback(&mut self, sk: Key, pkid: u16) {
        self.complete(sk, pkid, QoS::AtLeastOnce, Phase::Publish);
    }

    /// PUBCOMP: a QoS 2 delivery is complete.
    pub(super) fn on_pubcomp(&mut self, sk: Key, pkid: u16) {
        self.complete(sk, pkid, QoS::ExactlyOnce, Phase::Release);
    }

    fn complete(&mut self, sk: Key, pkid: u16, qos: QoS, phase: Phase) {
        let Some(s) = self.sessions.get_mut(sk) else {
            return;
        };
        let Some(entry) = s.inflight.complete(pkid, qos, phase) else {
            log::debug!(
                "shard {}: {:?} acked unknown packet id {pkid}",
                self.id,
                s.client_id
            );
            return;
        };
        let conn_info = s
            .conn
            .and_then(|c| self.conns.get(c))
            .and_then(|c| c.info.clone());
        if let Some(info) = conn_info {
            self.hooks.message_acked(&info, &entry.delivery.msg);
        }
        self.drain(sk);
    }

    /// PUBREC: answer PUBREL (also for an id we no longer know, so the client can finish).
    pub(super) fn on_pubrec(&mut self, conn: Key, sk: Key, pkid: u16) {
        let now = self.now_ms();
        if let Some(s) = self.sessions.get_mut(sk) {
            if !s.inflight.release(pkid, now) {
                log::debug!(
                    "shard {}: {:?} PUBREC for unknown packet id {pkid}",
                    self.id,
                    s.client_id
                );
            }
        }
        self.send_packet(conn, &Packet::PubRel(pkid));
    }

    /// PUBREL: the client released an inbound QoS 2 message; answer PUBCOMP.
    pub(super) fn on_pubrel(&mut self, conn: Key, sk: Key, pkid: u16) {
        if let Some(s) = self.sessions.get_mut(sk) {
            s.awaiting_rel.remove(&pkid);
        }
        self.send_ack(conn, Packet::PubComp(pkid), 0);
    }
}

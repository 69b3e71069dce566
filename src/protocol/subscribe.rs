//! SUBSCRIBE and UNSUBSCRIBE, the interest table, retained-on-subscribe.
//!
//! A shard's first subscriber of a filter is announced to every other shard
//! (they set this shard's bit for the filter in their interest replica); its
//! last one leaving is announced too. A SUBACK that announced a new filter is
//! held until every peer has applied it (a barrier), so once a client holds
//! its SUBACK, a message published on any shard reaches it.

use crate::codec::{Packet, QoS, SubAck, SubAckCode, Subscribe, UnsubAck, Unsubscribe};
use crate::hooks::SubscribeRequest;
use crate::message::{Message, MsgId};
use crate::shard::mesh::MeshMsg;
use crate::shard::{ConnKey, SessionKey, Shard};
use crate::topic;
use ahash::AHashMap;
use std::sync::Arc;

impl Shard {
    pub(super) fn on_subscribe(&mut self, conn: ConnKey, sk: SessionKey, sub: Subscribe) {
        let mut reqs: Vec<SubscribeRequest> = sub
            .filters
            .into_iter()
            .map(|f| SubscribeRequest {
                filter: f.filter,
                qos: f.qos,
                rejected: false,
            })
            .collect();
        if let Some(info) = self.conns.get(conn).and_then(|c| c.info().cloned()) {
            self.hooks.client_subscribe(&info, &mut reqs);
        }
        let mut codes = Vec::with_capacity(reqs.len());
        let mut changes = Vec::new();
        // A filter repeated in one SUBSCRIBE is subscribed once, at its last
        // QoS [MQTT-3.8.4-3]; its retained messages are looked up once.
        let mut granted: AHashMap<Arc<str>, QoS> = AHashMap::new();
        for req in reqs {
            if req.rejected || !topic::valid_filter(&req.filter) {
                log::debug!("{}: filter {:?} refused", self.who(conn), req.filter);
                codes.push(SubAckCode::Failure);
                continue;
            }
            if let Some(why) = self.over_subscription_limits(sk, &req.filter) {
                log::debug!("{}: filter refused: {why}", self.who(conn));
                self.metrics.subscriptions_refused_limit += 1;
                codes.push(SubAckCode::Failure);
                continue;
            }
            let filter: Arc<str> = req.filter.into();
            if self.subscribe_session(sk, filter.clone(), req.qos) {
                changes.push((filter.clone(), true));
            }
            granted.insert(filter, req.qos);
            codes.push(SubAckCode::Granted(req.qos));
        }
        let retained = self.retained_for(&granted);
        let suback = Packet::SubAck(SubAck {
            pkid: sub.pkid,
            codes,
            props: None,
        });
        let barrier = if changes.is_empty() {
            0
        } else {
            self.new_barrier(conn)
        };
        self.announce_interest(changes, barrier);
        // Retained messages follow the SUBACK they belong to.
        self.send_ack_then(conn, suback, barrier, retained);
    }

    pub(super) fn on_unsubscribe(&mut self, conn: ConnKey, sk: SessionKey, unsub: Unsubscribe) {
        let mut filters = unsub.filters;
        if let Some(info) = self.conns.get(conn).and_then(|c| c.info().cloned()) {
            self.hooks.client_unsubscribe(&info, &mut filters);
        }
        let mut changes = Vec::new();
        for f in filters {
            if let Some(gone) = self.unsubscribe_session(sk, &f) {
                changes.push((gone, false));
            }
        }
        self.announce_interest(changes, 0);
        self.send_ack(conn, Packet::UnsubAck(UnsubAck::new(unsub.pkid)), 0);
    }

    /// Which limit a new subscription to `filter` would break, if any.
    fn over_subscription_limits(&self, sk: SessionKey, filter: &str) -> Option<&'static str> {
        let limits = &self.cfg.limits;
        if filter.len() > limits.max_filter_len {
            return Some("longer than max_filter_len");
        }
        if filter.split('/').count() > limits.max_topic_levels {
            return Some("more levels than max_topic_levels");
        }
        let s = self.sessions.get(sk)?;
        if !s.has_filter(filter) && s.filter_count() >= limits.max_subscriptions_per_client {
            return Some("max_subscriptions_per_client reached");
        }
        None
    }

    /// The retained messages for new subscriptions, each once (at the
    /// highest QoS among the filters it matches), oldest first: every
    /// subscribe (re)sends them [MQTT-3.3.1-6].
    fn retained_for(&self, granted: &AHashMap<Arc<str>, QoS>) -> Vec<(Arc<Message>, QoS)> {
        let mut found: AHashMap<MsgId, (Arc<Message>, QoS)> = AHashMap::new();
        for (filter, sub_qos) in granted {
            for m in self.router.retained_matching(filter) {
                let q = m.qos.min(*sub_qos);
                let e = found.entry(m.id).or_insert((m, q));
                e.1 = e.1.max(q);
            }
        }
        let mut out: Vec<_> = found.into_values().collect();
        out.sort_unstable_by_key(|(m, _)| m.id);
        out
    }

    /// Subscribe a session (durable: the sessions part emits the event; the
    /// router keeps the granted QoS). True when the filter is new on this
    /// shard and peers must be told.
    pub(crate) fn subscribe_session(&mut self, sk: SessionKey, filter: Arc<str>, qos: QoS) -> bool {
        match self.sessions.add_filter(&mut self.journal, sk, filter, qos) {
            Some(filter) => self.router.subscribe(sk, &filter, qos),
            None => false,
        }
    }

    /// Unsubscribe a session; returns the filter when this shard has no
    /// subscriber of it left and peers must be told.
    pub(crate) fn unsubscribe_session(&mut self, sk: SessionKey, filter: &str) -> Option<Arc<str>> {
        let filter = self.sessions.remove_filter(&mut self.journal, sk, filter)?;
        self.router.unsubscribe(sk, &filter)
    }

    /// Tell every peer about filters this shard gained or lost.
    pub(super) fn announce_interest(&mut self, changes: Vec<(Arc<str>, bool)>, barrier: u64) {
        if changes.is_empty() || self.shards < 2 {
            return;
        }
        let from = self.id;
        let changes: Arc<[(Arc<str>, bool)]> = changes.into();
        self.broadcast(|| MeshMsg::Interest {
            from,
            barrier,
            changes: changes.clone(),
        });
    }
}

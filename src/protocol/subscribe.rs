//! SUBSCRIBE and UNSUBSCRIBE, the interest table, shared-group membership,
//! retained-on-subscribe.
//!
//! A shard's first subscriber of a filter is announced to every other shard
//! (they set this shard's bit for the filter in their interest replica); its
//! last one leaving is announced too. A session joining or leaving a shared
//! group (`$share/{group}/{filter}`) is announced the same way, to every
//! shard's replica of the group. A SUBACK that announced a change is held
//! until every peer has applied it (a barrier), so once a client holds its
//! SUBACK, a message published on any shard reaches it (or, for a shared
//! subscription, may choose it).

use crate::codec::{Packet, QoS, SubAck, SubAckCode, Subscribe, UnsubAck, Unsubscribe};
use crate::hooks::SubscribeRequest;
use crate::message::{Message, MsgId};
use crate::router::Announce;
use crate::shard::mesh::MeshMsg;
use crate::shard::{CloseReason, ConnKey, SessionKey, Shard};
use crate::topic;
use ahash::AHashMap;
use std::sync::Arc;

impl Shard {
    /// SUBSCRIBE: an empty filter [MQTT-4.7.3-1] or one with control
    /// characters (`strict.control_characters`) closes the connection before
    /// anything is subscribed; other bad filters get SUBACK 0x80.
    pub(super) fn on_subscribe(
        &mut self,
        conn: ConnKey,
        sk: SessionKey,
        sub: Subscribe,
    ) -> Result<(), CloseReason> {
        let filters = || sub.filters.iter().map(|f| f.filter.as_str());
        self.refuse_empty_filter(conn, "SUBSCRIBE", filters())?;
        self.refuse_control_chars(conn, filters().map(|f| ("SUBSCRIBE filter", f)))?;
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
            if req.rejected || !self.acceptable_filter(&req.filter) {
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
            changes.extend(self.subscribe_session(sk, filter.clone(), req.qos));
            // No retained messages for a shared subscription (MQTT 5 §4.8.2).
            if !topic::is_share(&filter) {
                granted.insert(filter, req.qos);
            }
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
        self.announce(changes, barrier);
        // Retained messages follow the SUBACK they belong to.
        self.send_ack_then(conn, suback, barrier, retained);
        Ok(())
    }

    /// UNSUBSCRIBE: an empty filter [MQTT-4.7.3-1] or one with control
    /// characters (`strict.control_characters`) closes the connection.
    pub(super) fn on_unsubscribe(
        &mut self,
        conn: ConnKey,
        sk: SessionKey,
        unsub: Unsubscribe,
    ) -> Result<(), CloseReason> {
        let filters = || unsub.filters.iter().map(String::as_str);
        self.refuse_empty_filter(conn, "UNSUBSCRIBE", filters())?;
        self.refuse_control_chars(conn, filters().map(|f| ("UNSUBSCRIBE filter", f)))?;
        let mut filters = unsub.filters;
        if let Some(info) = self.conns.get(conn).and_then(|c| c.info().cloned()) {
            self.hooks.client_unsubscribe(&info, &mut filters);
        }
        let mut changes = Vec::new();
        for f in filters {
            // Leaving a shared group: what it already sent this session stays here.
            changes.extend(self.unsubscribe_session(sk, &f));
        }
        self.announce(changes, 0);
        self.send_ack(conn, Packet::UnsubAck(UnsubAck::new(unsub.pkid)), 0);
        Ok(())
    }

    /// A valid filter; a shared one only when shared subscriptions are on,
    /// with a valid group and filter [MQTT-4.8.2-1] [MQTT-4.8.2-2].
    fn acceptable_filter(&self, filter: &str) -> bool {
        if topic::is_share(filter) {
            return self.cfg.mqtt.shared_subscriptions && topic::share_parts(filter).is_some();
        }
        topic::valid_filter(filter)
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
    /// router keeps the granted QoS). Returns what peers must be told: a
    /// filter new on this shard, or a new member of a shared group.
    pub(crate) fn subscribe_session(
        &mut self,
        sk: SessionKey,
        filter: Arc<str>,
        qos: QoS,
    ) -> Option<Announce> {
        let filter = self
            .sessions
            .add_filter(&mut self.journal, sk, filter, qos)?;
        self.router.subscribe(sk, &filter, qos)
    }

    /// Unsubscribe a session; returns what peers must be told: a filter
    /// this shard has no subscriber of left, or a member leaving its group.
    pub(crate) fn unsubscribe_session(&mut self, sk: SessionKey, filter: &str) -> Option<Announce> {
        let filter = self.sessions.remove_filter(&mut self.journal, sk, filter)?;
        self.router.unsubscribe(sk, &filter)
    }

    /// Tell every peer about filters this shard gained or lost and members
    /// that joined or left shared groups. Mailboxes are FIFO, so `barrier`
    /// rides on the last message to each peer: its answer covers both.
    pub(super) fn announce(&mut self, changes: Vec<Announce>, barrier: u64) {
        if changes.is_empty() || self.shards < 2 {
            return;
        }
        let (mut interest, mut members) = (Vec::new(), Vec::new());
        for c in changes {
            match c {
                Announce::Interest(filter, add) => interest.push((filter, add)),
                Announce::Member(change) => members.push(change),
            }
        }
        let from = self.id;
        if !interest.is_empty() {
            let changes: Arc<[(Arc<str>, bool)]> = interest.into();
            let barrier = if members.is_empty() { barrier } else { 0 };
            self.broadcast(|| MeshMsg::Interest {
                from,
                barrier,
                changes: changes.clone(),
            });
        }
        if !members.is_empty() {
            let changes: Arc<[_]> = members.into();
            self.broadcast(|| MeshMsg::Members {
                barrier,
                changes: changes.clone(),
            });
        }
    }
}

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

use crate::codec::{Packet, QoS, Reason, SubAck, SubAckCode, Subscribe, SubscribeFilter};
use crate::codec::{UnsubAck, Unsubscribe};
use crate::hooks::{ClientInfo, SubscribeRequest};
use crate::message::{Message, MsgId};
use crate::router::{Announce, SubOpts};
use crate::session::RetainedSend;
use crate::shard::mesh::MeshMsg;
use crate::shard::{CloseReason, ConnKey, SessionKey, Shard};
use crate::topic;
use ahash::AHashMap;
use std::sync::Arc;

impl Shard {
    /// SUBSCRIBE: an empty filter [MQTT-4.7.3-1], one with control
    /// characters (`strict.control_characters`) or No Local on a shared
    /// subscription [MQTT-3.8.3-4] closes the connection before anything is
    /// subscribed; other refused filters get a SUBACK failure (MQTT 5: its
    /// reason, [`Shard::refusal`]).
    pub(super) fn on_subscribe(
        &mut self,
        conn: ConnKey,
        sk: SessionKey,
        sub: Subscribe,
    ) -> Result<(), CloseReason> {
        let filters = || sub.filters.iter().map(|f| f.filter.as_str());
        self.refuse_empty_filter(conn, "SUBSCRIBE", filters())?;
        self.refuse_control_chars(conn, filters().map(|f| ("SUBSCRIBE filter", f)))?;
        let no_local = sub.filters.iter().filter(|f| f.no_local);
        self.refuse_shared_no_local(conn, no_local.map(|f| f.filter.as_str()))?;
        // One identifier for every filter of the packet (§3.8.2.1.2).
        let sub_id = sub
            .props
            .as_ref()
            .and_then(|p| p.subscription_identifiers.first().copied())
            .unwrap_or(0);
        let mut reqs: Vec<SubscribeRequest> = sub.filters.into_iter().map(request).collect();
        let info = self.conns.get(conn).and_then(|c| c.info().cloned());
        if let Some(info) = &info {
            self.hooks.client_subscribe(info, &mut reqs);
        }
        let mut codes = Vec::with_capacity(reqs.len());
        let mut changes = Vec::new();
        // A filter repeated in one SUBSCRIBE is subscribed once, at its last
        // QoS [MQTT-3.8.4-3]; its retained messages are looked up once.
        let mut granted: AHashMap<Arc<str>, QoS> = AHashMap::new();
        for req in reqs {
            if let Some(reason) = self.refusal(sk, info.as_deref(), &req, sub_id) {
                log::debug!(
                    "{}: filter {:?} refused: {reason:?}",
                    self.who(conn),
                    req.filter
                );
                codes.push(SubAckCode::Refused(reason));
                continue;
            }
            let qos = req.qos.min(self.max_qos());
            let opts = SubOpts::new(qos, req.no_local, req.retain_as_published, sub_id);
            let filter: Arc<str> = req.filter.into();
            let existed = self.sessions.get(sk).is_some_and(|s| s.has_filter(&filter));
            changes.extend(self.subscribe_session(sk, filter.clone(), opts));
            // Retain Handling [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11];
            // no retained messages for a shared subscription (§4.8.2).
            let send_retained = match req.retain_handling {
                0 => true,
                1 => !existed,
                _ => false,
            };
            if send_retained && !topic::is_share(&filter) {
                granted.insert(filter, qos);
            }
            codes.push(SubAckCode::Granted(qos));
        }
        let retained = self.retained_for(&granted, sub_id);
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
    /// characters (`strict.control_characters`) closes the connection. An
    /// MQTT 5 UNSUBACK has a reason per filter [MQTT-3.11.3-1]: 0x00, 0x11
    /// No subscription existed [MQTT-3.11.3-2], 0x8F for an invalid filter;
    /// when a hook changed how many filters there are, each gets 0x00.
    pub(super) fn on_unsubscribe(
        &mut self,
        conn: ConnKey,
        sk: SessionKey,
        unsub: Unsubscribe,
    ) -> Result<(), CloseReason> {
        let filters = || unsub.filters.iter().map(String::as_str);
        self.refuse_empty_filter(conn, "UNSUBSCRIBE", filters())?;
        self.refuse_control_chars(conn, filters().map(|f| ("UNSUBSCRIBE filter", f)))?;
        let asked = unsub.filters.len();
        let mut filters = unsub.filters;
        if let Some(info) = self.conns.get(conn).and_then(|c| c.info().cloned()) {
            self.hooks.client_unsubscribe(&info, &mut filters);
        }
        let mut changes = Vec::new();
        let mut reasons = Vec::with_capacity(filters.len());
        for f in filters {
            if !valid_filter_syntax(&f) {
                reasons.push(Reason::TOPIC_FILTER_INVALID);
                continue;
            }
            let existed = self.sessions.get(sk).is_some_and(|s| s.has_filter(&f));
            // Leaving a shared group: what it already sent this session stays here.
            changes.extend(self.unsubscribe_session(sk, &f));
            reasons.push(if existed {
                Reason::SUCCESS
            } else {
                Reason::NO_SUBSCRIPTION_EXISTED
            });
        }
        self.announce(changes, 0);
        let v5 = self.conns.get(conn).is_some_and(|c| c.version().is_v5());
        let mut unsuback = UnsubAck::new(unsub.pkid);
        if v5 {
            if reasons.len() != asked {
                reasons = vec![Reason::SUCCESS; asked];
            }
            unsuback.reasons = reasons;
        }
        self.send_ack(conn, Packet::UnsubAck(unsuback), 0);
        Ok(())
    }

    /// Why a filter subscribed through the API (`crate::control`) is
    /// refused, if it is: its syntax, what the broker does not offer, the
    /// subscription limits. The ACL and hooks are not asked: the operator is.
    pub(crate) fn subscribe_refusal(&self, sk: SessionKey, filter: &str) -> Option<String> {
        if filter.is_empty() || !valid_filter_syntax(filter) {
            return Some(format!("not a valid topic filter: {filter:?}"));
        }
        if let Some(reason) = self.unsupported(filter, 0) {
            return Some(format!("not offered by this broker ({reason:?})"));
        }
        self.over_subscription_limits(sk, filter).map(str::to_owned)
    }

    /// The highest QoS granted: `mqtt.maximum_qos`.
    pub(crate) fn max_qos(&self) -> QoS {
        QoS::from_u8(self.cfg.mqtt.maximum_qos).unwrap_or(QoS::ExactlyOnce)
    }

    /// Why a subscription is refused, if it is, as its MQTT 5 SUBACK reason
    /// (3.1/3.1.1 clients get 0x80 for each): a hook rejected it (0x87), the
    /// filter is invalid (0x8F), shared subscriptions, wildcards or
    /// subscription identifiers are off (0x9E, 0xA2, 0xA1), the ACL denies
    /// it (0x87; logged and counted), or a limit acts (0x97).
    fn refusal(
        &mut self,
        sk: SessionKey,
        info: Option<&ClientInfo>,
        req: &SubscribeRequest,
        sub_id: u32,
    ) -> Option<Reason> {
        let filter = req.filter.as_str();
        let reason = if req.rejected {
            Reason::NOT_AUTHORIZED
        } else if !valid_filter_syntax(filter) {
            Reason::TOPIC_FILTER_INVALID
        } else if let Some(reason) = self.unsupported(filter, sub_id) {
            reason
        } else if info.is_some_and(|i| !self.acl_allows_subscribe(i, filter)) {
            Reason::NOT_AUTHORIZED
        } else if let Some(why) = self.over_subscription_limits(sk, filter) {
            log::debug!("shard {}: filter refused: {why}", self.id);
            self.metrics.subscriptions_refused_limit += 1;
            Reason::QUOTA_EXCEEDED
        } else {
            return None;
        };
        Some(reason)
    }

    /// What the broker does not offer that a valid filter asks for.
    fn unsupported(&self, filter: &str, sub_id: u32) -> Option<Reason> {
        let mqtt = &self.cfg.mqtt;
        let reason = if topic::is_share(filter) && !mqtt.shared_subscriptions {
            Reason::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED
        } else if topic::has_wildcards(filter) && !mqtt.wildcard_subscriptions {
            Reason::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED
        } else if sub_id != 0 && !mqtt.subscription_identifiers {
            Reason::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED
        } else {
            return None;
        };
        Some(reason)
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
    /// highest QoS among the filters it matches) with the SUBSCRIBE's
    /// subscription identifier (0: none), oldest first: every subscribe
    /// (re)sends them [MQTT-3.3.1-6] unless Retain Handling says otherwise.
    fn retained_for(&self, granted: &AHashMap<Arc<str>, QoS>, sub_id: u32) -> Vec<RetainedSend> {
        let mut found: AHashMap<MsgId, (Arc<Message>, QoS, u32)> = AHashMap::new();
        for (filter, sub_qos) in granted {
            for m in self.router.retained_matching(filter) {
                let q = m.qos.min(*sub_qos);
                let e = found.entry(m.id).or_insert((m, q, sub_id));
                e.1 = e.1.max(q);
            }
        }
        let mut out: Vec<_> = found.into_values().collect();
        out.sort_unstable_by_key(|(m, _, _)| m.id);
        out
    }

    /// Subscribe a session (durable: the sessions part emits the event; the
    /// router keeps the options). Returns what peers must be told: a
    /// filter new on this shard, or a new member of a shared group.
    pub(crate) fn subscribe_session(
        &mut self,
        sk: SessionKey,
        filter: Arc<str>,
        opts: SubOpts,
    ) -> Option<Announce> {
        let filter = self
            .sessions
            .add_filter(&mut self.journal, sk, filter, opts)?;
        self.router.subscribe(sk, &filter, opts)
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
    pub(crate) fn announce(&mut self, changes: Vec<Announce>, barrier: u64) {
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

/// A SUBSCRIBE's filter as the hooks see it.
fn request(f: SubscribeFilter) -> SubscribeRequest {
    SubscribeRequest {
        filter: f.filter,
        qos: f.qos,
        rejected: false,
        no_local: f.no_local,
        retain_as_published: f.retain_as_published,
        retain_handling: f.retain_handling,
    }
}

/// A well-formed filter: a valid one, or a shared one with a valid group
/// and filter [MQTT-4.8.2-1] [MQTT-4.8.2-2].
fn valid_filter_syntax(filter: &str) -> bool {
    if topic::is_share(filter) {
        return topic::share_parts(filter).is_some();
    }
    topic::valid_filter(filter)
}

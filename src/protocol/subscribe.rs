//! SUBSCRIBE and UNSUBSCRIBE, the interest table, retained-on-subscribe.
//!
//! A shard's first subscriber of a filter is announced to every other shard
//! (they set this shard's bit for the filter in their interest replica); its
//! last one leaving is announced too. A SUBACK that announced a new filter is
//! held until every peer has applied it (a barrier), so once a client holds
//! its SUBACK, a message published on any shard reaches it.

use crate::codec::{Packet, QoS, SubAck, SubAckCode, Subscribe, Unsubscribe};
use crate::hooks::SubscribeRequest;
use crate::message::Message;
use crate::router::topic;
use crate::shard::mesh::MeshMsg;
use crate::shard::slab::Key;
use crate::shard::Shard;
use std::sync::Arc;

impl Shard {
    pub(super) fn on_subscribe(&mut self, conn: Key, sk: Key, sub: Subscribe) {
        let mut reqs: Vec<SubscribeRequest> = sub
            .filters
            .into_iter()
            .map(|f| SubscribeRequest {
                filter: f.filter,
                qos: f.qos,
                rejected: false,
            })
            .collect();
        if let Some(info) = self.conns.get(conn).and_then(|c| c.info.clone()) {
            self.hooks.client_subscribe(&info, &mut reqs);
        }
        let mut codes = Vec::with_capacity(reqs.len());
        let mut changes = Vec::new();
        let mut retained: Vec<(Arc<Message>, QoS)> = Vec::new();
        for req in reqs {
            if req.rejected || !topic::valid_filter(&req.filter) {
                log::debug!("{}: filter {:?} refused", self.who(conn), req.filter);
                codes.push(SubAckCode::Failure);
                continue;
            }
            let filter: Arc<str> = req.filter.into();
            let Some(s) = self.sessions.get_mut(sk) else {
                return;
            };
            s.subs.insert(filter.clone(), req.qos);
            let local = self.subs.get_or_insert_default(&filter);
            let first = local.is_empty();
            local.insert(sk, req.qos);
            if first && self.shards > 1 {
                changes.push((filter.clone(), true));
            }
            // [MQTT-3.8.4-3]: retained messages are (re)sent on every subscribe.
            retained.extend(self.retained.matching(&filter).into_iter().map(|m| {
                let q = m.qos.min(req.qos);
                (m, q)
            }));
            codes.push(SubAckCode::Granted(req.qos));
        }
        let suback = Packet::SubAck(SubAck {
            pkid: sub.pkid,
            codes,
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

    pub(super) fn on_unsubscribe(&mut self, conn: Key, sk: Key, unsub: Unsubscribe) {
        let mut filters = unsub.filters;
        if let Some(info) = self.conns.get(conn).and_then(|c| c.info.clone()) {
            self.hooks.client_unsubscribe(&info, &mut filters);
        }
        let mut changes = Vec::new();
        for f in filters {
            let removed = self
                .sessions
                .get_mut(sk)
                .and_then(|s| s.subs.remove_entry(f.as_str()));
            if let Some((filter, _)) = removed {
                if let Some(gone) = self.unsubscribe_local(sk, &filter) {
                    changes.push((gone, false));
                }
            }
        }
        self.announce_interest(changes, 0);
        self.send_ack(conn, Packet::UnsubAck(unsub.pkid), 0);
    }

    /// Take a session out of the local trie for one filter; returns the
    /// filter if the shard has no subscriber of it left.
    pub(super) fn unsubscribe_local(&mut self, sk: Key, filter: &Arc<str>) -> Option<Arc<str>> {
        let local = self.subs.get_mut(filter)?;
        local.remove(&sk);
        if !local.is_empty() {
            return None;
        }
        self.subs.remove(filter);
        (self.shards > 1).then(|| filter.clone())
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

    /// A peer's interest change: set or clear its bit per filter.
    pub fn apply_interest(&mut self, from: usize, changes: &[(Arc<str>, bool)]) {
        let bit = 1u64 << from;
        for (filter, add) in changes {
            if *add {
                *self.interest.get_or_insert_default(filter) |= bit;
            } else if let Some(mask) = self.interest.get_mut(filter) {
                *mask &= !bit;
                if *mask == 0 {
                    self.interest.remove(filter);
                }
            }
        }
    }
}

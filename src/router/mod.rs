//! The router part: who on this shard and which other shards want a topic,
//! and the retained store.
//!
//! [`Router`] owns the local subscription index (filter → this shard's
//! sessions with their granted QoS: the one place a granted QoS is kept),
//! this shard's replica of the interest table (filter → mask of shards with
//! subscribers) and its replica of the retained store. The protocol handlers
//! call it to subscribe and unsubscribe sessions, to find the local hits and
//! the interested peers of a topic, and to read or change retained messages;
//! the mesh applies peers' interest changes through it.
//!
//! Files: `index.rs` (exact map + wildcard trie), `trie.rs`, `smallmap.rs`,
//! `retained.rs` (with `topic_tree.rs`: retained topics queried by filter). Topic validation and matching are one layer down, in
//! [`crate::topic`], shared with the codec.

pub mod index;
pub mod retained;
pub mod smallmap;
pub mod topic_tree;
pub mod trie;

use crate::codec::QoS;
use crate::message::Message;
use crate::slab::SessionKey;
use index::FilterIndex;
use retained::{Applied, Retained};
use smallmap::SmallMap;
use std::sync::Arc;

/// The shard's routing state. See the module doc.
pub struct Router {
    /// This shard's id and the shard count: interest bits.
    id: usize,
    shards: usize,
    /// Local subscriptions: filter → sessions on this shard and their granted QoS.
    subs: FilterIndex<SmallMap<SessionKey, QoS>>,
    /// Replica of the interest table: filter → mask of shards with subscribers.
    interest: FilterIndex<u64>,
    retained: Retained,
}

impl Router {
    pub fn new(id: usize, shards: usize, max_retained: usize, max_retained_bytes: usize) -> Self {
        Router {
            id,
            shards,
            subs: FilterIndex::new(),
            interest: FilterIndex::new(),
            retained: Retained::new(max_retained, max_retained_bytes),
        }
    }

    /// Subscribe `sk` to `filter` at `qos` (or change its QoS). Returns true
    /// when the filter is new on this shard and other shards must be told.
    pub fn subscribe(&mut self, sk: SessionKey, filter: &Arc<str>, qos: QoS) -> bool {
        let local = self.subs.get_or_insert_default(filter);
        let first = local.is_empty();
        local.insert(sk, qos);
        first && self.shards > 1
    }

    /// Take `sk` off `filter`; returns the filter when this shard has no
    /// subscriber of it left and other shards must be told.
    pub fn unsubscribe(&mut self, sk: SessionKey, filter: &Arc<str>) -> Option<Arc<str>> {
        let local = self.subs.get_mut(filter)?;
        local.remove(&sk);
        if !local.is_empty() {
            return None;
        }
        self.subs.remove(filter);
        (self.shards > 1).then(|| filter.clone())
    }

    /// The QoS granted to `sk` on `filter`, if subscribed (harness tests).
    #[cfg(test)]
    pub fn granted(&self, filter: &str, sk: SessionKey) -> Option<QoS> {
        self.subs.get(filter)?.get(&sk).copied()
    }

    /// This shard's sessions subscribed to `topic`, one entry per session at
    /// the highest QoS among its matching filters, appended to `hits`.
    pub fn local_hits(&self, topic: &str, hits: &mut Vec<(SessionKey, QoS)>) {
        let mut filters = 0usize;
        self.subs.for_each_match(topic, |subs| {
            filters += 1;
            subs.for_each(|k, q| hits.push((*k, *q)));
        });
        if filters > 1 {
            hits.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            hits.dedup_by_key(|h| h.0);
        }
    }

    /// The other shards with a subscriber for `topic`, as a bit mask.
    pub fn peers_for(&self, topic: &str) -> u64 {
        if self.shards < 2 {
            return 0;
        }
        let mut mask = 0u64;
        self.interest.for_each_match(topic, |m| mask |= *m);
        mask & !(1u64 << self.id)
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

    /// Set or delete (empty payload) a retained message in this replica.
    pub fn apply_retained(&mut self, msg: &Arc<Message>) -> Applied {
        self.retained.apply(msg)
    }

    /// Every retained message matching `filter`.
    pub fn retained_matching(&self, filter: &str) -> Vec<Arc<Message>> {
        self.retained.matching(filter)
    }

    /// Retained messages in this replica.
    pub fn retained_len(&self) -> usize {
        self.retained.len()
    }

    /// Forget old delete tombstones (once a tick).
    pub fn prune_tombstones(&mut self) {
        self.retained.prune_tombstones();
    }

    /// Every retained message, for snapshots (harness tests).
    #[cfg(test)]
    pub fn retained_all(&self) -> Vec<Arc<Message>> {
        self.retained.matching("#")
    }
}

//! The router part: who on this shard and which other shards want a topic,
//! and the retained store.
//!
//! [`Router`] owns the local subscription index (filter → this shard's
//! sessions with their subscription options, [`SubOpts`]: the one place a
//! granted QoS and the MQTT 5 options are kept),
//! this shard's replica of the interest table (filter → mask of shards with
//! subscribers), its replica of the shared-subscription groups
//! ([`shared::SharedGroups`]) and its replica of the retained store. The protocol handlers
//! call it to subscribe and unsubscribe sessions, to find the local hits and
//! the interested peers of a topic, and to read or change retained messages;
//! the mesh applies peers' interest changes through it.
//!
//! Files: `index.rs` (exact map + wildcard trie), `trie.rs`, `smallmap.rs`,
//! `shared.rs` (`$share/{group}/{filter}` groups and the choice of a member),
//! `retained.rs` (with `topic_tree.rs`: retained topics queried by filter).
//! Topic validation and matching are one layer down, in [`crate::topic`],
//! shared with the codec.

pub mod index;
pub mod retained;
pub mod shared;
pub mod smallmap;
pub mod subopts;
pub mod topic_tree;
pub mod trie;

use crate::codec::QoS;
use crate::config::SharedStrategy;
use crate::message::Message;
use crate::slab::SessionKey;
use index::FilterIndex;
use retained::{Applied, Retained};
use shared::{Member, MemberChange, SharedGroups};
use smallmap::SmallMap;
use smallvec::SmallVec;
use std::sync::Arc;
pub use subopts::SubOpts;

/// One match of a message: a session and the options of a subscription of it.
pub type Hit = (SessionKey, SubOpts);

/// One session's matches of a message merged into the one copy it gets
/// [MQTT-3.3.4-2]: the highest QoS, RETAIN as published if any subscription
/// asks it, and the identifiers of every matching subscription that has one
/// [MQTT-3.3.4-3].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    pub session: SessionKey,
    pub qos: QoS,
    pub retain_as_published: bool,
    pub ids: SmallVec<[u32; 4]>,
}

impl Merged {
    /// Merge `run`: the matches of one session (not empty).
    pub fn of(run: &[Hit]) -> Merged {
        let mut m = Merged {
            session: run[0].0,
            qos: QoS::AtMostOnce,
            retain_as_published: false,
            ids: SmallVec::new(),
        };
        for (_, o) in run {
            m.qos = m.qos.max(o.qos());
            m.retain_as_published |= o.retain_as_published();
            if let Some(id) = o.id().filter(|id| !m.ids.contains(id)) {
                m.ids.push(id);
            }
        }
        m
    }
}

/// The runs of `hits` (as [`Router::local_hits`] leaves them), one per session.
pub fn sessions_of(hits: &[Hit]) -> impl Iterator<Item = &[Hit]> {
    hits.chunk_by(|a, b| a.0 == b.0)
}

/// What a subscription change means for the other shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announce {
    /// This shard gained (`true`) its first or lost its last subscriber of a filter.
    Interest(Arc<str>, bool),
    /// A session of this shard joined or left a shared group.
    Member(MemberChange),
}

/// The shard's routing state. See the module doc.
pub struct Router {
    /// This shard's id and the shard count: interest bits.
    id: usize,
    shards: usize,
    /// Local subscriptions: filter → sessions on this shard and their options.
    subs: FilterIndex<SmallMap<SessionKey, SubOpts>>,
    /// Replica of the interest table: filter → mask of shards with subscribers.
    interest: FilterIndex<u64>,
    /// Shared groups: the node-wide membership replica, this shard's members' QoS.
    shared: SharedGroups,
    retained: Retained,
    /// Distinct non-shared filters with a subscriber on any shard: the keys
    /// of `subs` and `interest` together, kept as they change.
    filters_known: usize,
}

impl Router {
    pub fn new(
        id: usize,
        shards: usize,
        (max_retained, max_retained_bytes): (usize, usize),
        strategy: SharedStrategy,
    ) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ (id as u64).rotate_left(32);
        Router {
            id,
            shards,
            subs: FilterIndex::new(),
            interest: FilterIndex::new(),
            shared: SharedGroups::new(strategy, seed),
            retained: Retained::new(max_retained, max_retained_bytes),
            filters_known: 0,
        }
    }

    /// Subscribe `sk` to `filter` with `opts` (or change its options); a
    /// `$share/{group}/{filter}` joins the group. Returns what other shards
    /// must be told: a filter new on this shard, or a new group member.
    pub fn subscribe(
        &mut self,
        sk: SessionKey,
        filter: &Arc<str>,
        opts: SubOpts,
    ) -> Option<Announce> {
        if crate::topic::is_share(filter) {
            let change = self.shared.join_local(self.id as u16, sk, filter, opts)?;
            return (self.shards > 1).then_some(Announce::Member(change));
        }
        let local = self.subs.get_or_insert_default(filter);
        let first = local.is_empty();
        local.insert(sk, opts);
        if first && self.interest.get(filter).is_none() {
            self.filters_known += 1;
        }
        (first && self.shards > 1).then(|| Announce::Interest(filter.clone(), true))
    }

    /// Take `sk` off `filter` (or out of its shared group); returns what
    /// other shards must be told, as [`subscribe`](Self::subscribe).
    pub fn unsubscribe(&mut self, sk: SessionKey, filter: &Arc<str>) -> Option<Announce> {
        if crate::topic::is_share(filter) {
            let change = self.shared.leave_local(self.id as u16, sk, filter)?;
            return (self.shards > 1).then_some(Announce::Member(change));
        }
        let local = self.subs.get_mut(filter)?;
        local.remove(&sk);
        if !local.is_empty() {
            return None;
        }
        self.subs.remove(filter);
        if self.interest.get(filter).is_none() {
            self.filters_known -= 1;
        }
        (self.shards > 1).then(|| Announce::Interest(filter.clone(), false))
    }

    /// The options of `sk` on `filter` (a shared one too), if subscribed
    /// (storage snapshots, harness tests).
    pub fn granted(&self, filter: &str, sk: SessionKey) -> Option<SubOpts> {
        if crate::topic::is_share(filter) {
            return self.shared.granted(filter, sk);
        }
        self.subs.get(filter)?.get(&sk).copied()
    }

    /// The options of this shard's member `sk` of the group of `share`.
    pub fn share_granted(&self, share: &str, sk: SessionKey) -> Option<SubOpts> {
        self.shared.granted(share, sk)
    }

    /// One member of each shared group whose filter matches the message's
    /// topic, with the group's share, appended to `out`.
    pub fn shared_picks(&self, msg: &Message, out: &mut Vec<(Member, Arc<str>)>) {
        self.shared.picks(msg, out);
    }

    /// A member of `share`'s group for `msg` (another pick, after the one
    /// chosen had left), if the group has one.
    pub fn shared_pick_in(&self, share: &str, msg: &Message) -> Option<Member> {
        self.shared.pick_in(share, msg)
    }

    /// A peer's members joining or leaving shared groups.
    pub fn apply_members(&mut self, changes: &[MemberChange]) {
        changes.iter().for_each(|c| self.shared.apply(c));
    }

    /// The shared groups this shard has members in (harness tests).
    #[cfg(test)]
    pub fn shared_snapshot(&self) -> Vec<(String, Vec<Member>)> {
        self.shared.snapshot()
    }

    /// This shard's subscriptions matching `topic`, appended to `hits`, a
    /// session's matches next to each other (see [`sessions_of`]). A No
    /// Local subscription of the publisher is left out [MQTT-3.8.3-3]:
    /// `is_publisher` is asked only for those.
    pub fn local_hits(
        &self,
        topic: &str,
        hits: &mut Vec<Hit>,
        is_publisher: impl Fn(SessionKey) -> bool,
    ) {
        let mut filters = 0usize;
        self.subs.for_each_match(topic, |subs| {
            filters += 1;
            subs.for_each(|k, o| {
                if !(o.no_local() && is_publisher(*k)) {
                    hits.push((*k, *o));
                }
            });
        });
        if filters > 1 {
            hits.sort_unstable_by_key(|h| h.0);
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
            let local = self.subs.get(filter).is_some();
            if *add {
                let mask = self.interest.get_or_insert_default(filter);
                if *mask == 0 && !local {
                    self.filters_known += 1;
                }
                *mask |= bit;
            } else if let Some(mask) = self.interest.get_mut(filter) {
                *mask &= !bit;
                if *mask == 0 {
                    self.interest.remove(filter);
                    if !local {
                        self.filters_known -= 1;
                    }
                }
            }
        }
    }

    /// Distinct non-shared filters subscribed on any shard (`$SYS` topics).
    pub fn filters_known(&self) -> usize {
        self.filters_known
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

    /// The retained replica itself (storage snapshots and start-up read it).
    pub fn retained(&self) -> &retained::Retained {
        &self.retained
    }

    /// Every retained message, for snapshots (harness tests).
    #[cfg(test)]
    pub fn retained_all(&self) -> Vec<Arc<Message>> {
        self.retained.matching("#")
    }
}

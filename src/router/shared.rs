//! Shared subscriptions (`$share/{group}/{filter}`, MQTT 5 §4.8.2): who is
//! in each group, and which member gets a message.
//!
//! [`SharedGroups`] is owned by the [`Router`](super::Router) of every shard.
//! It holds a **replica** of every group's membership, node-wide: a member is
//! `(shard, session key)`, kept sorted, so every shard holds the same list in
//! the same order once the changes have arrived. A member's home shard
//! changes its own replica at once and broadcasts the [`MemberChange`] over
//! the mesh (`protocol/shared.rs`); peers apply it here. Beside the replica
//! it keeps the subscription options of this shard's own members (the one
//! place they live) and the choice state of this shard as a publisher: a
//! round-robin cursor and a sticky member per group, and a random generator.
//!
//! Called by the router (subscribe, unsubscribe, the mesh's changes) and by
//! the shared delivery path (`picks`, `pick_in`, `granted`).

use super::index::FilterIndex;
use super::SubOpts;
use crate::config::SharedStrategy;
use crate::message::Message;
use crate::router::smallmap::SmallMap;
use crate::slab::SessionKey;
use crate::topic::share_parts;
use ahash::AHashMap;
use std::cell::Cell;
use std::sync::Arc;

/// One member of a group: a session and the shard it lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Member {
    pub shard: u16,
    pub session: SessionKey,
}

/// A member joining (`join`) or leaving the group of `share`
/// (the whole `$share/{group}/{filter}` string), as broadcast to peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberChange {
    pub share: Arc<str>,
    pub member: Member,
    pub join: bool,
}

/// One group on one filter, as this shard sees it.
#[derive(Debug)]
struct Group {
    /// `$share/{group}/{filter}`: names the group in mesh messages and tags.
    share: Arc<str>,
    /// Sorted: the same order on every shard.
    members: Vec<Member>,
    /// Round robin: the next turn on this shard.
    cursor: Cell<u32>,
    /// Sticky: the member this shard sends to until it leaves.
    sticky: Cell<Option<Member>>,
}

/// Groups by filter, this shard's members' options, and the choice state. See the module doc.
pub struct SharedGroups {
    strategy: SharedStrategy,
    /// Filter → the groups on it (usually one or two).
    groups: FilterIndex<Vec<Group>>,
    /// This shard's members: share → session → subscription options.
    local: AHashMap<Arc<str>, SmallMap<SessionKey, SubOpts>>,
    /// Random and sticky choices (xorshift64*; never 0).
    rng: Cell<u64>,
}

impl SharedGroups {
    pub fn new(strategy: SharedStrategy, seed: u64) -> Self {
        SharedGroups {
            strategy,
            groups: FilterIndex::new(),
            local: AHashMap::new(),
            rng: Cell::new(seed | 1),
        }
    }

    /// This shard's session `sk` (on shard `me`) joins `share` with `opts`,
    /// or changes them. The change to broadcast when it is a new member.
    pub fn join_local(
        &mut self,
        me: u16,
        sk: SessionKey,
        share: &Arc<str>,
        opts: SubOpts,
    ) -> Option<MemberChange> {
        let members = self.local.entry(share.clone()).or_default();
        if members.insert(sk, opts).is_some() {
            return None;
        }
        let change = MemberChange {
            share: share.clone(),
            member: Member {
                shard: me,
                session: sk,
            },
            join: true,
        };
        self.apply(&change);
        Some(change)
    }

    /// This shard's session `sk` leaves `share`; the change to broadcast
    /// when it was a member.
    pub fn leave_local(&mut self, me: u16, sk: SessionKey, share: &str) -> Option<MemberChange> {
        let (share, members) = self.local.get_key_value(share)?;
        let share = share.clone();
        members.get(&sk)?;
        let members = self.local.get_mut(&share)?;
        members.remove(&sk);
        if members.is_empty() {
            self.local.remove(&share);
        }
        let change = MemberChange {
            share,
            member: Member {
                shard: me,
                session: sk,
            },
            join: false,
        };
        self.apply(&change);
        Some(change)
    }

    /// The options of this shard's member `sk` of `share`, if it is one.
    pub fn granted(&self, share: &str, sk: SessionKey) -> Option<SubOpts> {
        self.local.get(share)?.get(&sk).copied()
    }

    /// Apply a join or leave to the replica (a peer's, or this shard's own).
    pub fn apply(&mut self, change: &MemberChange) {
        let Some((_, filter)) = share_parts(&change.share) else {
            log::warn!("shared group change for {:?} ignored", change.share);
            return;
        };
        if change.join {
            let groups = self.groups.get_or_insert_default(&Arc::from(filter));
            let at = match groups.iter().position(|g| g.share == change.share) {
                Some(at) => at,
                None => {
                    groups.push(Group::new(change.share.clone()));
                    groups.len() - 1
                }
            };
            let members = &mut groups[at].members;
            if let Err(pos) = members.binary_search(&change.member) {
                members.insert(pos, change.member);
            }
            return;
        }
        let Some(groups) = self.groups.get_mut(filter) else {
            return;
        };
        if let Some(at) = groups.iter().position(|g| g.share == change.share) {
            let g = &mut groups[at];
            if let Ok(pos) = g.members.binary_search(&change.member) {
                g.members.remove(pos);
            }
            if g.sticky.get() == Some(change.member) {
                g.sticky.set(None);
            }
            if g.members.is_empty() {
                groups.swap_remove(at);
            }
        }
        if groups.is_empty() {
            self.groups.remove(filter);
        }
    }

    /// One member of every group whose filter matches the message's topic,
    /// with the group's share, appended to `out`.
    pub fn picks(&self, msg: &Message, out: &mut Vec<(Member, Arc<str>)>) {
        self.groups.for_each_match(&msg.topic, |groups| {
            for g in groups {
                if let Some(m) = self.pick(g, msg) {
                    out.push((m, g.share.clone()));
                }
            }
        });
    }

    /// A member of `share`'s group for `msg`, if the group has one.
    pub fn pick_in(&self, share: &str, msg: &Message) -> Option<Member> {
        let (_, filter) = share_parts(share)?;
        let g = self
            .groups
            .get(filter)?
            .iter()
            .find(|g| &*g.share == share)?;
        self.pick(g, msg)
    }

    fn pick(&self, g: &Group, msg: &Message) -> Option<Member> {
        let n = g.members.len() as u64;
        if n == 0 {
            return None;
        }
        let i = match self.strategy {
            SharedStrategy::RoundRobin => {
                let c = g.cursor.get();
                g.cursor.set(c.wrapping_add(1));
                u64::from(c) % n
            }
            SharedStrategy::Random => self.next_random() % n,
            SharedStrategy::HashClientid => stable_hash(&msg.from) % n,
            SharedStrategy::HashTopic => stable_hash(&msg.topic) % n,
            SharedStrategy::Sticky => {
                if let Some(m) = g.sticky.get() {
                    return Some(m);
                }
                self.next_random() % n
            }
        };
        let m = *g.members.get(i as usize)?;
        if self.strategy == SharedStrategy::Sticky {
            g.sticky.set(Some(m));
        }
        Some(m)
    }

    fn next_random(&self) -> u64 {
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11
    }

    /// The members of `share`'s group in this replica, in order (tests).
    #[cfg(test)]
    pub fn members(&self, share: &str) -> Vec<Member> {
        let Some((_, filter)) = share_parts(share) else {
            return Vec::new();
        };
        let groups = self.groups.get(filter).map(|g| g.as_slice()).unwrap_or(&[]);
        groups
            .iter()
            .find(|g| &*g.share == share)
            .map(|g| g.members.clone())
            .unwrap_or_default()
    }

    /// The groups this shard has members in, with their members (harness tests).
    #[cfg(test)]
    pub fn snapshot(&self) -> Vec<(String, Vec<Member>)> {
        let mut out: Vec<_> = self
            .local
            .keys()
            .map(|s| (s.to_string(), self.members(s)))
            .collect();
        out.sort();
        out
    }
}

impl Group {
    fn new(share: Arc<str>) -> Self {
        Group {
            share,
            members: Vec::new(),
            cursor: Cell::new(0),
            sticky: Cell::new(None),
        }
    }
}

/// The same hash on every shard (fixed seeds), so every publishing shard
/// sends one publisher's (or one topic's) messages to the same member.
fn stable_hash(s: &str) -> u64 {
    ahash::RandomState::with_seeds(0x5eed, 0x5a4e, 0xc0de, 0x6d71).hash_one(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::QoS;
    use crate::message::MsgId;
    use crate::slab::Slab;

    fn msg(from: &str, topic: &str) -> Message {
        Message {
            id: MsgId(1),
            topic: topic.into(),
            payload: bytes::Bytes::new(),
            qos: QoS::AtLeastOnce,
            retain: false,
            from: from.into(),
            props: None,
        }
    }

    fn keys(n: usize) -> Vec<SessionKey> {
        let mut slab: Slab<(), crate::slab::SessionTag> = Slab::new();
        (0..n).map(|_| slab.insert(())).collect()
    }

    fn chosen(g: &SharedGroups, m: &Message) -> Vec<Member> {
        let mut out = Vec::new();
        g.picks(m, &mut out);
        out.into_iter().map(|(m, _)| m).collect()
    }

    #[test]
    fn a_member_costs_twelve_bytes_in_each_replica() {
        // The README's memory figure per member.
        assert_eq!(std::mem::size_of::<Member>(), 12);
    }

    #[test]
    fn round_robin_takes_turns_and_a_leaver_is_skipped() {
        let mut g = SharedGroups::new(SharedStrategy::RoundRobin, 1);
        let share: Arc<str> = "$share/g/a/+".into();
        let k = keys(3);
        for (i, sk) in k.iter().enumerate() {
            assert!(g
                .join_local(i as u16, *sk, &share, SubOpts::qos_only(QoS::AtLeastOnce))
                .is_some());
        }
        assert!(g
            .join_local(0, k[0], &share, SubOpts::qos_only(QoS::AtMostOnce))
            .is_none());
        assert_eq!(
            g.granted(&share, k[0]),
            Some(SubOpts::qos_only(QoS::AtMostOnce))
        );
        let m = msg("p", "a/b");
        let turns: Vec<u16> = (0..6).map(|_| chosen(&g, &m)[0].shard).collect();
        assert_eq!(turns, [0, 1, 2, 0, 1, 2]);
        assert!(chosen(&g, &msg("p", "b")).is_empty(), "no match, no pick");
        let left = g.leave_local(1, k[1], &share).expect("was a member");
        assert!(!left.join);
        assert!(g.leave_local(1, k[1], &share).is_none());
        for _ in 0..4 {
            assert_ne!(chosen(&g, &m)[0].shard, 1);
        }
        assert_eq!(g.pick_in(&share, &m).map(|m| m.shard == 1), Some(false));
        g.leave_local(0, k[0], &share);
        g.leave_local(2, k[2], &share);
        assert!(chosen(&g, &m).is_empty() && g.pick_in(&share, &m).is_none());
        assert!(g.members(&share).is_empty(), "an empty group is forgotten");
        assert!(g.snapshot().is_empty());
    }

    #[test]
    fn replicas_agree_in_order_whatever_the_join_order() {
        let k = keys(4);
        let changes: Vec<MemberChange> = k
            .iter()
            .enumerate()
            .map(|(i, sk)| MemberChange {
                share: "$share/g/t".into(),
                member: Member {
                    shard: (i % 2) as u16,
                    session: *sk,
                },
                join: true,
            })
            .collect();
        let mut a = SharedGroups::new(SharedStrategy::HashClientid, 1);
        let mut b = SharedGroups::new(SharedStrategy::HashClientid, 2);
        changes.iter().for_each(|c| a.apply(c));
        changes.iter().rev().for_each(|c| b.apply(c));
        assert_eq!(a.members("$share/g/t"), b.members("$share/g/t"));
        assert_eq!(a.members("$share/g/t").len(), 4);
        // hash_clientid: one publisher, one member, on every shard.
        for p in ["p1", "p2", "p3"] {
            let m = msg(p, "t");
            assert_eq!(chosen(&a, &m), chosen(&b, &m));
            assert_eq!(chosen(&a, &m), chosen(&a, &m));
        }
    }

    #[test]
    fn sticky_keeps_its_member_until_it_leaves_and_random_covers_all() {
        let share: Arc<str> = "$share/s/#".into();
        let k = keys(3);
        let mut g = SharedGroups::new(SharedStrategy::Sticky, 7);
        for sk in &k {
            g.join_local(0, *sk, &share, SubOpts::qos_only(QoS::AtLeastOnce));
        }
        let m = msg("p", "x");
        let first = chosen(&g, &m)[0];
        assert!((0..20).all(|_| chosen(&g, &m)[0] == first));
        g.leave_local(0, first.session, &share);
        let second = chosen(&g, &m)[0];
        assert_ne!(second, first);
        assert!((0..20).all(|_| chosen(&g, &m)[0] == second));

        let mut r = SharedGroups::new(SharedStrategy::Random, 7);
        for sk in &k {
            r.join_local(0, *sk, &share, SubOpts::qos_only(QoS::AtLeastOnce));
        }
        let seen: std::collections::HashSet<Member> = (0..200).map(|_| chosen(&r, &m)[0]).collect();
        assert_eq!(seen.len(), 3);
    }
}

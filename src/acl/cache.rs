//! A connection's recent publish decisions, so that the publish path does
//! not walk the rules for every message.
//!
//! Owned by the connection (`crate::shard::conns::Conn`, allocated the first
//! time it publishes under an active ACL; boxed, one word when absent) and
//! used by the shard's ACL glue (`crate::protocol::acl`). Per connection, not
//! per session: a decision depends on the username and the peer address,
//! which a new connection to the same session may change.
//!
//! Direct-mapped: [`SLOTS`] slots, a topic's slot chosen by its hash, a new
//! decision replacing whatever held its slot. Bounded in memory (topics
//! longer than [`MAX_TOPIC`] are decided each time, not kept), O(1) per
//! look-up. Each decision is tagged with the generation of the [`Acl`] that
//! made it; asked under another (a reload), the cache empties first.
//!
//! [`Acl`]: super::Acl

use ahash::RandomState;

/// Slots per connection.
pub const SLOTS: usize = 32;
/// The longest topic kept (bytes).
pub const MAX_TOPIC: usize = 256;

/// Fixed keys: a client choosing topics that collide only slows its own cache.
static HASHER: RandomState = RandomState::with_seeds(
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
);

/// Recent topic → allowed decisions of one connection.
#[derive(Debug)]
pub struct DecisionCache {
    generation: u64,
    slots: [Option<(Box<str>, bool)>; SLOTS],
}

impl DecisionCache {
    pub fn new(generation: u64) -> DecisionCache {
        DecisionCache {
            generation,
            slots: Default::default(),
        }
    }

    /// The decision for `topic` under the ACL of `generation`: the kept one,
    /// or `decide()`'s, which is then kept.
    pub fn get_or_decide(
        &mut self,
        generation: u64,
        topic: &str,
        decide: impl FnOnce() -> bool,
    ) -> bool {
        if self.generation != generation {
            self.slots = Default::default();
            self.generation = generation;
        }
        if topic.len() > MAX_TOPIC {
            return decide();
        }
        let slot = &mut self.slots[HASHER.hash_one(topic) as usize % SLOTS];
        if let Some((kept, allowed)) = slot {
            if **kept == *topic {
                return *allowed;
            }
        }
        let allowed = decide();
        *slot = Some((topic.into(), allowed));
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn decides_once_per_topic_and_generation() {
        let mut c = DecisionCache::new(1);
        let calls = Cell::new(0);
        let decide = |v: bool| {
            calls.set(calls.get() + 1);
            v
        };
        assert!(c.get_or_decide(1, "a/b", || decide(true)));
        assert!(c.get_or_decide(1, "a/b", || decide(false)), "kept");
        assert!(!c.get_or_decide(1, "a/c", || decide(false)));
        assert!(!c.get_or_decide(1, "a/c", || decide(true)), "kept");
        assert_eq!(calls.get(), 2);
        // Another ACL: everything is decided again.
        assert!(!c.get_or_decide(2, "a/b", || decide(false)));
        assert!(!c.get_or_decide(2, "a/b", || decide(true)));
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn bounded_and_never_wrong_under_collisions() {
        let mut c = DecisionCache::new(7);
        let calls = Cell::new(0u32);
        // Many more topics than slots, decided by parity of their number.
        for round in 0..3 {
            for i in 0..1000 {
                let topic = format!("t/{i}");
                let got = c.get_or_decide(7, &topic, || {
                    calls.set(calls.get() + 1);
                    i % 2 == 0
                });
                assert_eq!(got, i % 2 == 0, "round {round} topic {topic}");
            }
        }
        assert_eq!(
            c.slots.iter().filter(|s| s.is_some()).count(),
            SLOTS.min(1000)
        );
        assert!(calls.get() > 1000, "collisions are decided again");
        // A long topic is never kept.
        let long = "x".repeat(MAX_TOPIC + 1);
        for _ in 0..2 {
            c.get_or_decide(7, &long, || {
                calls.set(calls.get() + 1);
                true
            });
        }
        assert!(c.slots.iter().flatten().all(|(t, _)| t.len() <= MAX_TOPIC));
    }
}

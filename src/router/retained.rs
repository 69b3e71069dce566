//! Retained messages: one replica per shard.
//!
//! Owned by each shard. The shard that receives a retained PUBLISH applies it
//! to its own replica and broadcasts it over the mesh; every replica applies
//! updates last-writer-wins by message id (ids are time-ordered), so replicas
//! converge even when two shards retain on one topic at once. A delete leaves
//! a short-lived tombstone for that reason. Subscribing reads the local
//! replica: an exact filter is one hash lookup; a wildcard filter walks the
//! [`TopicTree`] kept in step with the map, visiting only the part of the
//! tree the filter reaches.

use crate::message::{Message, MsgId};
use crate::router::topic_tree::TopicTree;
use crate::topic;
use ahash::AHashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// How long a delete's tombstone is kept (µs): far longer than a mesh hop.
const TOMBSTONE_US: u64 = 60_000_000;

/// What applying a retained message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Stored,
    Deleted,
    /// Storing it would go over `max_retained` (a new topic) or `max_retained_bytes`.
    Refused,
    /// An update with a newer id is already here.
    Stale,
}

/// Bytes a stored message counts against the byte budget: payload, topic
/// and MQTT 5 properties.
fn cost(msg: &Message) -> usize {
    msg.held_bytes()
}

/// One shard's replica.
#[derive(Debug)]
pub struct Retained {
    /// Topic → message: exact lookups and last-writer-wins.
    map: AHashMap<Arc<str>, Arc<Message>>,
    /// The same messages by topic level, for wildcard filters.
    tree: TopicTree<Arc<Message>>,
    tombstones: AHashMap<Arc<str>, MsgId>,
    /// Most messages kept.
    max: usize,
    /// Most bytes kept, and the sum of [`cost`] over `map` now.
    max_bytes: usize,
    bytes: usize,
}

impl Retained {
    pub fn new(max: usize, max_bytes: usize) -> Self {
        Retained {
            map: AHashMap::new(),
            tree: TopicTree::new(),
            tombstones: AHashMap::new(),
            max,
            max_bytes,
            bytes: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Payload and topic bytes kept, summed over the stored messages.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Set (non-empty payload) or delete (empty payload) the topic's message.
    pub fn apply(&mut self, msg: &Arc<Message>) -> Applied {
        let stored = self.map.get(&msg.topic);
        let replaced = stored.map(|m| cost(m));
        let last = stored
            .map(|m| m.id)
            .or_else(|| self.tombstones.get(&msg.topic).copied());
        if last.is_some_and(|id| msg.id <= id) {
            return Applied::Stale;
        }
        if msg.payload.is_empty() {
            self.delete(msg);
            return Applied::Deleted;
        }
        if !self.fits(replaced, cost(msg)) {
            return Applied::Refused;
        }
        self.store(msg, replaced.unwrap_or(0));
        Applied::Stored
    }

    /// Whether a message of `new` bytes fits, replacing one of `replaced`
    /// bytes (or taking a new topic when `None`).
    fn fits(&self, replaced: Option<usize>, new: usize) -> bool {
        let count_ok = replaced.is_some() || self.map.len() < self.max;
        count_ok && self.bytes - replaced.unwrap_or(0) + new <= self.max_bytes
    }

    /// Keep `msg` for its topic, in place of a message of `replaced` bytes.
    fn store(&mut self, msg: &Arc<Message>, replaced: usize) {
        if !self.tombstones.is_empty() {
            self.tombstones.remove(&msg.topic);
        }
        self.bytes = self.bytes - replaced + cost(msg);
        // The payload was compacted once where it was published
        // (`Shard::publish_message`), before any shard stored it.
        self.tree.insert(&msg.topic, msg.clone());
        self.map.insert(msg.topic.clone(), msg.clone());
    }

    /// Drop the topic's message (if any) and leave a tombstone.
    fn delete(&mut self, msg: &Message) {
        if let Some(old) = self.map.remove(&msg.topic) {
            self.bytes -= cost(&old);
        }
        self.tree.remove(&msg.topic);
        self.tombstones.insert(msg.topic.clone(), msg.id);
    }

    /// Every retained message whose topic matches `filter`.
    pub fn matching(&self, filter: &str) -> Vec<Arc<Message>> {
        if !topic::has_wildcards(filter) {
            return self.map.get(filter).cloned().into_iter().collect();
        }
        let mut out = Vec::new();
        self.tree.for_each_match(filter, |m| out.push(m.clone()));
        out
    }

    /// Every stored message, in no order (the storage snapshot).
    pub fn all(&self) -> impl Iterator<Item = &Arc<Message>> {
        self.map.values()
    }

    /// Every delete still remembered: topic and the delete's id.
    pub fn tombstones(&self) -> impl Iterator<Item = (&Arc<str>, MsgId)> {
        self.tombstones.iter().map(|(t, id)| (t, *id))
    }

    /// Forget tombstones older than a minute.
    pub fn prune_tombstones(&mut self) {
        if self.tombstones.is_empty() {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        self.tombstones
            .retain(|_, id| id.timestamp_us() + TOMBSTONE_US > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::QoS;
    use crate::message::MsgIdGen;

    fn msg(g: &mut MsgIdGen, topic: &str, payload: &'static [u8]) -> Arc<Message> {
        Arc::new(Message {
            id: g.next_id(),
            topic: topic.into(),
            payload: bytes::Bytes::from_static(payload),
            qos: QoS::AtMostOnce,
            retain: true,
            from: "c".into(),
            props: None,
        })
    }

    /// MQTT 5 properties are held with the message: they count against
    /// `max_retained_bytes` as the payload does.
    #[test]
    fn properties_count_against_the_byte_budget() {
        let mut g = MsgIdGen::new(0, 0);
        let mut r = Retained::new(10, 100);
        let mut m = Message::clone(&msg(&mut g, "a/b", b"1"));
        m.props = Some(Box::new(crate::codec::Properties {
            user_properties: vec![("k".into(), "v".repeat(1000))],
            ..Default::default()
        }));
        assert_eq!(r.apply(&Arc::new(m)), Applied::Refused);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn set_replace_delete_and_limit() {
        let mut g = MsgIdGen::new(0, 0);
        let mut r = Retained::new(2, usize::MAX);
        assert_eq!(r.apply(&msg(&mut g, "a/b", b"1")), Applied::Stored);
        assert_eq!(r.apply(&msg(&mut g, "a/b", b"2")), Applied::Stored);
        assert_eq!(r.matching("a/b")[0].payload.as_ref(), b"2");
        assert_eq!(r.apply(&msg(&mut g, "a/c", b"3")), Applied::Stored);
        assert_eq!(r.apply(&msg(&mut g, "a/d", b"4")), Applied::Refused);
        assert_eq!(r.matching("a/+").len(), 2);
        assert_eq!(r.apply(&msg(&mut g, "a/b", b"")), Applied::Deleted);
        assert!(r.matching("a/b").is_empty());
        assert_eq!(r.len(), 1);
    }

    /// Topics of `msgs`, sorted.
    fn topics(msgs: &[Arc<Message>]) -> Vec<String> {
        let mut t: Vec<String> = msgs.iter().map(|m| m.topic.to_string()).collect();
        t.sort();
        t
    }

    #[test]
    fn tree_stays_in_step_with_the_map() {
        let mut g = MsgIdGen::new(0, 0);
        let mut r = Retained::new(1000, usize::MAX);
        let names = ["a", "a/b", "a//b", "/a", "a/", "$SYS/x", "b/c/d", "a/b/c"];
        for (i, t) in names.iter().cycle().take(40).enumerate() {
            let payload: &'static [u8] = if i % 3 == 0 { b"" } else { b"p" };
            r.apply(&msg(&mut g, t, payload));
            assert_eq!(r.tree.len(), r.map.len());
            assert_eq!(r.bytes(), r.map.values().map(|m| cost(m)).sum::<usize>());
            let stored: Vec<Arc<Message>> = r.map.values().cloned().collect();
            for filter in ["#", "a/#", "+/b", "a/+", "+/+/+", "$SYS/#", "+", "/+"] {
                let want: Vec<Arc<Message>> = stored
                    .iter()
                    .filter(|m| topic::matches(filter, &m.topic))
                    .cloned()
                    .collect();
                assert_eq!(topics(&r.matching(filter)), topics(&want), "{filter}");
            }
        }
    }

    #[test]
    fn byte_budget_is_exact_through_replace_and_delete() {
        let mut g = MsgIdGen::new(0, 0);
        // Each topic is 2 bytes: "t1" with 8 payload bytes costs 10.
        let mut r = Retained::new(100, 25);
        assert_eq!(r.apply(&msg(&mut g, "t1", b"12345678")), Applied::Stored);
        assert_eq!(r.apply(&msg(&mut g, "t2", b"12345678")), Applied::Stored);
        assert_eq!(r.bytes(), 20);
        assert_eq!(r.apply(&msg(&mut g, "t3", b"12345678")), Applied::Refused);
        assert_eq!((r.len(), r.bytes()), (2, 20));
        // A bigger replacement counts the difference: 20 - 10 + 15 is exactly the limit.
        let big = msg(&mut g, "t1", b"1234567890123");
        assert_eq!(r.apply(&big), Applied::Stored);
        assert_eq!(r.bytes(), 25);
        // One byte more is refused and the old message stays.
        assert_eq!(r.apply(&msg(&mut g, "t2", b"123456789")), Applied::Refused);
        assert_eq!(r.matching("t2")[0].payload.as_ref(), b"12345678");
        assert_eq!(r.bytes(), 25);
        // A smaller replacement frees the difference.
        assert_eq!(r.apply(&msg(&mut g, "t2", b"123")), Applied::Stored);
        assert_eq!(r.bytes(), 20);
        assert_eq!(r.apply(&msg(&mut g, "t1", b"")), Applied::Deleted);
        assert_eq!(r.bytes(), 5);
        assert_eq!(r.apply(&msg(&mut g, "zz", b"")), Applied::Deleted);
        assert_eq!(r.bytes(), 5, "deleting an absent topic frees nothing");
        assert_eq!(r.apply(&msg(&mut g, "t3", b"12345678")), Applied::Stored);
        assert_eq!(r.bytes(), 15);
        assert_eq!(r.apply(&msg(&mut g, "t2", b"")), Applied::Deleted);
        assert_eq!(r.apply(&msg(&mut g, "t3", b"")), Applied::Deleted);
        assert_eq!((r.len(), r.bytes()), (0, 0));
    }

    #[test]
    fn last_writer_wins_across_replicas() {
        let mut g0 = MsgIdGen::new(0, 0);
        let older = msg(&mut g0, "t", b"old");
        let delete = msg(&mut g0, "t", b"");
        let mut r = Retained::new(10, usize::MAX);
        // The delete arrives first, the older set afterwards: it must not resurrect.
        assert_eq!(r.apply(&delete), Applied::Deleted);
        assert_eq!(r.apply(&older), Applied::Stale);
        assert_eq!(r.len(), 0);
    }
}

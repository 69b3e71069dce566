//! Topic aliases of one MQTT 5 connection (§3.3.2.3.4), both ways.
//!
//! Owned by the connection's [`ConnV5`](super::conn5::ConnV5), so they live
//! and die with the network connection [MQTT-3.3.2-7]: a new connection
//! starts with none. [`InAliases`] is what the client set (alias → topic),
//! read by the PUBLISH handler (`protocol/publish.rs`); [`OutAliases`] is
//! what the broker assigned (topic → alias), used by the PUBLISH encoder.
//!
//! Outbound, the first `max` topics sent get an alias each, for the life of
//! the connection; later topics go in full, without one. No alias is ever
//! replaced: replacing (least recently used) would cost a scan and the full
//! topic on every miss once the map is full, which is all a client
//! subscribed to a wide wildcard would see; first-come keeps the common case
//! (a few hot topics) at 3 bytes a PUBLISH instead of the topic. The map's
//! entries are 24 bytes (an `Arc<str>` of the message's topic, the alias)
//! plus a control byte per bucket: at most 128 buckets, ~3.2 KB, at the
//! default 64, and the aliased topic strings stay allocated while it lives.

use ahash::AHashMap;
use std::sync::Arc;

/// What the client's aliases made of an inbound PUBLISH's topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AliasError {
    /// Alias 0 or above the broker's Topic Alias Maximum [MQTT-3.3.2-8/9]: 0x94.
    OutOfRange,
    /// An empty topic with an alias the client never set: 0x82.
    Unknown,
}

/// The aliases an MQTT 5 client set towards the broker: alias `n` is
/// `topics[n - 1]` (grown on demand, at most the broker's maximum).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InAliases {
    topics: Vec<Option<Arc<str>>>,
}

impl InAliases {
    /// The topic of an inbound PUBLISH with `topic` (maybe empty) and
    /// `alias`, under the broker's maximum `max`; a topic with an alias
    /// sets or replaces the mapping.
    pub fn resolve(
        &mut self,
        topic: Arc<str>,
        alias: Option<u16>,
        max: u16,
    ) -> Result<Arc<str>, AliasError> {
        let Some(alias) = alias else {
            return Ok(topic);
        };
        if alias == 0 || alias > max {
            return Err(AliasError::OutOfRange);
        }
        let slot = usize::from(alias - 1);
        if topic.is_empty() {
            return self
                .topics
                .get(slot)
                .and_then(Clone::clone)
                .ok_or(AliasError::Unknown);
        }
        if self.topics.len() <= slot {
            self.topics.resize(slot + 1, None);
        }
        self.topics[slot] = Some(topic.clone());
        Ok(topic)
    }
}

/// How one PUBLISH names its topic to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutAlias {
    /// The full topic, no alias (aliases off, or all assigned).
    None,
    /// The full topic with a newly assigned alias.
    New(u16),
    /// An empty topic and the alias the client already knows.
    Known(u16),
}

impl OutAlias {
    /// The Topic Alias property to write.
    pub fn alias(self) -> Option<u16> {
        match self {
            OutAlias::None => None,
            OutAlias::New(a) | OutAlias::Known(a) => Some(a),
        }
    }

    /// The topic to write: empty when the alias stands for it.
    pub fn topic(self, topic: &str) -> &str {
        match self {
            OutAlias::Known(_) => "",
            _ => topic,
        }
    }
}

/// The aliases the broker assigned on this connection, at most `max`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutAliases {
    map: AHashMap<Arc<str>, u16>,
    max: u16,
}

impl OutAliases {
    /// At most `max` aliases: the smaller of the client's Topic Alias
    /// Maximum and `mqtt.max_topic_aliases_out` [MQTT-3.3.2-10].
    pub fn new(max: u16) -> Self {
        OutAliases {
            map: AHashMap::new(),
            max,
        }
    }

    /// How `topic` would go out now (nothing changes).
    pub fn plan(&self, topic: &str) -> OutAlias {
        if self.max == 0 {
            return OutAlias::None;
        }
        match self.map.get(topic) {
            Some(&a) => OutAlias::Known(a),
            None if self.map.len() < usize::from(self.max) => {
                OutAlias::New(self.map.len() as u16 + 1)
            }
            None => OutAlias::None,
        }
    }

    /// How `topic` goes out, assigning a new alias if one is planned.
    pub fn assign(&mut self, topic: &Arc<str>) -> OutAlias {
        let plan = self.plan(topic);
        if let OutAlias::New(a) = plan {
            self.map.insert(topic.clone(), a);
        }
        plan
    }

    /// Aliases assigned so far (tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_set_use_replace_and_refuse() {
        let mut a = InAliases::default();
        // [MQTT-3.3.2-8] alias 0; [MQTT-3.3.2-9] above the maximum.
        assert_eq!(
            a.resolve("t".into(), Some(0), 4),
            Err(AliasError::OutOfRange)
        );
        assert_eq!(
            a.resolve("t".into(), Some(5), 4),
            Err(AliasError::OutOfRange)
        );
        assert_eq!(a.resolve("".into(), Some(2), 4), Err(AliasError::Unknown));
        assert_eq!(a.resolve("a/b".into(), Some(2), 4).as_deref(), Ok("a/b"));
        assert_eq!(a.resolve("".into(), Some(2), 4).as_deref(), Ok("a/b"));
        assert_eq!(a.resolve("c".into(), Some(2), 4).as_deref(), Ok("c"));
        assert_eq!(a.resolve("".into(), Some(2), 4).as_deref(), Ok("c"));
        assert_eq!(a.resolve("".into(), Some(1), 4), Err(AliasError::Unknown));
        assert_eq!(a.resolve("x".into(), None, 0).as_deref(), Ok("x"));
        assert_eq!(
            a.resolve("x".into(), Some(1), 0),
            Err(AliasError::OutOfRange)
        );
    }

    #[test]
    fn outbound_first_come_then_full_topics() {
        let mut o = OutAliases::new(2);
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
        assert_eq!(o.assign(&a), OutAlias::New(1));
        assert_eq!(o.assign(&a), OutAlias::Known(1));
        assert_eq!(o.assign(&b), OutAlias::New(2));
        assert_eq!(o.plan("c"), OutAlias::None);
        assert_eq!(o.assign(&c), OutAlias::None);
        assert_eq!(o.assign(&b), OutAlias::Known(2));
        assert_eq!(o.len(), 2);
        assert_eq!(OutAlias::Known(2).topic("b"), "");
        assert_eq!(OutAlias::New(2).topic("b"), "b");
        assert_eq!(OutAliases::new(0).plan("a"), OutAlias::None);
        // The entry size the module doc's memory figure uses.
        assert_eq!(std::mem::size_of::<(Arc<str>, u16)>(), 24);
    }
}

//! A filter index: exact filters in a hash map, wildcard filters in the trie.
//!
//! Owned by each shard twice: its local subscriptions (filter → sessions) and
//! its replica of the interest table (filter → shards). Most filters in a
//! large deployment name one topic exactly (`devices/42/cmd`); a hash map
//! keyed by the filter's `Arc<str>` — the same allocation the session (or the
//! peer's interest message) already holds — costs one table slot, where a
//! trie path costs a node per level. A publish looks its topic up in the map
//! and walks the (usually small) wildcard trie.

use super::trie::Trie;
use crate::topic::has_wildcards;
use ahash::AHashMap;
use std::sync::Arc;

/// Filter → `V`, matched against topic names.
pub struct FilterIndex<V> {
    exact: AHashMap<Arc<str>, V>,
    wild: Trie<V>,
}

impl<V> Default for FilterIndex<V> {
    fn default() -> Self {
        FilterIndex {
            exact: AHashMap::new(),
            wild: Trie::new(),
        }
    }
}

impl<V> FilterIndex<V> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of filters holding a value.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.exact.len() + self.wild.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value for `filter`, inserting `V::default()` if absent.
    pub fn get_or_insert_default(&mut self, filter: &Arc<str>) -> &mut V
    where
        V: Default,
    {
        if has_wildcards(filter) {
            self.wild.get_or_insert_default(filter)
        } else {
            self.exact.entry(filter.clone()).or_default()
        }
    }

    pub fn get(&self, filter: &str) -> Option<&V> {
        if has_wildcards(filter) {
            self.wild.get(filter)
        } else {
            self.exact.get(filter)
        }
    }

    pub fn get_mut(&mut self, filter: &str) -> Option<&mut V> {
        if has_wildcards(filter) {
            self.wild.get_mut(filter)
        } else {
            self.exact.get_mut(filter)
        }
    }

    pub fn remove(&mut self, filter: &str) -> Option<V> {
        if has_wildcards(filter) {
            self.wild.remove(filter)
        } else {
            self.exact.remove(filter)
        }
    }

    /// Call `f` once for every stored filter matching `topic`.
    pub fn for_each_match<'a>(&'a self, topic: &str, mut f: impl FnMut(&'a V)) {
        if let Some(v) = self.exact.get(topic) {
            f(v);
        }
        if !self.wild.is_empty() {
            self.wild.for_each_match(topic, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::MATCH_CASES;

    #[test]
    fn matches_like_the_spec_table() {
        for &(filter, topic, want) in MATCH_CASES {
            let mut idx: FilterIndex<u32> = FilterIndex::new();
            *idx.get_or_insert_default(&Arc::from(filter)) += 1;
            let mut got = 0;
            idx.for_each_match(topic, |v| got += v);
            assert_eq!(got == 1, want, "{filter:?} vs {topic:?}");
        }
    }

    #[test]
    fn exact_and_wildcard_filters_together() {
        let mut idx: FilterIndex<u32> = FilterIndex::new();
        for (f, v) in [("a/b", 1), ("a/+", 10), ("#", 100), ("a/c", 1000)] {
            *idx.get_or_insert_default(&Arc::from(f)) += v;
        }
        assert_eq!(idx.len(), 4);
        let mut sum = 0;
        idx.for_each_match("a/b", |v| sum += v);
        assert_eq!(sum, 111);
        *idx.get_mut("a/b").unwrap() += 1;
        assert_eq!(idx.remove("a/b"), Some(2));
        assert_eq!(idx.remove("a/+"), Some(10));
        assert_eq!(idx.remove("a/+"), None);
        let mut sum = 0;
        idx.for_each_match("a/b", |v| sum += v);
        assert_eq!(sum, 100);
        idx.remove("#");
        idx.remove("a/c");
        assert!(idx.is_empty());
    }
}

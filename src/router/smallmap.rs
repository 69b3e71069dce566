//! A map that keeps one entry inline and becomes a hash map when it grows.
//!
//! Used where most instances hold one entry but a few hold many: a
//! session's subscriptions (filter → ()), a filter's subscribers in the
//! router's index (session → options) and a trie node's children. A
//! one-entry `AHashMap` costs 64 bytes inline plus a ~100-byte heap block;
//! this holds one entry inline beside a tag (16 bytes for a session key and
//! its options, 24 for a filter), two to [`INLINE`] in a boxed vector, and
//! more in a boxed `AHashMap`, so large sets keep O(1) operations.

use ahash::AHashMap;
use std::borrow::Borrow;
use std::hash::Hash;

/// Entries kept in a vector before switching to a hash map.
pub const INLINE: usize = 8;

/// A small-first map. Iteration order is unspecified.
#[derive(Debug, Clone, Default)]
#[allow(clippy::box_collection)] // one word in the enum, not three
pub enum SmallMap<K, V> {
    #[default]
    Empty,
    One(K, V),
    /// Two to [`INLINE`] entries.
    Few(Box<Vec<(K, V)>>),
    Many(Box<AHashMap<K, V>>),
}

impl<K: Eq + Hash, V> SmallMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        match self {
            SmallMap::Empty => 0,
            SmallMap::One(..) => 1,
            SmallMap::Few(v) => v.len(),
            SmallMap::Many(m) => m.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        match self {
            SmallMap::Empty => None,
            SmallMap::One(k, v) => (k.borrow() == key).then_some(v),
            SmallMap::Few(v) => v.iter().find(|(k, _)| k.borrow() == key).map(|(_, v)| v),
            SmallMap::Many(m) => m.get(key),
        }
    }

    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        match self {
            SmallMap::Empty => None,
            SmallMap::One(k, v) => (<K as Borrow<Q>>::borrow(k) == key).then_some(v),
            SmallMap::Few(v) => v
                .iter_mut()
                .find(|(k, _)| k.borrow() == key)
                .map(|(_, v)| v),
            SmallMap::Many(m) => m.get_mut(key),
        }
    }

    /// The value for `key`, inserting `make()` (with the key from `to_key`) if absent.
    pub fn get_or_insert_with<Q>(
        &mut self,
        key: &Q,
        to_key: impl FnOnce(&Q) -> K,
        make: impl FnOnce() -> V,
    ) -> &mut V
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        if self.get(key).is_none() {
            self.insert(to_key(key), make());
        }
        match self.get_mut(key) {
            Some(v) => v,
            None => unreachable!("inserted above"),
        }
    }

    /// Remove every entry, returning the values.
    pub fn take_values(&mut self) -> Vec<V> {
        match std::mem::take(self) {
            SmallMap::Empty => Vec::new(),
            SmallMap::One(_, v) => vec![v],
            SmallMap::Few(v) => v.into_iter().map(|(_, v)| v).collect(),
            SmallMap::Many(m) => m.into_values().collect(),
        }
    }

    /// Insert or replace; returns the old value.
    pub fn insert(&mut self, key: K, val: V) -> Option<V> {
        match self {
            SmallMap::Empty => {
                *self = SmallMap::One(key, val);
                None
            }
            SmallMap::One(k, v) if *k == key => Some(std::mem::replace(v, val)),
            SmallMap::One(..) => {
                let SmallMap::One(k, v) = std::mem::take(self) else {
                    unreachable!("matched One above")
                };
                *self = SmallMap::Few(Box::new(vec![(k, v), (key, val)]));
                None
            }
            SmallMap::Few(v) => {
                if let Some(slot) = v.iter_mut().find(|(k, _)| *k == key) {
                    return Some(std::mem::replace(&mut slot.1, val));
                }
                if v.len() < INLINE {
                    v.push((key, val));
                    return None;
                }
                let mut m: AHashMap<K, V> = v.drain(..).collect();
                m.insert(key, val);
                *self = SmallMap::Many(Box::new(m));
                None
            }
            SmallMap::Many(m) => m.insert(key, val),
        }
    }

    /// Remove a key, returning the stored key and value.
    pub fn remove_entry<Q>(&mut self, key: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        match self {
            SmallMap::Empty => None,
            SmallMap::One(k, _) if (*k).borrow() != key => None,
            SmallMap::One(..) => match std::mem::take(self) {
                SmallMap::One(k, v) => Some((k, v)),
                _ => unreachable!("matched One above"),
            },
            SmallMap::Few(v) => {
                let pos = v.iter().position(|(k, _)| k.borrow() == key)?;
                let out = v.swap_remove(pos);
                if v.len() == 1 {
                    if let Some((k, v)) = v.pop() {
                        *self = SmallMap::One(k, v);
                    }
                }
                Some(out)
            }
            SmallMap::Many(m) => {
                let out = m.remove_entry(key);
                if m.is_empty() {
                    *self = SmallMap::Empty;
                }
                out
            }
        }
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.remove_entry(key).map(|(_, v)| v)
    }

    /// Call `f` on every entry (no allocation, for the publish path).
    pub fn for_each<'a>(&'a self, mut f: impl FnMut(&'a K, &'a V)) {
        match self {
            SmallMap::Empty => {}
            SmallMap::One(k, v) => f(k, v),
            SmallMap::Few(v) => v.iter().for_each(|(k, v)| f(k, v)),
            SmallMap::Many(m) => m.iter().for_each(|(k, v)| f(k, v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_into_a_hash_map_and_back() {
        let mut m: SmallMap<u32, u32> = SmallMap::new();
        assert_eq!(std::mem::size_of::<SmallMap<u64, u32>>(), 16);
        assert_eq!(std::mem::size_of::<SmallMap<std::sync::Arc<str>, ()>>(), 24);
        for i in 0..INLINE as u32 {
            assert_eq!(m.insert(i, i), None);
            assert_eq!(m.len(), i as usize + 1);
            assert!(matches!(
                (i, &m),
                (0, SmallMap::One(..)) | (1.., SmallMap::Few(_))
            ));
        }
        assert_eq!(m.insert(3, 30), Some(3));
        assert_eq!(m.insert(100, 1), None);
        assert!(matches!(m, SmallMap::Many(_)));
        assert_eq!(m.len(), INLINE + 1);
        assert_eq!(m.get(&3), Some(&30));
        let mut sum = 0;
        m.for_each(|_, v| sum += v);
        assert_eq!(sum, (0..INLINE as u32).sum::<u32>() - 3 + 30 + 1);
        for i in 0..INLINE as u32 {
            assert!(m.remove(&i).is_some());
        }
        assert_eq!(m.remove_entry(&100), Some((100, 1)));
        assert!(m.is_empty());
        assert!(
            matches!(m, SmallMap::Empty),
            "an emptied map frees its table"
        );
        assert_eq!(m.remove(&7), None);
    }

    #[test]
    fn shrinks_back_to_one_inline_entry() {
        let mut m: SmallMap<u32, &str> = SmallMap::new();
        m.insert(1, "a");
        assert_eq!(m.insert(1, "b"), Some("a"), "replaced in place");
        assert_eq!(m.remove(&2), None);
        m.insert(2, "c");
        m.insert(3, "d");
        assert_eq!(m.remove(&1), Some("b"));
        assert!(matches!(m, SmallMap::Few(_)));
        assert_eq!(m.remove(&3), Some("d"));
        assert!(matches!(m, SmallMap::One(2, "c")));
        assert_eq!(m.get(&2), Some(&"c"));
        let mut values = m.take_values();
        values.sort_unstable();
        assert_eq!((values, m.len()), (vec!["c"], 0));
    }

    #[test]
    fn borrowed_lookups() {
        let mut m: SmallMap<std::sync::Arc<str>, u8> = SmallMap::new();
        m.insert("a/b".into(), 1);
        assert_eq!(m.get("a/b"), Some(&1));
        assert_eq!(
            m.remove_entry("a/b").map(|(k, _)| k.to_string()),
            Some("a/b".into())
        );
        assert!(m.is_empty());
    }
}

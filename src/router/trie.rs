//! The topic-filter trie: a map from subscription filter to a value `V`, queried by topic name.
//!
//! Owns the nodes and the values. It holds the wildcard filters of a [`FilterIndex`] (a shard's
//! local subscriptions and its interest replica; exact filters live in the index's hash map):
//! `get_or_insert_default` / `remove` on SUBSCRIBE / UNSUBSCRIBE / session teardown,
//! `for_each_match` on every PUBLISH.
//!
//! Filters are split on '/'. Each node is one filter level:
//!
//! ```text
//!                root ─ hash: "#"            (root '+' and '#' skip "$..." topics)
//!              /   |   \
//!     exact "a"  exact ""  plus ─ value: "+"
//!        │          │
//!   value: "a"   exact "x" ─ value: "/x"
//!   hash:  "a/#"
//!   plus ─┬─ value: "a/+"
//!         └─ exact "b" ─ value: "a/+/b"
//!
//! Node { children: small map level -> Box<Node>, // exact levels
//!        plus:     Option<Box<Node>>,          // the '+' level
//!        hash:     Option<V>,                  // filter "<this node>/#"
//!        value:    Option<V> }                 // filter ending exactly here
//! ```
//!
//! Matching a topic walks its levels from the root, following the exact child and the '+'
//! child of every visited node and reporting each visited node's `hash` (so "a/#" matches "a",
//! "a/b", "a/b/c"), plus the `value` of nodes reached after the last level. Each node is
//! visited at most once, so the cost is proportional to the matching paths, not to the number
//! of filters. Every walk (match, insert, remove, drop) uses an explicit stack or a
//! loop, never recursion: a 65535-byte filter can have 32768 levels.
//!
//! Filters are assumed valid ([`valid_filter`]); an invalid one (e.g. "a/#/b") is stored
//! literally, '#' as an exact level, and can only be reached again by `get` / `remove`.
//!
//! [`valid_filter`]: crate::topic::valid_filter
//! [`FilterIndex`]: crate::router::index::FilterIndex

use crate::router::smallmap::SmallMap;
use smallvec::SmallVec;

/// One filter level. See the module doc.
struct Node<V> {
    /// Boxed children: a node with one child keeps it inline in the small
    /// map, and a wide node's hash table holds pointers, not whole nodes.
    children: SmallMap<Box<str>, Box<Node<V>>>,
    plus: Option<Box<Node<V>>>,
    hash: Option<V>,
    value: Option<V>,
}

impl<V> Node<V> {
    fn new() -> Self {
        Node {
            children: SmallMap::new(),
            plus: None,
            hash: None,
            value: None,
        }
    }

    fn child(&self, level: &str) -> Option<&Node<V>> {
        if level == "+" {
            self.plus.as_deref()
        } else {
            self.children.get(level).map(|b| &**b)
        }
    }

    fn child_mut(&mut self, level: &str) -> Option<&mut Node<V>> {
        if level == "+" {
            self.plus.as_deref_mut()
        } else {
            self.children.get_mut(level).map(|b| &mut **b)
        }
    }

    fn child_or_insert(&mut self, level: &str) -> &mut Node<V> {
        if level == "+" {
            self.plus.get_or_insert_with(|| Box::new(Node::new()))
        } else {
            self.children
                .get_or_insert_with(level, |l| l.into(), || Box::new(Node::new()))
        }
    }

    fn remove_child(&mut self, level: &str) {
        if level == "+" {
            self.plus = None;
        } else {
            self.children.remove(level);
        }
    }

    fn child_count(&self) -> usize {
        self.children.len() + usize::from(self.plus.is_some())
    }

    /// The value slot a filter ends in: `hash` for a trailing '#', else `value`.
    fn slot(&self, hash: bool) -> &Option<V> {
        if hash {
            &self.hash
        } else {
            &self.value
        }
    }

    fn slot_mut(&mut self, hash: bool) -> &mut Option<V> {
        if hash {
            &mut self.hash
        } else {
            &mut self.value
        }
    }

    /// Move the child nodes onto `stack` so they are dropped without recursion.
    fn take_children(&mut self, stack: &mut Vec<Node<V>>) {
        stack.extend(self.children.take_values().into_iter().map(|n| *n));
        if let Some(p) = self.plus.take() {
            stack.push(*p);
        }
    }
}

impl<V> Drop for Node<V> {
    /// Iterative teardown: a deep chain of nodes must not overflow the stack.
    fn drop(&mut self) {
        if self.child_count() == 0 {
            return;
        }
        let mut stack = Vec::new();
        self.take_children(&mut stack);
        while let Some(mut n) = stack.pop() {
            n.take_children(&mut stack);
        }
    }
}

/// A filter split into its node path and the slot it ends in.
///
/// "#" -> (no levels, hash); "a/b/#" -> ("a/b", hash); "a/b" -> ("a/b", value).
fn split_filter(filter: &str) -> (Option<&str>, bool) {
    if filter == "#" {
        (None, true)
    } else if let Some(prefix) = filter.strip_suffix("/#") {
        (Some(prefix), true)
    } else {
        (Some(filter), false)
    }
}

fn levels(path: Option<&str>) -> impl Iterator<Item = &str> {
    path.into_iter().flat_map(|p| p.split('/'))
}

/// A map from topic filter to `V`, matched against topic names. See the module doc.
pub struct Trie<V> {
    root: Node<V>,
    len: usize,
}

impl<V> Trie<V> {
    pub fn new() -> Self {
        Trie {
            root: Node::new(),
            len: 0,
        }
    }

    /// Number of filters holding a value.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn node(&self, path: Option<&str>) -> Option<&Node<V>> {
        let mut node = &self.root;
        for level in levels(path) {
            node = node.child(level)?;
        }
        Some(node)
    }

    fn node_mut(&mut self, path: Option<&str>) -> Option<&mut Node<V>> {
        let mut node = &mut self.root;
        for level in levels(path) {
            node = node.child_mut(level)?;
        }
        Some(node)
    }

    pub fn get(&self, filter: &str) -> Option<&V> {
        let (path, hash) = split_filter(filter);
        self.node(path)?.slot(hash).as_ref()
    }

    pub fn get_mut(&mut self, filter: &str) -> Option<&mut V> {
        let (path, hash) = split_filter(filter);
        self.node_mut(path)?.slot_mut(hash).as_mut()
    }

    /// The value for `filter`, inserting `V::default()` (and the nodes) if absent.
    pub fn get_or_insert_default(&mut self, filter: &str) -> &mut V
    where
        V: Default,
    {
        let (path, hash) = split_filter(filter);
        let mut node = &mut self.root;
        for level in levels(path) {
            node = node.child_or_insert(level);
        }
        let slot = node.slot_mut(hash);
        if slot.is_none() {
            self.len += 1;
        }
        slot.get_or_insert_with(V::default)
    }

    /// Remove the filter's value and prune now-empty nodes.
    pub fn remove(&mut self, filter: &str) -> Option<V> {
        let (path, hash) = split_filter(filter);
        let removed = self.node_mut(path)?.slot_mut(hash).take()?;
        self.len -= 1;
        self.prune(path);
        Some(removed)
    }

    /// Cut the longest tail of `path` made of nodes that hold nothing but the next node.
    fn prune(&mut self, path: Option<&str>) {
        // Pass 1: find the index of the first level from whose node on every node down to the
        // end of the path is removable (the root itself is never removed).
        let mut cut: Option<usize> = None;
        let mut node = &self.root;
        for (depth, level) in levels(path).enumerate() {
            let Some(next) = node.child(level) else {
                return;
            };
            node = next;
            let chain_only = node.value.is_none() && node.hash.is_none() && node.child_count() <= 1;
            match (chain_only, cut) {
                (true, None) => cut = Some(depth),
                (false, _) => cut = None,
                (true, Some(_)) => {}
            }
        }
        // The last node must be entirely empty (no children at all).
        let Some(cut) = cut.filter(|_| node.child_count() == 0) else {
            return;
        };
        // Pass 2: walk to the parent of the first removable node and drop the link.
        let mut parent = &mut self.root;
        let mut levels = levels(path);
        for level in levels.by_ref().take(cut) {
            match parent.child_mut(level) {
                Some(next) => parent = next,
                None => return,
            }
        }
        if let Some(level) = levels.next() {
            parent.remove_child(level);
        }
    }

    /// Call `f(filter_value)` once for every stored filter that matches `topic` (exact topic name, no wildcards).
    pub fn for_each_match<'a>(&'a self, topic: &str, mut f: impl FnMut(&'a V)) {
        let levels: SmallVec<[&str; 16]> = topic.split('/').collect();
        // [MQTT-4.7.2-1]: '+' and '#' at the first level do not match "$..." topics.
        let dollar = topic.starts_with('$');
        let mut stack: SmallVec<[(&'a Node<V>, usize); 16]> = SmallVec::new();
        stack.push((&self.root, 0));
        while let Some((node, depth)) = stack.pop() {
            let wild_ok = !(dollar && depth == 0);
            if wild_ok {
                if let Some(v) = &node.hash {
                    f(v);
                }
            }
            let Some(level) = levels.get(depth) else {
                if let Some(v) = &node.value {
                    f(v);
                }
                continue;
            };
            if let Some(child) = node.children.get(*level) {
                stack.push((&**child, depth + 1));
            }
            if wild_ok {
                if let Some(plus) = &node.plus {
                    stack.push((plus, depth + 1));
                }
            }
        }
    }
}

impl<V> Default for Trie<V> {
    fn default() -> Self {
        Trie::new()
    }
}

#[cfg(test)]
impl<V> Trie<V> {
    /// Nodes below the root (0 for an empty, fully pruned trie).
    fn node_count(&self) -> usize {
        let mut count = 0;
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            node.children.for_each(|_, c| stack.push(&**c));
            stack.extend(node.plus.as_deref());
            count += node.child_count();
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::{matches, valid_filter, valid_topic_name};

    /// Filters matching `topic`, sorted.
    fn matching(trie: &Trie<String>, topic: &str) -> Vec<String> {
        let mut out = Vec::new();
        trie.for_each_match(topic, |v| out.push(v.clone()));
        out.sort();
        out
    }

    fn trie_of(filters: &[&str]) -> Trie<String> {
        let mut trie = Trie::new();
        for f in filters {
            *trie.get_or_insert_default(f) = f.to_string();
        }
        trie
    }

    #[test]
    fn spec_examples() {
        let cases = crate::topic::MATCH_CASES;
        for &(filter, topic, want) in cases {
            assert_eq!(matches(filter, topic), want, "matches {filter:?} {topic:?}");
            let trie = trie_of(&[filter]);
            let got = !matching(&trie, topic).is_empty();
            assert_eq!(got, want, "trie {filter:?} {topic:?}");
        }
        // All at once: each filter reported exactly once.
        let filters: Vec<&str> = cases.iter().map(|c| c.0).collect();
        let trie = trie_of(&filters);
        for &(_, topic, _) in cases {
            let mut want: Vec<String> = filters
                .iter()
                .filter(|f| matches(f, topic))
                .map(|f| f.to_string())
                .collect();
            want.sort();
            want.dedup();
            assert_eq!(matching(&trie, topic), want, "topic {topic:?}");
        }
    }

    #[test]
    fn get_insert_len() {
        let mut trie: Trie<u32> = Trie::default();
        assert!(trie.is_empty());
        *trie.get_or_insert_default("a/b") += 1;
        *trie.get_or_insert_default("a/b") += 1;
        *trie.get_or_insert_default("a/#") += 5;
        *trie.get_or_insert_default("#") += 7;
        *trie.get_or_insert_default("a/+") += 9;
        assert_eq!(trie.len(), 4);
        assert_eq!(trie.get("a/b"), Some(&2));
        assert_eq!(trie.get("a/#"), Some(&5));
        assert_eq!(trie.get("#"), Some(&7));
        assert_eq!(trie.get("a/+"), Some(&9));
        assert_eq!(trie.get("a"), None);
        assert_eq!(trie.get("a/b/c"), None);
        assert_eq!(trie.get("+"), None);
        if let Some(v) = trie.get_mut("a/+") {
            *v = 10;
        }
        assert_eq!(trie.get("a/+"), Some(&10));
        assert!(trie.get_mut("x").is_none());
    }

    #[test]
    fn remove_prunes() {
        let filters = [
            "a/b/c", "a/b", "a/#", "a/+/c", "#", "+", "/", "//", "a//b", "$SYS/#", "x/y/z/w",
        ];
        let mut trie = trie_of(&filters);
        assert_eq!(trie.len(), filters.len());
        assert_eq!(trie.remove("not/there"), None);
        assert_eq!(trie.remove("a/b/c/d"), None);
        assert_eq!(trie.remove("a"), None);
        assert_eq!(trie.len(), filters.len());
        // Removing a prefix filter keeps the longer one reachable.
        assert_eq!(trie.remove("a/b").as_deref(), Some("a/b"));
        assert_eq!(trie.get("a/b/c").map(String::as_str), Some("a/b/c"));
        assert_eq!(matching(&trie, "a/b/c"), ["#", "a/#", "a/+/c", "a/b/c"]);
        assert_eq!(trie.remove("a/b"), None);
        for f in filters.iter().filter(|f| **f != "a/b") {
            assert_eq!(trie.remove(f).as_deref(), Some(*f), "{f}");
        }
        assert_eq!(trie.len(), 0);
        assert!(trie.is_empty());
        assert_eq!(trie.node_count(), 0);
        assert!(matching(&trie, "a/b/c").is_empty());
    }

    #[test]
    fn deep_filters_do_not_recurse() {
        let deep = vec!["+"; 30_000].join("/");
        let topic = vec!["x"; 30_000].join("/");
        let mut trie = trie_of(&[deep.as_str()]);
        assert_eq!(matching(&trie, &topic).len(), 1);
        assert_eq!(trie.len(), 1);
        let keep = trie_of(&[deep.as_str()]);
        assert!(trie.remove(&deep).is_some());
        assert_eq!(trie.node_count(), 0);
        drop(keep);
    }

    /// xorshift64*: a tiny deterministic PRNG so the test needs no crates.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const WORDS: [&str; 5] = ["a", "b", "", "$s", "c"];

    fn random_topic(rng: &mut Rng) -> String {
        let n = 1 + rng.below(4);
        let levels: Vec<&str> = (0..n).map(|_| WORDS[rng.below(WORDS.len())]).collect();
        levels.join("/")
    }

    fn random_filter(rng: &mut Rng) -> String {
        let n = 1 + rng.below(4);
        let mut levels: Vec<&str> = (0..n)
            .map(|_| match rng.below(4) {
                0 => "+",
                _ => WORDS[rng.below(WORDS.len())],
            })
            .collect();
        if rng.below(4) == 0 {
            levels.push("#");
        }
        levels.join("/")
    }

    #[test]
    fn random_against_brute_force() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut hits = 0;
        for _round in 0..5 {
            let filters: Vec<String> = (0..300)
                .map(|_| random_filter(&mut rng))
                .filter(|f| valid_filter(f))
                .collect();
            assert!(filters.len() > 250);
            let mut trie = Trie::new();
            for f in &filters {
                *trie.get_or_insert_default(f) = f.clone();
            }
            let mut distinct = filters.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(trie.len(), distinct.len());
            for _ in 0..300 {
                let topic = random_topic(&mut rng);
                if !valid_topic_name(&topic) {
                    continue;
                }
                let want: Vec<String> = distinct
                    .iter()
                    .filter(|f| matches(f, &topic))
                    .cloned()
                    .collect();
                hits += want.len();
                assert_eq!(matching(&trie, &topic), want, "topic {topic:?}");
            }
            // Remove half, re-check, then the rest.
            let (gone, kept) = distinct.split_at(distinct.len() / 2);
            for f in gone {
                assert_eq!(trie.remove(f).as_ref(), Some(f));
            }
            for _ in 0..100 {
                let topic = random_topic(&mut rng);
                let want: Vec<String> = kept
                    .iter()
                    .filter(|f| matches(f, &topic))
                    .cloned()
                    .collect();
                assert_eq!(matching(&trie, &topic), want, "topic {topic:?}");
            }
            for f in kept {
                assert_eq!(trie.remove(f).as_ref(), Some(f));
            }
            assert_eq!(trie.len(), 0);
            assert_eq!(trie.node_count(), 0);
        }
        assert!(hits > 1000, "too few matches to mean anything: {hits}");
    }
}

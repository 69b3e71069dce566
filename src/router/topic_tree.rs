//! The retained-topic tree: a map from topic name to a value `V`, queried by topic filter.
//!
//! The reverse of [`Trie`] (filter → value, queried by topic). Owned by [`Retained`], which
//! keeps it in step with its topic → message map: `insert` / `remove` when a retained message
//! is stored or deleted, `for_each_match` when a wildcard SUBSCRIBE reads the store.
//!
//! Topics are split on '/'. Each node is one topic level; a node holds a value when a stored
//! topic ends there:
//!
//! ```text
//!                 root                    topics: "a", "a/b", "a/c/d", "a//x", "$SYS/n"
//!            /      |       \
//!       "a": value  "$SYS"   ...
//!      /    |     \      \
//!   "b"    "c"    ""     "n": value
//!  value    |      |
//!          "d"    "x"
//!         value  value
//!
//! Node { children: small map level -> Box<Node>,
//!        value:    Option<V> }                 // topic ending exactly here
//! ```
//!
//! Matching a filter walks its levels from the root: an exact level follows that one child,
//! '+' visits every child, '#' reports the node it stands under (so "a/#" matches "a") and
//! every node below it. '+' and '#' as the first filter level skip root children starting
//! with '$' [MQTT-4.7.2-1]. Each node is visited at most once per query, so the cost is the
//! part of the tree the filter reaches, not the number of topics: "x/+/y" on a store without
//! an "x" looks at the root only. Every walk (match, insert, remove, drop) is a loop or uses
//! an explicit stack, never recursion: a 65535-byte name can have 32768 levels.
//!
//! Removing a topic unlinks the nodes that held only the path to it, so a churn of topics
//! leaves no empty nodes behind. Topics are assumed valid names
//! ([`valid_topic_name`]: no '+' or '#'); filters valid filters ([`valid_filter`]).
//!
//! [`Trie`]: crate::router::trie::Trie
//! [`Retained`]: crate::router::retained::Retained
//! [`valid_topic_name`]: crate::topic::valid_topic_name
//! [`valid_filter`]: crate::topic::valid_filter

use crate::router::smallmap::SmallMap;
use smallvec::SmallVec;

/// One topic level. See the module doc.
struct Node<V> {
    children: SmallMap<Box<str>, Box<Node<V>>>,
    value: Option<V>,
}

impl<V> Node<V> {
    fn new() -> Self {
        Node {
            children: SmallMap::new(),
            value: None,
        }
    }

    /// Nothing stored here and nothing below: the node can go.
    fn is_empty(&self) -> bool {
        self.value.is_none() && self.children.is_empty()
    }

    /// A node on a topic's path that must stay when that topic's tail is cut: it holds a
    /// value or leads somewhere else too.
    fn is_fork(&self) -> bool {
        self.value.is_some() || self.children.len() > 1
    }
}

impl<V> Drop for Node<V> {
    /// Iterative teardown: a deep chain of nodes must not overflow the stack.
    fn drop(&mut self) {
        if self.children.is_empty() {
            return;
        }
        let mut pending = self.children.take_values();
        while let Some(mut node) = pending.pop() {
            pending.extend(node.children.take_values());
        }
    }
}

/// Where a query stands at a node: the index of the next filter level to
/// match, or inside a '#' (every node below is reported).
#[derive(Clone, Copy)]
enum Step {
    Level(usize),
    All,
}

/// A map from topic name to `V`, matched against topic filters. See the module doc.
pub struct TopicTree<V> {
    root: Node<V>,
    len: usize,
}

impl<V> TopicTree<V> {
    pub fn new() -> Self {
        TopicTree {
            root: Node::new(),
            len: 0,
        }
    }

    /// Store `value` for `topic`, returning the value it replaces.
    pub fn insert(&mut self, topic: &str, value: V) -> Option<V> {
        let mut node = &mut self.root;
        for level in topic.split('/') {
            node = &mut **node.children.get_or_insert_with(
                level,
                |l| l.into(),
                || Box::new(Node::new()),
            );
        }
        let old = node.value.replace(value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Remove `topic`'s value and unlink the nodes that only led to it.
    pub fn remove(&mut self, topic: &str) -> Option<V> {
        let mut node = &mut self.root;
        for level in topic.split('/') {
            node = &mut **node.children.get_mut(level)?;
        }
        let removed = node.value.take()?;
        self.len -= 1;
        if node.children.is_empty() {
            self.cut_tail(topic);
        }
        Some(removed)
    }

    /// Unlink the empty end of `topic`'s path: below its deepest fork (or the root).
    fn cut_tail(&mut self, topic: &str) {
        // Levels above the cut: the child for level `keep` of the node reached
        // after `keep` levels is the first node to go.
        let mut keep = 0;
        let mut node = &self.root;
        for (depth, level) in topic.split('/').enumerate() {
            if node.is_fork() {
                keep = depth;
            }
            match node.children.get(level) {
                Some(child) => node = &**child,
                None => return,
            }
        }
        if !node.is_empty() {
            return;
        }
        let mut levels = topic.split('/');
        let mut parent = &mut self.root;
        for level in levels.by_ref().take(keep) {
            match parent.children.get_mut(level) {
                Some(child) => parent = &mut **child,
                None => return,
            }
        }
        if let Some(level) = levels.next() {
            parent.children.remove(level);
        }
    }

    /// Call `f(value)` once for every stored topic that `filter` matches.
    ///
    /// Returns the number of nodes visited: the cost of the query, which is the part of the
    /// tree the filter reaches, not the number of topics stored.
    pub fn for_each_match<'a>(&'a self, filter: &str, mut f: impl FnMut(&'a V)) -> usize {
        let levels: SmallVec<[&str; 16]> = filter.split('/').collect();
        let mut stack: SmallVec<[(&'a Node<V>, Step); 16]> = SmallVec::new();
        stack.push((&self.root, Step::Level(0)));
        let mut visited = 0;
        while let Some((node, step)) = stack.pop() {
            visited += 1;
            let depth = match step {
                Step::All => {
                    report_and_descend(node, false, &mut stack, &mut f);
                    continue;
                }
                Step::Level(depth) => depth,
            };
            // [MQTT-4.7.2-1]: a first-level wildcard does not reach "$..." topics.
            let skip_dollar = depth == 0;
            match levels.get(depth).copied() {
                None => node.value.iter().for_each(&mut f),
                Some("#") => report_and_descend(node, skip_dollar, &mut stack, &mut f),
                Some("+") => node.children.for_each(|level, child| {
                    if !(skip_dollar && level.starts_with('$')) {
                        stack.push((&**child, Step::Level(depth + 1)));
                    }
                }),
                Some(level) => {
                    if let Some(child) = node.children.get(level) {
                        stack.push((&**child, Step::Level(depth + 1)));
                    }
                }
            }
        }
        visited
    }
}

/// Inside a '#': report `node`'s value and queue every child for the same.
fn report_and_descend<'a, V>(
    node: &'a Node<V>,
    skip_dollar: bool,
    stack: &mut SmallVec<[(&'a Node<V>, Step); 16]>,
    f: &mut impl FnMut(&'a V),
) {
    node.value.iter().for_each(&mut *f);
    node.children.for_each(|level, child| {
        if !(skip_dollar && level.starts_with('$')) {
            stack.push((&**child, Step::All));
        }
    });
}

/// The size only: printing the nodes would recurse as deep as a topic.
impl<V> std::fmt::Debug for TopicTree<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicTree").field("len", &self.len).finish()
    }
}

impl<V> Default for TopicTree<V> {
    fn default() -> Self {
        TopicTree::new()
    }
}

#[cfg(test)]
impl<V> TopicTree<V> {
    /// Number of topics holding a value.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value stored for exactly `topic`.
    fn get(&self, topic: &str) -> Option<&V> {
        let mut node = &self.root;
        for level in topic.split('/') {
            node = &**node.children.get(level)?;
        }
        node.value.as_ref()
    }

    /// Nodes below the root (0 for an empty, fully pruned tree).
    fn node_count(&self) -> usize {
        let mut count = 0;
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            node.children.for_each(|_, c| stack.push(&**c));
            count += node.children.len();
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::{matches, valid_filter, valid_topic_name, MATCH_CASES};
    use proptest::prelude::*;

    fn tree_of(topics: &[&str]) -> TopicTree<String> {
        let mut tree = TopicTree::new();
        for t in topics {
            tree.insert(t, t.to_string());
        }
        tree
    }

    /// Topics matching `filter`, sorted.
    fn matching(tree: &TopicTree<String>, filter: &str) -> Vec<String> {
        let mut out = Vec::new();
        tree.for_each_match(filter, |t| out.push(t.clone()));
        out.sort();
        out
    }

    /// `topics` that `filter` matches by the reference matcher, sorted and distinct.
    fn brute_force(topics: &[String], filter: &str) -> Vec<String> {
        let mut want: Vec<String> = topics
            .iter()
            .filter(|t| matches(filter, t))
            .cloned()
            .collect();
        want.sort();
        want.dedup();
        want
    }

    #[test]
    fn spec_examples() {
        for &(filter, topic, want) in MATCH_CASES {
            if !valid_topic_name(topic) {
                continue; // "+" vs "": not a topic a client can publish to
            }
            let tree = tree_of(&[topic]);
            let got = !matching(&tree, filter).is_empty();
            assert_eq!(got, want, "tree {filter:?} {topic:?}");
        }
        // All at once: each topic reported exactly once per filter.
        let topics: Vec<String> = MATCH_CASES
            .iter()
            .map(|c| c.1.to_string())
            .filter(|t| valid_topic_name(t))
            .collect();
        let tree = tree_of(&topics.iter().map(String::as_str).collect::<Vec<_>>());
        for &(filter, _, _) in MATCH_CASES {
            assert_eq!(
                matching(&tree, filter),
                brute_force(&topics, filter),
                "{filter:?}"
            );
        }
    }

    #[test]
    fn empty_levels_and_parent_of_hash() {
        let tree = tree_of(&["a", "a/", "a//b", "/a", "/", "a/b", "$x", "$x/a"]);
        assert_eq!(matching(&tree, "a/#"), ["a", "a/", "a//b", "a/b"]);
        assert_eq!(matching(&tree, "a/+"), ["a/", "a/b"]);
        assert_eq!(matching(&tree, "a/+/b"), ["a//b"]);
        assert_eq!(matching(&tree, "+/a"), ["/a"]);
        assert_eq!(matching(&tree, "+/+"), ["/", "/a", "a/", "a/b"]);
        assert_eq!(matching(&tree, "+"), ["a"]);
        assert_eq!(matching(&tree, "#").len(), 6);
        assert_eq!(matching(&tree, "$x/#"), ["$x", "$x/a"]);
        assert_eq!(matching(&tree, "$x/+"), ["$x/a"]);
        assert_eq!(matching(&tree, "/"), ["/"]);
        assert_eq!(matching(&tree, "a//b"), ["a//b"]);
    }

    #[test]
    fn insert_get_replace_remove_prunes() {
        let topics = ["a/b/c", "a/b", "a", "/", "//", "a//b", "$SYS/x", "x/y/z/w"];
        let mut tree = tree_of(&topics);
        assert_eq!(tree.len(), topics.len());
        assert_eq!(tree.insert("a/b", "again".into()).as_deref(), Some("a/b"));
        assert_eq!(tree.len(), topics.len());
        assert_eq!(tree.get("a/b").map(String::as_str), Some("again"));
        assert_eq!(tree.get("a/b/c/d"), None);
        assert_eq!(tree.get("x/y"), None);
        assert_eq!(tree.remove("x/y"), None, "an inner node holds no value");
        assert_eq!(tree.remove("not/there"), None);
        assert_eq!(tree.remove("a/b/c/d"), None);
        assert_eq!(tree.len(), topics.len());
        // Removing a prefix topic keeps the longer one.
        assert_eq!(tree.remove("a/b").as_deref(), Some("again"));
        assert_eq!(matching(&tree, "a/#"), ["a", "a//b", "a/b/c"]);
        for t in topics.iter().filter(|t| **t != "a/b") {
            assert_eq!(tree.remove(t).as_deref(), Some(*t), "{t}");
        }
        assert!(tree.is_empty());
        assert_eq!(tree.node_count(), 0);
        assert!(matching(&tree, "#").is_empty());
    }

    #[test]
    fn churn_leaves_no_nodes() {
        let mut tree = TopicTree::default();
        for round in 0..50 {
            for i in 0..100 {
                tree.insert(&format!("r/{round}/{i}/leaf"), i);
            }
            for i in 0..100 {
                assert_eq!(tree.remove(&format!("r/{round}/{i}/leaf")), Some(i));
            }
            assert_eq!(tree.node_count(), 0);
        }
    }

    #[test]
    fn deep_topics_and_filters_do_not_recurse() {
        let topic = vec!["x"; 30_000].join("/");
        let mut tree = tree_of(&[topic.as_str()]);
        let plus = vec!["+"; 30_000].join("/");
        assert_eq!(matching(&tree, &plus).len(), 1);
        assert_eq!(matching(&tree, "#").len(), 1);
        assert_eq!(
            matching(&tree, &format!("{}/#", vec!["x"; 29_999].join("/"))).len(),
            1
        );
        let keep = tree_of(&[topic.as_str()]);
        assert!(tree.remove(&topic).is_some());
        assert_eq!(tree.node_count(), 0);
        drop(keep);
    }

    #[test]
    fn a_missing_wildcard_branch_costs_a_few_nodes() {
        let mut tree = TopicTree::new();
        for i in 0..20_000 {
            tree.insert(&format!("sensors/{}/{i}/temp", i % 100), i);
        }
        let misses = [
            "nothing/#",
            "+/nothing/#",
            "sensors/nothing/+/temp",
            "sensors/7/nothing/#",
            "$SYS/#",
            "nothing/+/+/#",
        ];
        for filter in misses {
            let mut hits = 0;
            let visited = tree.for_each_match(filter, |_| hits += 1);
            assert_eq!(hits, 0, "{filter}");
            assert!(visited <= 3, "{filter}: {visited} nodes");
        }
        // A '+' visits its whole level: here the 200 topics under "sensors/7".
        let visited = tree.for_each_match("sensors/7/+/nothing", |_| panic!("no match"));
        assert!(visited <= 3 + 200, "{visited}");
        // A narrow hit costs its own subtree only.
        let mut hits = 0;
        let v = tree.for_each_match("sensors/7/+/temp", |_| hits += 1);
        assert_eq!(hits, 200);
        assert!(v <= 3 + 2 * 200, "{v}");
    }

    static WORDS: [&str; 6] = ["a", "b", "", "$s", "c", "$"];

    /// A valid topic name of 1 to 5 levels from a few words, empty and '$' levels included.
    fn topic() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(&WORDS[..]), 1..6)
            .prop_map(|levels| levels.join("/"))
            .prop_filter("a topic name", |t| valid_topic_name(t))
    }

    /// A valid filter: those levels or '+', and '#' after any prefix of them, none included.
    fn filter() -> impl Strategy<Value = String> {
        let level = prop_oneof![prop::sample::select(&WORDS[..]), Just("+")];
        let levels = prop::collection::vec(level, 1..6);
        (levels, prop::option::of(0..6usize))
            .prop_map(|(mut levels, hash_at)| {
                if let Some(at) = hash_at {
                    levels.truncate(at);
                    levels.push("#");
                }
                levels.join("/")
            })
            .prop_filter("a filter", |f| valid_filter(f))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn matches_like_topic_matches(
            topics in prop::collection::vec(topic(), 0..150),
            filters in prop::collection::vec(filter(), 1..30),
        ) {
            let mut tree = TopicTree::new();
            for t in &topics {
                tree.insert(t, t.clone());
            }
            let mut distinct = topics.clone();
            distinct.sort();
            distinct.dedup();
            prop_assert_eq!(tree.len(), distinct.len());
            for f in &filters {
                prop_assert_eq!(matching(&tree, f), brute_force(&distinct, f), "{}", f);
            }
            // Remove half, re-check, then the rest: nothing may be left behind.
            let (gone, kept) = distinct.split_at(distinct.len() / 2);
            for t in gone {
                prop_assert_eq!(tree.remove(t), Some(t.clone()));
            }
            for f in &filters {
                prop_assert_eq!(matching(&tree, f), brute_force(kept, f), "{}", f);
            }
            for t in kept {
                prop_assert_eq!(tree.remove(t), Some(t.clone()));
            }
            prop_assert_eq!(tree.node_count(), 0);
        }
    }
}

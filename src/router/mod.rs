//! Routing state: topic names and filters, the subscription trie (used both
//! for a shard's local subscriptions and for its replica of the interest
//! table), and the retained message store.
pub mod index;
pub mod retained;
pub mod smallmap;
pub mod topic;
pub mod trie;

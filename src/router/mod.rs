//! Topic names and filters, the subscription trie, the interest table and retained messages.
pub mod topic;
pub mod trie;

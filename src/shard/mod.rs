//! Shards: one pinned executor each.
pub mod wheel;

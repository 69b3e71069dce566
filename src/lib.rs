//! coremq: a thread-per-core, shared-nothing MQTT broker on io_uring (glommio).
//!
//! TEMPORARY build shim on branch `bench` (main's lib.rs at a4e63c1 does not
//! compile: it misses `config`, `message`, `conn`, ... declarations). Only the
//! self-contained modules the load tool and micro-benchmarks need are compiled
//! here. When merging, keep main's lib.rs and add `pub mod bench;`.
pub mod bench;
pub mod codec;
/// Topic names/filters and the subscription trie (micro-benchmarked).
pub mod router {
    pub mod topic;
    pub mod trie;
}
/// The pending queue (micro-benchmarked).
pub mod session {
    pub mod mqueue;
}
/// The timer wheel (micro-benchmarked).
pub mod shard {
    pub mod wheel;
}

//! coremq: a thread-per-core, shared-nothing MQTT broker on io_uring (glommio).
//!
//! # Architecture in brief
//! * One pinned glommio executor per configured core: a **shard**
//!   ([`shard::Shard`]). Every shard listens on the same port (SO_REUSEPORT);
//!   the kernel spreads accepts.
//! * A client's **home shard** is `fnv1a(client_id) % shards`. The accepting
//!   shard decodes the CONNECT and, if it is not home, hands the socket over
//!   (the detached [`transport::Transport`] + bytes read) through the mesh. From then on the connection and
//!   its session live on the home shard: takeover and resume are
//!   single-threaded state changes.
//! * Shards share nothing mutable. They talk through an N×N mesh of bounded
//!   SPSC mailboxes carrying batches ([`shard::mesh`]).
//! * Each shard keeps a subscription trie of its own sessions and a replica of
//!   the **interest table** (filter → shards with subscribers). A publish is
//!   fanned out locally and sent **once per interested shard**, not per
//!   subscriber; the payload is an `Arc`-shared `Bytes`, never copied.
//! * Sessions follow the seeds: inflight window, pending mqueue with a drop
//!   policy, awaiting-PUBREL set, retry with DUP, 128-bit time-ordered ids.
//! * Timers (keepalive, retry, expiry, connect timeout) live in one timer
//!   wheel per shard, not one glommio Timer per connection.
//! * The protocol layers (codec, session, router, protocol handlers) are plain
//!   synchronous code; only `conn`, `listener`, `shard::mesh`/`tick` await.
//!
//! # Modules
//! `config` (TOML) · `broker` (start/stop) · `codec` (MQTT 3.1/3.1.1) ·
//! `protocol` (packet handlers) · `session` (window, queue) · `router`
//! (topics, trie, retained) · `shard` (state, mesh, wheel, tick) · `conn`
//! (connection task) · `transport` (the byte stream under it, and its
//! handoff) · `listener` · `hooks` · `metrics` · `message` · `sys`.

pub mod broker;
pub mod codec;
pub mod config;
pub(crate) mod conn;
pub(crate) mod conn_limit;
pub mod hooks;
pub mod host;
pub(crate) mod listener;
pub mod message;
pub mod metrics;
pub(crate) mod protocol;
pub(crate) mod router;
pub(crate) mod session;
pub(crate) mod shard;
pub(crate) mod slab;
pub mod topic;
pub(crate) mod transport;

pub use broker::{Broker, BrokerHandle, StartError};
pub use config::Config;
pub use hooks::Hooks;
pub use shard::home_shard;

/// Internal types the micro-benchmarks in `benches/` time directly. Not a
/// stable API: embedders use [`Broker`], [`Config`], [`Hooks`] and the codec.
#[doc(hidden)]
pub mod bench_api {
    pub use crate::router::trie::Trie;
    pub use crate::session::inflight::{Inflight, Phase};
    pub use crate::session::mqueue::{DropPolicy, MQueue};
    pub use crate::session::Delivery;
}

//! coremq: a thread-per-core, shared-nothing MQTT broker on io_uring (glommio).
//!
//! The public API is [`Broker`] (configure, hook, start, stop), [`Config`],
//! [`Hooks`] (with the MQTT 5 authenticators of [`auth`]), the wire
//! [`codec`], [`topic`] validation and matching, [`metrics`], the [`host`]
//! checks the binaries use, and [`home_shard`].
//! Everything else is the broker's inside, `pub(crate)`.
//!
//! # Architecture in brief
//! * One pinned glommio executor per configured core: a **shard**. Every
//!   shard listens on the same port (SO_REUSEPORT); the kernel spreads accepts.
//! * A client's **home shard** is [`home_shard`]`(client_id, shards)`. The
//!   accepting shard decodes the CONNECT and, if it is not home, hands the
//!   socket over (the detached transport + bytes read) through the mesh. From
//!   then on the connection and its session live on the home shard: takeover
//!   and resume are single-threaded state changes.
//! * A shard is made of **owned parts**, each with private state: connections
//!   (outbox, keepalive, held acks, the phase `AwaitingConnect →
//!   Connected{session} → Closing`), sessions (by client id: filters, window,
//!   queue, awaiting-PUBREL, will, expiry), router (local index with the
//!   granted QoS, interest replica, retained replica), mesh (mailboxes,
//!   barriers), timers (one wheel), fan-out, and the journal.
//! * **One door for durable state**: every change that must survive a restart
//!   is one function of the sessions part (or the shard's retained apply),
//!   which emits a typed session event; replaying the events into an empty
//!   shard rebuilds the same state (a property test checks it).
//! * Shards share nothing mutable. They talk through an N×N mesh of bounded
//!   SPSC mailboxes carrying batches. A publish is fanned out locally and sent
//!   **once per interested shard**; the payload is an `Arc`-shared `Bytes`.
//! * The codec, sessions, router and protocol handlers are plain synchronous
//!   code (unit-tested through a sans-IO harness); only the connection task,
//!   the listener, the mesh tasks, the fan-out task and the tick task await.
//!
//! # One PUBLISH
//! 1. `conn.rs` reads into the shard's scratch buffer and decodes (`codec/`).
//! 2. `protocol/mod.rs` `on_packet` → `protocol/publish.rs` `on_publish`.
//! 3. `publish_message`: one `Arc<Message>` (`message.rs`), hooks, retained.
//! 4. `protocol/deliver.rs` `route`: `router/` local hits and interested peers.
//! 5. `deliver` per session: outbox, window (event) or queue (event).
//! 6. `protocol/acks.rs`: the ack, now or behind a barrier.
//! 7. `shard/mesh.rs`: one batch per peer; the peer delivers as in step 5.
//! 8. `conn.rs` writes each outbox; `after_write` refills the window.
//! 9. The subscriber's PUBACK/PUBCOMP completes the delivery (event).
//! 10. Unacknowledged deliveries are retried with DUP=1 (`shard/tick.rs`).
//!
//! # Modules (bottom up)
//! `slab` (typed keys) · `topic` · `codec` · `config` · `message` · `metrics`
//! · `hooks` · `session` (session, window, queue, store, events) · `router`
//! (index, trie, retained) · `shard` (parts, mesh, timers, fan-out, tick,
//! harness) · `protocol` (packet handlers, replay) · `transport` ·
//! `conn_limit` · `conn` (connection task) · `tls` · `proxy` · `rate` ·
//! `listener` · `host` · `broker`.

pub mod acl;
pub mod auth;
pub mod broker;
pub mod codec;
pub mod config;
pub(crate) mod conn;
pub(crate) mod conn_limit;
pub(crate) mod control;
pub mod ctl;
pub mod faults;
pub(crate) mod gather;
pub mod hooks;
pub mod host;
pub(crate) mod http;
pub(crate) mod listener;
pub mod message;
pub mod metrics;
pub mod peer;
pub(crate) mod protocol;
pub mod proxy;
pub(crate) mod rate;
pub(crate) mod ratelog;
pub mod reload;
pub(crate) mod router;
pub(crate) mod session;
pub(crate) mod shard;
pub(crate) mod slab;
pub(crate) mod storage;
pub(crate) mod tls;
pub mod topic;
pub(crate) mod transport;

/// The WebSocket frame decoder (RFC 6455, server side), public for its fuzz
/// target (`fuzz/check_ws.rs`); the rest of the transports stay inside.
pub use transport::ws::frame as ws_frame;

/// The management listener's own parsing (percent-decoding, query strings,
/// the HTTP publish body), public for its fuzz target (`fuzz/check_http.rs`).
#[doc(hidden)]
pub use http::parse as http_parse;

pub use broker::{Broker, BrokerHandle, StartError};
pub use config::Config;
pub use hooks::Hooks;
pub use shard::home_shard;
/// `coremq storage inspect|compact` (the log read by a process not serving it).
pub use storage::tool as storage_tool;

/// Internal types the micro-benchmarks in `benches/` time directly. Not a
/// stable API: embedders use [`Broker`], [`Config`], [`Hooks`] and the codec.
#[doc(hidden)]
pub mod bench_api {
    pub use crate::acl::cache::DecisionCache;
    pub use crate::acl::{Acl, Subject};
    pub use crate::router::trie::Trie;
    pub use crate::session::inflight::{Inflight, Phase};
    pub use crate::session::mqueue::{DropPolicy, Limits, MQueue};
    pub use crate::session::Delivery;
}

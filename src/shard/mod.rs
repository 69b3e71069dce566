//! Shards: one pinned glommio executor each, and everything it owns.
//!
//! A [`Shard`] is the state of one executor, made of owned parts; each keeps
//! its state behind private fields and no part writes another's:
//!
//! | part | file | owns |
//! |---|---|---|
//! | `conns` | `conns.rs` | per socket: outbox, waker, keepalive clock, held acks, [`Phase`]; paused readers |
//! | `sessions` | `crate::session::store` | sessions by client id: filters, window, queue, awaiting-PUBREL, will, expiry |
//! | `router` | `crate::router` | local subscription index (granted QoS), interest replica, shared-group replica, retained replica |
//! | `mesh` | `mesh.rs` | per-peer mailbox queues, barriers |
//! | `timers` | `timers.rs` | the clock and the timer wheel |
//! | `fanout` | `fanout.rs` | large fan-outs in progress |
//! | `journal` | `crate::session::event` | the session events every durable change emits |
//! | `storage` | `crate::storage` | the log's durable position, acks waiting for the disk |
//! | `logins` | `crate::auth::login` | login methods' shard views, the cache of verified logins |
//! | `control` | `crate::control` | the node-wide questions this shard asked, awaiting answers |
//!
//! The protocol handlers (`crate::protocol`) are `impl Shard` blocks that
//! borrow the parts they need. The shard lives in an `Rc<RefCell<_>>`
//! ([`ShardRef`]) on its own thread; every borrow is taken and released
//! inside synchronous code, never across an `.await`. Other shards reach it
//! only through the mailbox mesh ([`mesh`]). This module imports nothing of
//! the I/O layer (`crate::conn`, `crate::listener`): a socket handed over by
//! another shard goes to the handler the broker registered with the mesh.

pub mod aliases;
pub mod conn5;
pub mod conns;
pub mod fanout;
pub mod mesh;
pub mod tick;
pub mod timers;
pub mod wheel;

#[cfg(test)]
pub(crate) mod harness;

use crate::config::Config;
use crate::hooks::Hooks;
use crate::message::MsgIdGen;
use crate::metrics::{Metrics, MetricsBoard};
use crate::router::Router;
use crate::session::event::Journal;
use crate::session::store::Sessions;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub use crate::slab::{ConnKey, SessionKey};
pub use conns::{AliasError, CloseReason, Phase};
pub use timers::TimerItem;

/// A shard's state, shared by the tasks of its executor.
pub type ShardRef = Rc<RefCell<Shard>>;

/// Bytes of the shared read scratch buffer.
pub const SCRATCH_BYTES: usize = 64 * 1024;

/// One executor's state: identity, configuration, counters and the parts.
pub struct Shard {
    pub id: usize,
    pub shards: usize,
    pub cfg: Arc<Config>,
    pub hooks: Arc<Hooks>,
    pub metrics: Metrics,
    pub board: Arc<MetricsBoard>,
    /// The broker's stop flag.
    pub stop: Arc<AtomicBool>,
    /// Rate limits of the log lines a peer can make repeat.
    pub lines: crate::ratelog::ShardLines,
    /// The access-control rules in force (`crate::acl`; off by default).
    /// A reload swaps it; each use sees the newest (`crate::reload::Local`).
    pub acl: crate::reload::Local<crate::acl::Acl>,
    /// The ACL generation whose rules connected sessions' subscriptions
    /// were last checked against (`protocol::acl`, from the tick).
    pub acl_rechecked: u64,
    /// Fault injection (tests); None in a normal broker.
    pub faults: Option<Arc<crate::faults::Faults>>,
    pub ids: MsgIdGen,
    pub conns: conns::Connections,
    pub sessions: Sessions,
    pub router: Router,
    pub mesh: mesh::Mesh,
    pub timers: timers::Timers,
    pub fanout: fanout::Fanouts,
    pub journal: Journal,
    /// The durable log's position, the acks waiting for it (`crate::storage`).
    pub storage: crate::storage::Storage,
    /// The journal's position when the packet being handled arrived: an
    /// ack waits for the disk only if its packet wrote something.
    pub packet_mark: u64,
    /// Login methods and the cache of verified logins (`crate::auth::login`).
    pub logins: crate::auth::login::Logins,
    /// Node-wide questions asked and awaiting answers (`crate::control`).
    pub control: crate::control::Control,
    /// Read buffer shared by all connections of the shard (the I/O layer's).
    pub scratch: Vec<u8>,
}

impl Shard {
    pub fn new(
        id: usize,
        shards: usize,
        cfg: Arc<Config>,
        hooks: Arc<Hooks>,
        board: Arc<MetricsBoard>,
        stop: Arc<AtomicBool>,
    ) -> Shard {
        Shard {
            id,
            shards,
            ids: MsgIdGen::new(cfg.runtime.node_id, id as u16),
            conns: conns::Connections::default(),
            sessions: {
                let mut s = Sessions::new(&cfg.session);
                s.set_slow_at(cfg.alarms.slow_subscriber_queue);
                s
            },
            router: Router::new(
                id,
                shards,
                (cfg.mqtt.max_retained, cfg.mqtt.max_retained_bytes),
                cfg.mqtt.shared_subscription_strategy,
            ),
            mesh: mesh::Mesh::new(shards),
            timers: timers::Timers::default(),
            fanout: fanout::Fanouts::default(),
            journal: Journal::default(),
            storage: crate::storage::Storage::new(cfg.storage.enabled, cfg.storage.acks_wait()),
            packet_mark: 0,
            logins: crate::auth::login::Logins::new(
                &cfg.auth,
                &Default::default(),
                hooks.has_authenticate(),
            ),
            scratch: vec![0; SCRATCH_BYTES],
            control: Default::default(),
            cfg,
            hooks,
            metrics: Metrics::default(),
            board,
            stop,
            lines: Default::default(),
            acl: crate::reload::Local::new(crate::reload::Reloadable::new(crate::acl::Acl::open())),
            acl_rechecked: 0,
            faults: None,
        }
    }

    /// Log prefix: shard and client id (or peer before CONNECT).
    pub fn who(&self, conn: ConnKey) -> String {
        match self.conns.get(conn) {
            Some(c) => match c.info() {
                Some(i) => format!("shard {} client {:?}", self.id, i.client_id),
                None => format!("shard {} peer {}", self.id, c.peer()),
            },
            None => format!("shard {}", self.id),
        }
    }
}

/// The home shard of a client id: stable across restarts (fixed-seed hash).
pub fn home_shard(client_id: &str, shards: usize) -> usize {
    (stable_hash(client_id.as_bytes()) % shards.max(1) as u64) as usize
}

/// FNV-1a, 64 bit: a fixed, seedless hash so homes survive restarts.
fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_is_stable_and_spread() {
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        // Pinned values (FNV-1a 64, computed independently): a changed hash
        // would move every persistent session's home.
        assert_eq!(stable_hash(b"client-1"), 0xb61d_e2d2_08d3_6e08);
        assert_eq!(home_shard("client-1", 4), 0);
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            counts[home_shard(&format!("c{i}"), 4)] += 1;
        }
        assert!(counts.iter().all(|&n| n > 800), "{counts:?}");
    }

    /// The per-connection structures BENCHMARKS.md's memory breakdown cites
    /// (`cargo test --lib per_connection_state_stays_compact -- --nocapture`
    /// prints them): a guard against quietly growing them.
    #[test]
    fn per_connection_state_stays_compact() {
        let conn = std::mem::size_of::<conns::Conn>();
        let session = std::mem::size_of::<crate::session::Session>();
        let info = std::mem::size_of::<crate::hooks::ClientInfo>();
        let delivery = std::mem::size_of::<crate::session::Delivery>();
        eprintln!("Conn {conn} B, Session {session} B, ClientInfo {info} B, Delivery {delivery} B");
        // The shared-group tag sits in what was padding; MQTT 5's
        // subscription identifiers take one inline u32 and a thin box.
        assert_eq!(delivery, 24, "Delivery grew to {delivery} B");
        // 128: held acks, MQTT 5 state, the ACL decision cache and a
        // certificate identity share one box, absent while all are; the
        // peer address is 20 bytes (`PeerAddr`), the written offset a u32.
        assert!(conn <= 128, "Conn grew to {conn} B");
        // 144: the window, queue and awaiting-PUBREL set are one word each
        // while empty (`session::thin`).
        assert!(session <= 144, "Session grew to {session} B");
        assert!(info <= 64, "ClientInfo grew to {info} B");
    }
}

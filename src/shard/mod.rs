//! Shards: one pinned glommio executor each, and everything it owns.
//!
//! A [`Shard`] is the state of one executor: its connections, the sessions
//! homed on it, its local subscription trie, its replica of the interest table
//! and of the retained store, its timer wheel and counters. It lives in an
//! `Rc<RefCell<_>>` ([`ShardRef`]) on its own thread; every borrow is taken
//! and released inside synchronous code, never across an `.await`. Other
//! shards reach it only through the mailbox mesh ([`mesh`]).

pub mod mesh;
pub mod slab;
pub mod tick;
pub mod wheel;

use crate::codec::{self, LastWill, Packet, QoS};
use crate::config::Config;
use crate::hooks::{ClientInfo, Hooks};
use crate::message::{Message, MsgIdGen};
use crate::metrics::{Metrics, MetricsBoard};
use crate::router::index::FilterIndex;
use crate::router::retained::Retained;
use crate::router::smallmap::SmallMap;
use crate::session::Session;
use ahash::AHashMap;
use slab::{Key, Slab};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;
use wheel::TimerWheel;

/// A shard's state, shared by the tasks of its executor.
pub type ShardRef = Rc<RefCell<Shard>>;

/// Why a connection is being closed; decides whether the will is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent DISCONNECT: no will.
    Normal,
    /// The peer closed the socket or a socket error.
    SocketClosed,
    /// Malformed packet or protocol violation.
    ProtocolError,
    /// Silent for 1.5× its keepalive.
    KeepaliveTimeout,
    /// No CONNECT within connect_timeout_s.
    ConnectTimeout,
    /// Another connection took over the client id.
    Takeover,
    /// CONNACK with a refusal code was sent.
    Refused,
    /// The broker is stopping.
    Shutdown,
    /// The socket went to the client's home shard.
    HandedOff,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Normal => "normal",
            CloseReason::SocketClosed => "socket_closed",
            CloseReason::ProtocolError => "protocol_error",
            CloseReason::KeepaliveTimeout => "keepalive_timeout",
            CloseReason::ConnectTimeout => "connect_timeout",
            CloseReason::Takeover => "takeover",
            CloseReason::Refused => "refused",
            CloseReason::Shutdown => "shutdown",
            CloseReason::HandedOff => "handed_off",
        }
    }
}

/// What the shard keeps per open socket. The socket itself is owned by the
/// connection task; this is the part the protocol handlers touch.
#[derive(Debug)]
pub struct ConnState {
    /// Encoded packets not yet written (from `out_pos`); freed once written.
    pub outbox: Vec<u8>,
    /// Bytes of `outbox` already written.
    pub out_pos: usize,
    /// The connection task, woken when the outbox fills or a close is asked.
    pub waker: Option<Waker>,
    /// Set when the shard wants this connection closed.
    pub close: Option<CloseReason>,
    /// Reading is paused by mailbox backpressure (listed in the mesh once).
    pub paused: bool,
    /// Shard clock (ms) of the last bytes received: keepalive.
    pub last_seen_ms: u64,
    /// Keepalive in ms from CONNECT; 0 disables.
    pub keepalive_ms: u64,
    /// The session once CONNECT was accepted.
    pub session: Option<Key>,
    /// Who the client is (protocol version included), once connected: hooks, logs.
    pub info: Option<Rc<ClientInfo>>,
    /// Acks waiting for a barrier (id != 0) or queued behind one (id 0), in order.
    pub held_acks: VecDeque<HeldAck>,
    /// Published if this connection ends abnormally.
    pub will: Option<Box<LastWill>>,
    pub peer: SocketAddr,
}

impl ConnState {
    /// Keep the connection task's waker; cloned only when it changed.
    pub fn set_waker(&mut self, waker: &Waker) {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.waker = Some(waker.clone());
        }
    }

    /// When a silent connection is closed: 1.5 × keepalive after the last
    /// bytes received ([MQTT-3.1.2-24]).
    pub fn keepalive_deadline(&self) -> u64 {
        self.last_seen_ms + self.keepalive_ms * 3 / 2
    }

    /// Bytes waiting to be written.
    pub fn unsent(&self) -> usize {
        self.outbox.len() - self.out_pos
    }

    /// `n` more bytes were written: free the buffer once all are out, and
    /// drop the written prefix once it is most of the buffer.
    pub fn wrote(&mut self, n: usize) {
        self.out_pos += n;
        if self.out_pos >= self.outbox.len() {
            self.outbox = Vec::new();
            self.out_pos = 0;
        } else if self.out_pos > self.outbox.len() / 2 {
            self.outbox.drain(..self.out_pos);
            self.out_pos = 0;
        }
    }

    /// Take what is left to write (closing).
    pub fn take_unsent(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.outbox);
        out.drain(..self.out_pos.min(out.len()));
        self.out_pos = 0;
        out
    }
}

/// Timer wheel entries; validated lazily when they fire.
#[derive(Debug, Clone, Copy)]
pub enum TimerItem {
    ConnectTimeout(Key),
    Keepalive(Key),
    Retry(Key),
    Expire(Key, u32),
}

/// A change broadcast to every peer whose acknowledgement to `conn` waits
/// until all of them have applied it (see `protocol/acks.rs`).
#[derive(Debug)]
pub struct Barrier {
    pub remaining: usize,
    pub conn: Key,
}

/// An acknowledgement waiting for its barrier (`barrier` != 0) or queued
/// behind one (0), with what must follow it.
#[derive(Debug)]
pub struct HeldAck {
    pub barrier: u64,
    pub packet: Packet,
    /// Retained messages for the subscriptions of a SUBACK, delivered right
    /// after it (empty, with no allocation, for every other ack).
    pub then_retained: Vec<(Arc<Message>, QoS)>,
}

/// A message still being delivered to its local subscribers.
#[derive(Debug)]
pub struct Fanout {
    pub msg: Arc<Message>,
    /// The sessions to deliver to; shared by consecutive messages to the same
    /// subscribers, so a burst is recognised by pointer.
    pub hits: Rc<Vec<(Key, QoS)>>,
    /// Index of the next hit to deliver.
    pub next: usize,
}

/// One executor's state.
pub struct Shard {
    pub id: usize,
    pub shards: usize,
    pub cfg: Arc<Config>,
    pub hooks: Arc<Hooks>,
    pub metrics: Metrics,
    pub board: Arc<MetricsBoard>,
    pub stop: Arc<AtomicBool>,
    pub ids: MsgIdGen,
    pub conns: Slab<ConnState>,
    pub sessions: Slab<Session>,
    pub by_client: AHashMap<Arc<str>, Key>,
    /// Local subscriptions: filter → sessions on this shard and their QoS.
    pub subs: FilterIndex<SmallMap<Key, QoS>>,
    /// Replica of the interest table: filter → mask of shards with subscribers.
    pub interest: FilterIndex<u64>,
    pub retained: Retained,
    pub wheel: TimerWheel<TimerItem>,
    pub mesh: mesh::Outboxes,
    pub barriers: AHashMap<u64, Barrier>,
    pub next_barrier: u64,
    /// Read scratch buffer shared by all connections of the shard.
    pub scratch: Vec<u8>,
    /// Reused by fan-out to collect (session, qos) hits.
    pub hits: Vec<(Key, QoS)>,
    /// Large fan-outs in progress, delivered in chunks by the fan-out task
    /// (and, while any is pending, every later one too, to keep order).
    pub fanout: VecDeque<Fanout>,
    /// The fan-out task, waiting for work.
    pub fanout_waker: Option<Waker>,
    /// Counter for server-assigned client ids.
    pub assigned: u64,
    /// The shard clock (ms since start) as of the last event; cheap to read on hot paths.
    pub clock_ms: u64,
    epoch: Instant,
}

/// Bytes of the shared read scratch buffer.
pub const SCRATCH_BYTES: usize = 64 * 1024;

impl Shard {
    pub fn new(
        id: usize,
        shards: usize,
        cfg: Arc<Config>,
        hooks: Arc<Hooks>,
        board: Arc<MetricsBoard>,
        stop: Arc<AtomicBool>,
    ) -> Shard {
        let node = cfg.runtime.node_id;
        let max_retained = cfg.mqtt.max_retained;
        Shard {
            id,
            shards,
            cfg,
            hooks,
            metrics: Metrics::default(),
            board,
            stop,
            ids: MsgIdGen::new(node, id as u16),
            conns: Slab::new(),
            sessions: Slab::new(),
            by_client: AHashMap::new(),
            subs: FilterIndex::new(),
            interest: FilterIndex::new(),
            retained: Retained::new(max_retained),
            wheel: TimerWheel::new(tick::TICK_MS, 1024, 0),
            mesh: mesh::Outboxes::new(shards),
            barriers: AHashMap::new(),
            next_barrier: 1,
            scratch: vec![0; SCRATCH_BYTES],
            hits: Vec::new(),
            fanout: VecDeque::new(),
            fanout_waker: None,
            assigned: 0,
            clock_ms: 0,
            epoch: Instant::now(),
        }
    }

    /// Milliseconds since the shard started (the wheel's clock).
    pub fn now_ms(&mut self) -> u64 {
        self.clock_ms = self.epoch.elapsed().as_millis() as u64;
        self.clock_ms
    }

    /// The home shard of a client id: stable across restarts (fixed-seed hash).
    pub fn home_of(client_id: &str, shards: usize) -> usize {
        (stable_hash(client_id.as_bytes()) % shards as u64) as usize
    }

    /// Register a new socket; arms its connect timeout.
    pub fn add_conn(&mut self, peer: SocketAddr) -> Key {
        let now = self.now_ms();
        let key = self.conns.insert(ConnState {
            outbox: Vec::new(),
            out_pos: 0,
            waker: None,
            close: None,
            paused: false,
            last_seen_ms: now,
            keepalive_ms: 0,
            session: None,
            info: None,
            held_acks: VecDeque::new(),
            will: None,
            peer,
        });
        let deadline = now + self.cfg.mqtt.connect_timeout_s * 1000;
        self.wheel.insert(deadline, TimerItem::ConnectTimeout(key));
        key
    }

    /// Append a packet to a connection's outbox and wake its task.
    pub fn send_packet(&mut self, conn: Key, packet: &Packet) {
        if let Some(c) = self.conns.get_mut(conn) {
            codec::encode(packet, &mut c.outbox);
            wake(c);
        }
    }

    /// Ask a connection's task to close it.
    pub fn close_conn(&mut self, conn: Key, reason: CloseReason) {
        if let Some(c) = self.conns.get_mut(conn) {
            if c.close.is_none() {
                c.close = Some(reason);
            }
            wake(c);
        }
    }

    /// Log prefix: shard and client id (or peer before CONNECT).
    pub fn who(&self, conn: Key) -> String {
        match self.conns.get(conn) {
            Some(ConnState { info: Some(i), .. }) => {
                format!("shard {} client {:?}", self.id, i.client_id)
            }
            Some(c) => format!("shard {} peer {}", self.id, c.peer),
            None => format!("shard {}", self.id),
        }
    }
}

/// Wake a connection's task if it is waiting.
pub fn wake(c: &mut ConnState) {
    if let Some(w) = c.waker.take() {
        w.wake();
    }
}

/// FNV-1a, 64 bit: a fixed, seedless hash so homes survive restarts.
pub fn stable_hash(bytes: &[u8]) -> u64 {
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
        assert_eq!(Shard::home_of("client-1", 4), 0);
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            counts[Shard::home_of(&format!("c{i}"), 4)] += 1;
        }
        assert!(counts.iter().all(|&n| n > 800), "{counts:?}");
    }

    /// The per-connection structures BENCHMARKS.md's memory breakdown cites
    /// (`cargo test --lib per_connection_state_stays_compact -- --nocapture`
    /// prints them): a guard against quietly growing them.
    #[test]
    fn per_connection_state_stays_compact() {
        let conn = std::mem::size_of::<ConnState>();
        let session = std::mem::size_of::<Session>();
        let info = std::mem::size_of::<crate::hooks::ClientInfo>();
        eprintln!("ConnState {conn} B, Session {session} B, ClientInfo {info} B");
        assert!(conn <= 176, "ConnState grew to {conn} B");
        assert!(session <= 232, "Session grew to {session} B");
        assert!(info <= 96, "ClientInfo grew to {info} B");
    }
}

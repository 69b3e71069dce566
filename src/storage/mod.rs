//! Storage: each shard's durable log of session events and retained changes.
//!
//! ```text
//!  handlers ──emit──> Journal ──encode──> Encoder.buf ──take──> writer task ──> DIR/gen-G/shard-I/SEQ.log
//!     │                                                            │ write (O_DIRECT), fdatasync
//!     └─ ack held behind a barrier ── Storage.waits ◄── durable(upto) ┘
//! ```
//! The sessions part emits one event per durable change (`session::event`);
//! the journal encodes those of durable sessions (they outlive their
//! connection) and retained changes into records (`record.rs`). One writer
//! task per shard (`writer.rs`) appends them to segment files on glommio's
//! direct-I/O `DmaStreamWriter`, syncs per `[storage] fsync`, rotates
//! segments and compacts (`snapshot.rs`) — no other thread, no blocking file
//! I/O on a shard. With `fsync = "always"` an ack that promises durable
//! state waits behind a barrier ([`Shard::durable_barrier`]) until the
//! records its packet produced — on this shard and on every shard the
//! message went to (a [`MeshMsg::Sync`](crate::shard::mesh::MeshMsg::Sync)
//! asks each) — are on disk; acks waiting together share one fdatasync.
//! At start each shard replays its log (`replay.rs`, `start.rs`); the
//! directory's lock and generations are `layout.rs`'s, run on the starting
//! thread. `coremq storage inspect|compact` are `tool.rs`.
//!
//! This module owns the [`Storage`] part of a shard: the durable position,
//! the acks waiting for it, the full-disk state and the writer's waker.

pub mod layout;
pub mod record;
pub mod replay;
pub mod snapshot;
pub mod start;
pub mod tool;
pub mod writer;

use crate::shard::{ConnKey, Shard};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// Who waits for the log to reach a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiter {
    /// One answer to this shard's barrier (an ack of one of its connections).
    Local(u64),
    /// A peer's barrier: answer it over the mesh.
    Peer(usize, u64),
}

/// Durable sessions per shard, read by publishing shards to know which
/// peers they must ask to sync (written only when a shard's count changes
/// between zero and not zero).
#[derive(Debug)]
pub struct DurableBoard {
    shards: Vec<AtomicUsize>,
}

impl DurableBoard {
    pub fn new(shards: usize) -> Arc<Self> {
        Arc::new(DurableBoard {
            shards: (0..shards).map(|_| AtomicUsize::new(0)).collect(),
        })
    }

    fn set(&self, shard: usize, durable: bool) {
        if let Some(s) = self.shards.get(shard) {
            s.store(usize::from(durable), Ordering::Release);
        }
    }

    /// Whether `shard` holds any durable session.
    pub fn has_durable(&self, shard: usize) -> bool {
        self.shards
            .get(shard)
            .is_some_and(|s| s.load(Ordering::Acquire) != 0)
    }
}

/// The storage part of a shard. See the module doc.
#[derive(Debug)]
pub struct Storage {
    /// `fsync = "always"`: acks wait for the disk.
    acks_wait: bool,
    /// Journal bytes known to be written (and synced, per the policy).
    durable: u64,
    /// Waiters by the position they need, in position order.
    waits: VecDeque<(u64, Waiter)>,
    /// Waiters whose records are still being made by a fan-out.
    after_fanout: Vec<Waiter>,
    waker: Option<Waker>,
    /// Why writing failed (a full disk), while it does: no new persistent
    /// sessions, and the `storage_full` alarm (`crate::control`).
    failure: Option<String>,
    /// The broker is stopping: write what is left and close.
    closing: bool,
    board: Option<Arc<DurableBoard>>,
    /// What the board says of this shard now.
    board_says: bool,
}

impl Storage {
    pub fn new(enabled: bool, acks_wait: bool) -> Self {
        Storage {
            acks_wait: enabled && acks_wait,
            durable: 0,
            waits: VecDeque::new(),
            after_fanout: Vec::new(),
            waker: None,
            failure: None,
            closing: false,
            board: None,
            board_says: false,
        }
    }

    /// Whether acks wait for the disk (`fsync = "always"`).
    pub fn acks_wait(&self) -> bool {
        self.acks_wait
    }

    pub fn set_board(&mut self, board: Arc<DurableBoard>) {
        self.board = Some(board);
    }

    pub fn board(&self) -> Option<&Arc<DurableBoard>> {
        self.board.as_ref()
    }

    /// Writing failed: refuse new persistent state until it works again.
    pub fn is_full(&self) -> bool {
        self.failure.is_some()
    }

    /// Why the log cannot be written, while it cannot.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    pub fn set_failure(&mut self, failure: Option<String>) {
        self.failure = failure;
    }

    pub fn durable(&self) -> u64 {
        self.durable
    }

    pub fn closing(&self) -> bool {
        self.closing
    }

    /// The broker stops: the writer finishes.
    pub fn close(&mut self) {
        self.closing = true;
        self.wake();
    }

    /// Have the writer run a round now (a compaction's snapshot is ready).
    pub fn wake_writer(&mut self) {
        self.wake();
    }

    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// The writer waits here for waiters (or its period).
    pub fn poll_wanted(&mut self, cx: &Context<'_>) -> Poll<()> {
        let behind = self.waits.back().is_some_and(|(at, _)| *at > self.durable);
        if self.closing || behind {
            return Poll::Ready(());
        }
        self.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn wait(&mut self, upto: u64, who: Waiter) {
        self.waits.push_back((upto, who));
        self.wake();
    }

    /// The log is durable up to `upto`: the waiters now answered.
    fn reached(&mut self, upto: u64) -> Vec<Waiter> {
        self.durable = self.durable.max(upto);
        let mut done = Vec::new();
        while self
            .waits
            .front()
            .is_some_and(|(at, _)| *at <= self.durable)
        {
            done.extend(self.waits.pop_front().map(|(_, w)| w));
        }
        done
    }
}

impl Shard {
    /// The barrier an ack must wait behind (0: none) so that it leaves only
    /// once what its packet changed is on disk, here and on the peers the
    /// packet's message went to: `barrier` (another wait, e.g. for peers'
    /// interest) gains those answers. Without `fsync = "always"`, or when
    /// the packet wrote nothing durable anywhere, `barrier` as it was.
    pub(crate) fn durable_barrier(&mut self, conn: ConnKey, barrier: u64) -> u64 {
        let peers = self.mesh.take_touched();
        if !self.storage.acks_wait() {
            return barrier;
        }
        self.post_durable();
        let wrote = self.journal.appended() > self.packet_mark;
        // A retried QoS 2 step (DUP PUBLISH, PUBREL) writes nothing itself
        // but must not get ahead of what its first try wrote.
        let durable_session = self
            .conns
            .get(conn)
            .and_then(|c| c.session())
            .zip(self.journal.log())
            .is_some_and(|(sk, log)| log.is_durable(sk));
        let behind = durable_session && self.journal.appended() > self.storage.durable();
        // Deliveries deferred to the fan-out task are written when it gets to them.
        let deferred = self.fanout.busy();
        let local = wrote || behind || deferred;
        let board = self.storage.board().cloned();
        let mut ask = Vec::new();
        let mut mask = peers;
        while mask != 0 {
            let peer = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            if board.as_ref().is_some_and(|b| b.has_durable(peer)) {
                ask.push(peer);
            }
        }
        if !local && ask.is_empty() {
            return barrier;
        }
        let b = match barrier {
            0 => self.mesh.open_barrier(conn, 0),
            b => b,
        };
        self.mesh.expect_more(b, ask.len() + usize::from(local));
        for peer in ask {
            self.mesh
                .push(peer, crate::shard::mesh::MeshMsg::Sync { barrier: b });
        }
        if deferred {
            self.storage.after_fanout.push(Waiter::Local(b));
        } else if local {
            let upto = self.journal.appended();
            self.storage.wait(upto, Waiter::Local(b));
        }
        b
    }

    /// A peer asks for its barrier to be answered once what it sent here
    /// before is on disk.
    pub fn on_sync(&mut self, peer: usize, barrier: u64) {
        let who = Waiter::Peer(peer, barrier);
        if self.fanout.busy() {
            self.storage.after_fanout.push(who);
        } else if self.journal.appended() > self.storage.durable() {
            let upto = self.journal.appended();
            self.storage.wait(upto, who);
        } else {
            self.answer(who);
        }
    }

    /// The fan-outs are delivered: their syncs wait for what they wrote.
    pub fn fanout_drained(&mut self) {
        if self.storage.after_fanout.is_empty() {
            return;
        }
        let upto = self.journal.appended();
        for who in std::mem::take(&mut self.storage.after_fanout) {
            self.storage.wait(upto, who);
        }
        // What is on disk already answers at once.
        let durable = self.storage.durable();
        self.log_durable(durable);
    }

    /// The writer made the log durable up to `upto`.
    pub fn log_durable(&mut self, upto: u64) {
        for who in self.storage.reached(upto) {
            self.answer(who);
        }
    }

    fn answer(&mut self, who: Waiter) {
        match who {
            Waiter::Local(b) => self.barrier_answered(b),
            Waiter::Peer(peer, b) => self.mesh.ack(peer, b),
        }
    }

    /// Tell the other shards whether this one holds durable sessions (on
    /// each change, so a publisher asks it to sync before its ack).
    pub fn post_durable(&mut self) {
        let has = self.journal.log().is_some_and(|l| l.durable_sessions() > 0);
        if has != self.storage.board_says {
            self.storage.board_says = has;
            if let Some(b) = &self.storage.board {
                b.set(self.id, has);
            }
        }
    }
}

//! The mesh part: the N×N mailboxes between shards, and barriers.
//!
//! Every ordered pair of shards (i → j) has one bounded SPSC
//! `glommio::channels::shared_channel` carrying *batches* (`Vec<MeshMsg>`).
//! [`Mesh`] owns what this shard has queued per peer and the barriers whose
//! acknowledgements wait for every peer's answer. A shard appends to its
//! per-peer queue while it works; one sender
//! task per peer wakes, takes the whole batch and `try_send`s it, falling back
//! to an awaited `send` (the batch waits in the local overflow meanwhile, and
//! new messages collect behind it). One receiver task per inbound mailbox
//! does nothing but `recv().await` and apply each message: no select over
//! channels (see GLOMMIO-NOTES: waker refcount panic). A socket handed over
//! goes to the handler the I/O layer registered ([`HandoffHandler`]);
//! everything else is applied by [`Shard::on_mesh`](super::Shard::on_mesh).

use super::ShardRef;
use crate::message::Message;
use crate::router::shared::MemberChange;
use crate::slab::{ConnKey, SessionKey};
use crate::transport::Handoff;
use ahash::AHashMap;
use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use glommio::GlommioError;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Poll, Waker};

/// One message between shards.
#[derive(Debug)]
pub enum MeshMsg {
    /// Fan a message out to this shard's local subscribers.
    Publish(Arc<Message>),
    /// Filters that gained (`true`) or lost their first/last subscriber on shard `from`.
    /// `barrier` != 0 asks for an [`MeshMsg::Ack`] once applied.
    Interest {
        from: usize,
        barrier: u64,
        /// Shared by every peer's message: built once per change.
        changes: Arc<[(Arc<str>, bool)]>,
    },
    /// Sessions of the sending shard that joined or left shared groups;
    /// `barrier` as for [`MeshMsg::Interest`].
    Members {
        barrier: u64,
        /// Shared by every peer's message: built once per change.
        changes: Arc<[MemberChange]>,
    },
    /// A message for `member`, a session of the receiving shard chosen in
    /// the shared group of `share`; `hops` counts the times it was chosen
    /// again because the member had left.
    Shared {
        msg: Arc<Message>,
        share: Arc<str>,
        member: SessionKey,
        hops: u8,
    },
    /// A peer applied the change of this barrier.
    Ack { barrier: u64 },
    /// Answer `barrier` once what this peer sent before is on disk
    /// (`crate::storage`: an ack with `fsync = "always"`).
    Sync { barrier: u64 },
    /// Set (or with an empty payload, delete) a retained message in this replica;
    /// `barrier` != 0 asks for an [`MeshMsg::Ack`] once applied.
    Retain { msg: Arc<Message>, barrier: u64 },
    /// A socket whose client is homed on the receiving shard.
    Handoff(Handoff),
    /// A control-plane question (`crate::control`): answer with
    /// [`MeshMsg::Answer`] carrying the same `id`.
    Ask {
        id: u64,
        ask: Box<crate::control::ask::Ask>,
    },
    /// Shard `from`'s answer to question `id`.
    Answer {
        id: u64,
        from: usize,
        answer: Box<crate::control::ask::Answer>,
    },
}

/// What the I/O layer does with a socket that arrives over the mesh:
/// registered at start (`crate::conn::spawn_handoff`), so this module does
/// not depend on the connection task.
pub type HandoffHandler = fn(&ShardRef, Handoff);

/// Messages queued for peers beyond which this shard's connections stop
/// reading (publishers feel TCP backpressure) until the senders catch up.
pub const HIGH_WATER: usize = 8192;

/// Bytes queued for peers beyond which connections stop reading, likewise.
pub const HIGH_WATER_BYTES: usize = 64 << 20;

/// One batch carries at most this many messages and (past its first
/// message) this many bytes: a mailbox of `runtime.mailbox_capacity`
/// batches holds at most capacity × these, whatever the rate.
pub const BATCH_MAX: usize = 512;
/// See [`BATCH_MAX`].
pub const BATCH_MAX_BYTES: usize = 512 << 10;

impl MeshMsg {
    /// Bytes the message holds beyond its own size (the budgets count them).
    fn weight(&self) -> usize {
        match self {
            MeshMsg::Publish(m)
            | MeshMsg::Retain { msg: m, .. }
            | MeshMsg::Shared { msg: m, .. } => m.held_bytes(),
            MeshMsg::Interest { changes, .. } => changes.iter().map(|(f, _)| f.len()).sum(),
            MeshMsg::Members { changes, .. } => changes.iter().map(|c| c.share.len()).sum(),
            MeshMsg::Handoff(h) => h.initial.len(),
            MeshMsg::Ack { .. }
            | MeshMsg::Sync { .. }
            | MeshMsg::Ask { .. }
            | MeshMsg::Answer { .. } => 0,
        }
    }
}

/// A change broadcast to every peer whose acknowledgement to `conn` waits
/// until all of them have applied it (see `protocol/acks.rs`).
#[derive(Debug)]
struct Barrier {
    remaining: usize,
    conn: ConnKey,
}

/// The mesh part: what a shard has queued for each peer, the peer sender
/// tasks' wakers, and the barriers waiting for peers' answers.
#[derive(Debug)]
pub struct Mesh {
    pending: Vec<Vec<MeshMsg>>,
    wakers: Vec<Option<Waker>>,
    /// Messages in `pending`, all peers together, and their bytes.
    queued: usize,
    queued_bytes: usize,
    /// The shard is stopping: backpressure no longer pauses readers.
    backpressure_off: bool,
    /// The sender tasks end once their queues are empty.
    closed: bool,
    barriers: AHashMap<u64, Barrier>,
    next_barrier: u64,
    /// Peers sent a message to fan out since [`Mesh::take_touched`] (a bit
    /// each): the storage asks them to sync before an ack.
    touched: u64,
}

impl Mesh {
    pub fn new(shards: usize) -> Self {
        Mesh {
            pending: (0..shards).map(|_| Vec::new()).collect(),
            wakers: (0..shards).map(|_| None).collect(),
            queued: 0,
            queued_bytes: 0,
            backpressure_off: false,
            closed: false,
            barriers: AHashMap::new(),
            next_barrier: 1,
            touched: 0,
        }
    }

    /// Messages waiting to leave for peers, all peers together.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Whether connections should stop reading for now.
    pub fn congested(&self) -> bool {
        !self.backpressure_off
            && (self.queued >= HIGH_WATER || self.queued_bytes >= HIGH_WATER_BYTES)
    }

    /// The shard is stopping: connections read (and close) without waiting
    /// for the backlog.
    pub fn lift_backpressure(&mut self) {
        self.backpressure_off = true;
    }

    /// Take the oldest batch queued for `peer`, at most [`BATCH_MAX`]
    /// messages and [`BATCH_MAX_BYTES`] (its sender task calls this), and
    /// how many of them are control-plane questions and answers.
    fn take(&mut self, peer: usize) -> (Vec<MeshMsg>, usize) {
        let pending = &mut self.pending[peer];
        let mut bytes = 0;
        let mut n = 0;
        let mut control = 0;
        for m in pending.iter().take(BATCH_MAX) {
            if n > 0 && bytes + m.weight() > BATCH_MAX_BYTES {
                break;
            }
            bytes += m.weight();
            n += 1;
            control += usize::from(matches!(m, MeshMsg::Ask { .. } | MeshMsg::Answer { .. }));
        }
        let batch = if n == pending.len() {
            std::mem::take(pending)
        } else {
            pending.drain(..n).collect()
        };
        self.queued -= batch.len();
        self.queued_bytes -= bytes;
        (batch, control)
    }

    /// Queue a message for `peer`; it leaves with the next batch.
    pub fn push(&mut self, peer: usize, msg: MeshMsg) {
        if matches!(msg, MeshMsg::Publish(_) | MeshMsg::Shared { .. }) {
            self.touched |= 1 << peer;
        }
        if let Some(p) = self.pending.get_mut(peer) {
            self.queued_bytes += msg.weight();
            p.push(msg);
            self.queued += 1;
            if let Some(w) = self.wakers[peer].take() {
                w.wake();
            }
        }
    }

    /// Answer a peer's barrier (0: none asked) once its change is applied.
    pub fn ack(&mut self, peer: usize, barrier: u64) {
        if barrier != 0 {
            self.push(peer, MeshMsg::Ack { barrier });
        }
    }

    /// The peers sent a message to fan out since the last call.
    pub fn take_touched(&mut self) -> u64 {
        std::mem::take(&mut self.touched)
    }

    /// `more` answers are now expected for `barrier` too.
    pub fn expect_more(&mut self, barrier: u64, more: usize) {
        if let Some(b) = self.barriers.get_mut(&barrier) {
            b.remaining += more;
        }
    }

    /// Open a barrier for `conn`: one answer expected from each of `peers`.
    pub fn open_barrier(&mut self, conn: ConnKey, peers: usize) -> u64 {
        let id = self.next_barrier;
        self.next_barrier += 1;
        self.barriers.insert(
            id,
            Barrier {
                remaining: peers,
                conn,
            },
        );
        id
    }

    /// A peer answered `barrier`; the connection whose ack waited on it
    /// once every peer has.
    pub fn barrier_answered(&mut self, barrier: u64) -> Option<ConnKey> {
        let b = self.barriers.get_mut(&barrier)?;
        b.remaining = b.remaining.saturating_sub(1);
        if b.remaining > 0 {
            return None;
        }
        self.barriers.remove(&barrier).map(|b| b.conn)
    }

    /// Stop the sender tasks once their queues are empty.
    pub fn close(&mut self) {
        self.closed = true;
        self.wakers
            .iter_mut()
            .filter_map(Option::take)
            .for_each(Waker::wake);
    }

    /// Take what is queued for `peer` (harness tests).
    #[cfg(test)]
    pub fn take_for_test(&mut self, peer: usize) -> Vec<MeshMsg> {
        self.take(peer).0
    }
}

/// The ends of the mesh one shard owns.
pub struct MeshEnds {
    pub senders: Vec<(usize, SharedSender<Vec<MeshMsg>>)>,
    pub receivers: Vec<(usize, SharedReceiver<Vec<MeshMsg>>)>,
}

/// Build all N×(N-1) channels; element i is shard i's ends.
pub fn build(shards: usize, capacity: usize) -> Vec<MeshEnds> {
    let mut ends: Vec<MeshEnds> = (0..shards)
        .map(|_| MeshEnds {
            senders: Vec::new(),
            receivers: Vec::new(),
        })
        .collect();
    for from in 0..shards {
        for to in 0..shards {
            if from != to {
                let (tx, rx) = shared_channel::new_bounded(capacity);
                ends[from].senders.push((to, tx));
                ends[to].receivers.push((from, rx));
            }
        }
    }
    ends
}

/// Spawn this shard's sender and receiver tasks (each connects on its own,
/// so the crossed connects of two shards cannot deadlock).
pub fn spawn_tasks(shard: &ShardRef, ends: MeshEnds, on_handoff: HandoffHandler) {
    for (peer, tx) in ends.senders {
        let sh = shard.clone();
        glommio::spawn_local(async move { sender_task(sh, peer, tx.connect().await).await })
            .detach();
    }
    for (peer, rx) in ends.receivers {
        let sh = shard.clone();
        glommio::spawn_local(async move {
            receiver_task(sh, peer, rx.connect().await, on_handoff).await
        })
        .detach();
    }
}

async fn sender_task(shard: ShardRef, peer: usize, tx: ConnectedSender<Vec<MeshMsg>>) {
    let mut gather = crate::gather::Gather::default();
    loop {
        let batch = poll_fn(|cx| {
            let mut sh = shard.borrow_mut();
            let ob = &mut sh.mesh;
            if !ob.pending[peer].is_empty() {
                let (batch, control) = ob.take(peer);
                sh.metrics.mailbox_batches_sent += 1;
                // Control-plane questions and answers are not traffic.
                sh.metrics.mailbox_msgs_sent += (batch.len() - control) as u64;
                sh.resume_readers();
                Poll::Ready(Some(batch))
            } else if ob.closed {
                Poll::Ready(None)
            } else {
                ob.wakers[peer] = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        let Some(batch) = batch else { break };
        let delay = {
            let sh = shard.borrow();
            sh.faults.as_ref().and_then(|f| f.mesh_delay(sh.id))
        };
        if let Some(d) = delay {
            glommio::timer::sleep(d).await;
        }
        match tx.try_send(batch) {
            Ok(()) => {}
            Err(GlommioError::WouldBlock(glommio::ResourceType::Channel(batch))) => {
                shard.borrow_mut().metrics.mailbox_overflows += 1;
                if tx.send(batch).await.is_err() {
                    break;
                }
            }
            Err(_) => break,
        }
        // While busy, gather for the window before the next batch (each
        // batch may wake the peer's executor): see `crate::gather`.
        let window = shard.borrow().cfg.runtime.wake_window_us;
        let window = std::time::Duration::from_micros(window);
        if let Some(wait) = gather.after_batch(std::time::Instant::now(), window) {
            glommio::timer::sleep(wait).await;
        }
    }
    tx.close();
}

async fn receiver_task(
    shard: ShardRef,
    peer: usize,
    rx: ConnectedReceiver<Vec<MeshMsg>>,
    on_handoff: HandoffHandler,
) {
    while let Some(batch) = rx.recv().await {
        for msg in batch {
            match msg {
                MeshMsg::Handoff(h) => on_handoff(&shard, h),
                other => shard.borrow_mut().on_mesh(peer, other),
            }
        }
        glommio::yield_if_needed().await;
    }
    log::debug!(
        "shard {}: mailbox from shard {peer} closed",
        shard.borrow().id
    );
}

impl super::Shard {
    /// Apply one inbound message (a handoff goes to the I/O layer's handler instead).
    pub fn on_mesh(&mut self, peer: usize, msg: MeshMsg) {
        match msg {
            MeshMsg::Publish(m) => {
                self.dispatch_local(&m);
            }
            MeshMsg::Retain { msg, barrier } => {
                self.apply_retained(&msg, false);
                self.mesh.ack(peer, barrier);
            }
            MeshMsg::Interest {
                from,
                barrier,
                changes,
            } => {
                self.router.apply_interest(from, &changes);
                self.mesh.ack(peer, barrier);
            }
            MeshMsg::Members { barrier, changes } => {
                self.router.apply_members(&changes);
                self.mesh.ack(peer, barrier);
            }
            MeshMsg::Shared {
                msg,
                share,
                member,
                hops,
            } => self.on_shared(&msg, share, member, hops),
            MeshMsg::Ack { barrier } => self.barrier_answered(barrier),
            MeshMsg::Sync { barrier } => self.on_sync(peer, barrier),
            MeshMsg::Ask { id, ask } => self.on_ask(peer, id, *ask),
            MeshMsg::Answer { id, from, answer } => self.control.put(id, from, *answer),
            MeshMsg::Handoff(h) => {
                log::warn!("shard {}: a handoff reached on_mesh; closed", self.id);
                drop(h);
            }
        }
    }

    /// Send `msg` (built per peer by `make`) to every other shard.
    pub fn broadcast(&mut self, mut make: impl FnMut() -> MeshMsg) {
        for peer in (0..self.shards).filter(|&p| p != self.id) {
            self.mesh.push(peer, make());
        }
    }

    /// Wake connections paused by backpressure once the backlog has fallen.
    pub fn resume_readers(&mut self) {
        if self.conns.any_paused() && !self.mesh.congested() {
            self.conns.resume_paused();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backlog_congests_until_taken() {
        let mut mesh = Mesh::new(2);
        for _ in 0..HIGH_WATER {
            mesh.push(1, MeshMsg::Ack { barrier: 1 });
        }
        assert!(mesh.congested());
        while !mesh.take(1).0.is_empty() {}
        assert!(!mesh.congested());
        for _ in 0..HIGH_WATER {
            mesh.push(1, MeshMsg::Ack { barrier: 1 });
        }
        mesh.lift_backpressure();
        assert!(!mesh.congested(), "a stopping shard never pauses readers");
    }

    /// A publish on "t" with an `n`-byte payload.
    fn big(n: usize) -> MeshMsg {
        MeshMsg::Publish(Arc::new(Message {
            id: crate::message::MsgId(1),
            topic: "t".into(),
            payload: bytes::Bytes::from(vec![0u8; n]),
            qos: crate::codec::QoS::AtMostOnce,
            retain: false,
            from: "c".into(),
            props: None,
        }))
    }

    #[test]
    fn batches_are_bounded_in_messages_and_bytes() {
        let mut mesh = Mesh::new(2);
        for _ in 0..BATCH_MAX + 10 {
            mesh.push(1, MeshMsg::Ack { barrier: 1 });
        }
        assert_eq!(mesh.take(1).0.len(), BATCH_MAX);
        assert_eq!(mesh.take(1).0.len(), 10);
        // Three of 200 KiB: two fit in a batch's bytes, the third waits.
        for _ in 0..3 {
            mesh.push(1, big(200 << 10));
        }
        assert_eq!(mesh.take(1).0.len(), 2);
        assert_eq!(mesh.take(1).0.len(), 1);
        // One message larger than the byte cap still goes, alone.
        mesh.push(1, big(BATCH_MAX_BYTES * 2));
        mesh.push(1, big(1));
        assert_eq!(mesh.take(1).0.len(), 1);
        assert_eq!(mesh.queued_bytes, 2, "topic + payload of the one left");
    }

    #[test]
    fn bytes_congest_too() {
        let mut mesh = Mesh::new(2);
        mesh.push(1, big(HIGH_WATER_BYTES));
        assert!(mesh.congested(), "one message of HIGH_WATER_BYTES");
    }

    #[test]
    fn barrier_completes_after_every_peer() {
        let mut conns = crate::shard::conns::Connections::default();
        let conn = conns.add(([127, 0, 0, 1], 1).into(), -1, Default::default(), 0);
        let mut mesh = Mesh::new(4);
        let b = mesh.open_barrier(conn, 3);
        assert_eq!(mesh.barrier_answered(b), None);
        assert_eq!(mesh.barrier_answered(b), None);
        assert_eq!(mesh.barrier_answered(b), Some(conn));
        assert_eq!(mesh.barrier_answered(b), None, "answered once");
    }
}

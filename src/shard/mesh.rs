//! The N×N mailbox mesh between shards.
//!
//! Every ordered pair of shards (i → j) has one bounded SPSC
//! `glommio::channels::shared_channel` carrying *batches* (`Vec<MeshMsg>`).
//! A shard appends to its per-peer [`Outboxes`] while it works; one sender
//! task per peer wakes, takes the whole batch and `try_send`s it, falling back
//! to an awaited `send` (the batch waits in the local overflow meanwhile, and
//! new messages collect behind it). One receiver task per inbound mailbox
//! does nothing but `recv().await` and apply each message: no select over
//! channels (see GLOMMIO-NOTES: waker refcount panic).

use super::slab::Key;
use super::{wake, ShardRef};
use crate::message::Message;
use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use glommio::GlommioError;
use std::future::poll_fn;
use std::net::SocketAddr;
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
    /// A peer applied the change of this barrier.
    Ack { barrier: u64 },
    /// Set (or with an empty payload, delete) a retained message in this replica;
    /// `barrier` != 0 asks for an [`MeshMsg::Ack`] once applied.
    Retain { msg: Arc<Message>, barrier: u64 },
    /// A socket whose client is homed on the receiving shard.
    Handoff(Handoff),
}

/// A connection moving to its home shard: the detached transport (closed on
/// drop) and the bytes already read from it (the CONNECT, maybe more).
#[derive(Debug)]
pub struct Handoff {
    pub transport: crate::transport::Detached,
    pub initial: bytes::Bytes,
    pub peer: SocketAddr,
    /// The node-wide connection slot this socket holds.
    pub slot: crate::listener::Slot,
}

/// Messages queued for peers beyond which this shard's connections stop
/// reading (publishers feel TCP backpressure) until the senders catch up.
pub const HIGH_WATER: usize = 8192;

/// What a shard has queued for each peer, and the peer sender tasks' wakers.
#[derive(Debug)]
pub struct Outboxes {
    pending: Vec<Vec<MeshMsg>>,
    wakers: Vec<Option<Waker>>,
    /// Messages in `pending`, all peers together.
    queued: usize,
    /// Connections paused by backpressure (each once), woken when `queued` falls.
    paused: Vec<Key>,
    /// The shard is stopping: nothing pauses for backpressure any more.
    draining: bool,
    /// The sender tasks end once their queues are empty.
    closed: bool,
}

impl Outboxes {
    pub fn new(shards: usize) -> Self {
        Outboxes {
            pending: (0..shards).map(|_| Vec::new()).collect(),
            wakers: (0..shards).map(|_| None).collect(),
            queued: 0,
            paused: Vec::new(),
            draining: false,
            closed: false,
        }
    }

    /// Whether connections should stop reading for now.
    pub fn congested(&self) -> bool {
        !self.draining && self.queued >= HIGH_WATER
    }

    /// The shard is stopping: connections read (and close) without waiting
    /// for the backlog; the paused ones are resumed by the next
    /// [`readers_to_resume`](Self::readers_to_resume).
    pub fn drain(&mut self) {
        self.draining = true;
    }

    /// Remember a paused connection (the caller marks it, so each is listed once).
    pub fn pause_reader(&mut self, conn: Key) {
        self.paused.push(conn);
    }

    /// The paused connections to wake, once the backlog has fallen (or the shard stops).
    pub fn readers_to_resume(&mut self) -> Vec<Key> {
        if self.paused.is_empty() || self.congested() {
            return Vec::new();
        }
        std::mem::take(&mut self.paused)
    }

    /// Take everything queued for `peer` (its sender task calls this).
    fn take(&mut self, peer: usize) -> Vec<MeshMsg> {
        let batch = std::mem::take(&mut self.pending[peer]);
        self.queued -= batch.len();
        batch
    }

    /// Queue a message for `peer`; it leaves with the next batch.
    pub fn push(&mut self, peer: usize, msg: MeshMsg) {
        if let Some(p) = self.pending.get_mut(peer) {
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

    /// Stop the sender tasks once their queues are empty.
    pub fn close(&mut self) {
        self.closed = true;
        self.wakers
            .iter_mut()
            .filter_map(Option::take)
            .for_each(Waker::wake);
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
pub fn spawn_tasks(shard: &ShardRef, ends: MeshEnds) {
    for (peer, tx) in ends.senders {
        let s = shard.clone();
        glommio::spawn_local(async move { sender_task(s, peer, tx.connect().await).await })
            .detach();
    }
    for (peer, rx) in ends.receivers {
        let s = shard.clone();
        glommio::spawn_local(async move { receiver_task(s, peer, rx.connect().await).await })
            .detach();
    }
}

async fn sender_task(shard: ShardRef, peer: usize, tx: ConnectedSender<Vec<MeshMsg>>) {
    loop {
        let batch = poll_fn(|cx| {
            let mut s = shard.borrow_mut();
            let ob = &mut s.mesh;
            if !ob.pending[peer].is_empty() {
                let batch = ob.take(peer);
                s.metrics.mailbox_batches_sent += 1;
                s.metrics.mailbox_msgs_sent += batch.len() as u64;
                s.resume_readers();
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
    }
    tx.close();
}

async fn receiver_task(shard: ShardRef, peer: usize, rx: ConnectedReceiver<Vec<MeshMsg>>) {
    while let Some(batch) = rx.recv().await {
        for msg in batch {
            apply(&shard, peer, msg);
        }
        glommio::yield_if_needed().await;
    }
    log::debug!(
        "shard {}: mailbox from shard {peer} closed",
        shard.borrow().id
    );
}

/// Apply one inbound message to this shard.
fn apply(shard: &ShardRef, peer: usize, msg: MeshMsg) {
    match msg {
        MeshMsg::Handoff(h) => crate::conn::spawn_handoff(shard, h),
        MeshMsg::Publish(m) => shard.borrow_mut().dispatch_local(&m),
        MeshMsg::Retain { msg, barrier } => {
            let mut s = shard.borrow_mut();
            s.apply_retained(&msg, false);
            s.mesh.ack(peer, barrier);
        }
        MeshMsg::Interest {
            from,
            barrier,
            changes,
        } => {
            let mut s = shard.borrow_mut();
            s.apply_interest(from, &changes);
            s.mesh.ack(peer, barrier);
        }
        MeshMsg::Ack { barrier } => shard.borrow_mut().barrier_ack(barrier),
    }
}

impl super::Shard {
    /// Send `msg` (built per peer by `make`) to every other shard.
    pub fn broadcast(&mut self, mut make: impl FnMut() -> MeshMsg) {
        for peer in (0..self.shards).filter(|&p| p != self.id) {
            self.mesh.push(peer, make());
        }
    }

    /// Wake connections paused by backpressure once the backlog has fallen.
    pub fn resume_readers(&mut self) {
        for k in self.mesh.readers_to_resume() {
            if let Some(c) = self.conns.get_mut(k) {
                c.paused = false;
                wake(c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::slab::Slab;

    #[test]
    fn backlog_pauses_and_resumes_readers() {
        let mut ob = Outboxes::new(2);
        let mut slab = Slab::new();
        let conn = slab.insert(());
        for _ in 0..HIGH_WATER {
            ob.push(1, MeshMsg::Ack { barrier: 1 });
        }
        assert!(ob.congested());
        ob.pause_reader(conn);
        assert!(ob.readers_to_resume().is_empty(), "still congested");
        let batch = ob.take(1);
        assert_eq!(batch.len(), HIGH_WATER);
        assert!(!ob.congested());
        assert_eq!(ob.readers_to_resume(), vec![conn]);
        assert!(ob.readers_to_resume().is_empty(), "resumed once");
        ob.push(0, MeshMsg::Ack { barrier: 2 }); // own id: ignored by callers, still counted
        assert_eq!(ob.take(0).len(), 1);
    }
}

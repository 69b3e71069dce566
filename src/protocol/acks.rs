//! Acknowledgements held behind barriers, released in order.
//!
//! Some acknowledgements promise something about *other* shards: a SUBACK
//! that introduced a new filter promises that publishes on any shard now reach
//! the subscriber; a PUBACK/PUBREC of a retained message promises that a later
//! subscriber on any shard gets it. Such an ack waits for a **barrier**: the
//! change is broadcast with a barrier id, every peer answers
//! [`MeshMsg::Ack`](crate::shard::mesh::MeshMsg::Ack) once it has applied it,
//! and the last answer releases the ack. Acks of one connection leave in the
//! order their packets arrived [MQTT-4.6.0-2..4]: an ack behind a held one
//! waits in the connection's queue too. What must follow an ack (the
//! retained messages of a SUBACK's subscriptions) waits with it.

use crate::codec::{Packet, QoS};
use crate::message::Message;
use crate::shard::slab::Key;
use crate::shard::{Barrier, HeldAck, Shard};
use std::collections::VecDeque;
use std::sync::Arc;

impl Shard {
    /// Open a barrier for `conn`: one answer expected from every peer.
    pub(super) fn new_barrier(&mut self, conn: Key) -> u64 {
        let id = self.next_barrier;
        self.next_barrier += 1;
        let remaining = self.shards - 1;
        self.barriers.insert(id, Barrier { remaining, conn });
        id
    }

    /// Send an ack now, or queue it behind `barrier` (0: none) and behind any
    /// ack of this connection still held.
    pub(super) fn send_ack(&mut self, conn: Key, packet: Packet, barrier: u64) {
        self.send_ack_then(conn, packet, barrier, Vec::new());
    }

    /// As [`send_ack`](Self::send_ack), then deliver `retained` to the
    /// connection's session right after the ack, whenever it leaves.
    pub(super) fn send_ack_then(
        &mut self,
        conn: Key,
        packet: Packet,
        barrier: u64,
        retained: Vec<(Arc<Message>, QoS)>,
    ) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        if barrier == 0 && c.held_acks.is_empty() {
            self.release(conn, packet, retained);
        } else {
            c.held_acks.push_back(HeldAck {
                barrier,
                packet,
                then_retained: retained,
            });
        }
    }

    /// A peer applied a barrier's change; the last one releases its ack (and
    /// the acks queued behind it).
    pub fn barrier_ack(&mut self, barrier: u64) {
        let Some(b) = self.barriers.get_mut(&barrier) else {
            return;
        };
        b.remaining = b.remaining.saturating_sub(1);
        if b.remaining > 0 {
            return;
        }
        let Some(b) = self.barriers.remove(&barrier) else {
            return;
        };
        let mut ready = Vec::new();
        if let Some(c) = self.conns.get_mut(b.conn) {
            if let Some(held) = c.held_acks.iter_mut().find(|h| h.barrier == barrier) {
                held.barrier = 0;
            }
            while c.held_acks.front().is_some_and(|h| h.barrier == 0) {
                ready.extend(c.held_acks.pop_front());
            }
            if c.held_acks.is_empty() {
                // Free the queue: an idle connection keeps no buffer.
                c.held_acks = VecDeque::new();
            }
        }
        for held in ready {
            self.release(b.conn, held.packet, held.then_retained);
        }
    }

    /// Send an ack, then what follows it.
    fn release(&mut self, conn: Key, packet: Packet, retained: Vec<(Arc<Message>, QoS)>) {
        self.send_packet(conn, &packet);
        if retained.is_empty() {
            return;
        }
        if let Some(sk) = self.conns.get(conn).and_then(|c| c.session) {
            for (msg, qos) in retained {
                self.deliver(sk, &msg, true, qos);
            }
        }
    }
}

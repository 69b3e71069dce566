//! Acknowledgements held behind barriers, released in order.
//!
//! Some acknowledgements promise something about *other* shards: a SUBACK
//! that introduced a new filter promises that publishes on any shard now reach
//! the subscriber; a PUBACK/PUBREC of a retained message promises that a later
//! subscriber on any shard gets it. Such an ack waits for a **barrier**: the
//! change is broadcast with a barrier id, every peer answers
//! [`MeshMsg::Ack`](crate::shard::mesh::MeshMsg::Ack) once it has applied it,
//! and the last answer lets the ack go. Acks of one connection leave in the
//! order their packets arrived [MQTT-4.6.0-2..4]: an ack behind a held one
//! waits in the connection's queue too. What must follow an ack (the
//! retained messages of a SUBACK's subscriptions) waits with it. The mesh
//! part owns the barriers; the connections part owns each held queue.

use crate::codec::Packet;
use crate::session::RetainedSend;
use crate::shard::conns::HeldAck;
use crate::shard::{ConnKey, Shard};

impl Shard {
    /// Open a barrier for `conn`: one answer expected from every peer.
    pub(super) fn new_barrier(&mut self, conn: ConnKey) -> u64 {
        self.mesh.open_barrier(conn, self.shards - 1)
    }

    /// Send an ack now, or queue it behind `barrier` (0: none) and behind any
    /// ack of this connection still held.
    pub(super) fn send_ack(&mut self, conn: ConnKey, packet: Packet, barrier: u64) {
        self.send_ack_then(conn, packet, barrier, Vec::new());
    }

    /// As [`send_ack`](Self::send_ack), then deliver `retained` to the
    /// connection's session right after the ack, whenever it leaves.
    pub(super) fn send_ack_then(
        &mut self,
        conn: ConnKey,
        packet: Packet,
        barrier: u64,
        retained: Vec<RetainedSend>,
    ) {
        if self.conns.get(conn).is_none() {
            return;
        }
        let barrier = self.durable_barrier(conn, barrier);
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        if barrier == 0 && !c.holds_acks() {
            self.ack_now(conn, packet, retained);
        } else {
            c.hold_ack(HeldAck {
                barrier,
                packet,
                then_retained: retained,
            });
        }
    }

    /// A peer applied a barrier's change; the last one lets its ack (and the
    /// acks queued behind it) go.
    pub fn barrier_answered(&mut self, barrier: u64) {
        let Some(conn) = self.mesh.barrier_answered(barrier) else {
            return;
        };
        let ready = match self.conns.get_mut(conn) {
            Some(c) => c.barrier_passed(barrier),
            None => return,
        };
        for held in ready {
            self.ack_now(conn, held.packet, held.then_retained);
        }
    }

    /// Send an ack, then what follows it: the retained messages of a
    /// SUBACK join the session's retained backlog, which is sent under flow
    /// control (`refill_window`).
    fn ack_now(&mut self, conn: ConnKey, packet: Packet, retained: Vec<RetainedSend>) {
        self.send_packet(conn, &packet);
        if retained.is_empty() {
            return;
        }
        let Some(sk) = self.conns.get(conn).and_then(|c| c.session()) else {
            return;
        };
        let cap = self.cfg.mqtt.max_retained;
        let dropped = self
            .sessions
            .get_mut(sk)
            .map_or(0, |s| s.add_retained_backlog(retained, cap));
        if dropped > 0 {
            self.metrics.retained_replay_dropped += dropped as u64;
            log::debug!(
                "{}: {dropped} retained messages beyond the backlog cap",
                self.who(conn)
            );
        }
        self.refill_window(sk);
    }
}

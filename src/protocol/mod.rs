//! The MQTT protocol handlers: what a shard does with each packet.
//!
//! Plain synchronous code over `&mut Shard` (no I/O, no `.await`): the
//! connection task decodes packets and calls [`Shard::handle_packet`]; output
//! is encoded into connection outboxes and mesh outboxes. One file per packet
//! family: `connect.rs` (CONNECT, takeover, disconnect, will, session
//! lifetime), `publish.rs` (inbound PUBLISH and the acknowledgements),
//! `subscribe.rs` (SUBSCRIBE/UNSUBSCRIBE, interest table, retained on
//! subscribe), `deliver.rs` (routing, fan-out, the window and queue, retry)
//! and `acks.rs` (acknowledgements held until every shard applied a change).

mod acks;
mod connect;
pub mod deliver;
mod publish;
mod subscribe;

use crate::codec::Packet;
use crate::shard::slab::Key;
use crate::shard::{CloseReason, Shard};

impl Shard {
    /// Handle one packet from a connected client. `Err` closes the connection.
    pub fn handle_packet(&mut self, conn: Key, packet: Packet) -> Result<(), CloseReason> {
        let Some(sk) = self.conns.get(conn).and_then(|c| c.session) else {
            // Taken over or closing: ignore what is still in flight.
            return Err(CloseReason::SocketClosed);
        };
        match packet {
            Packet::Publish(p) => return self.on_publish(conn, sk, p),
            Packet::PubAck(id) => self.on_puback(sk, id),
            Packet::PubRec(id) => self.on_pubrec(conn, sk, id),
            Packet::PubRel(id) => self.on_pubrel(conn, sk, id),
            Packet::PubComp(id) => self.on_pubcomp(sk, id),
            Packet::Subscribe(s) => self.on_subscribe(conn, sk, s),
            Packet::Unsubscribe(u) => self.on_unsubscribe(conn, sk, u),
            Packet::PingReq => self.send_packet(conn, &Packet::PingResp),
            Packet::Disconnect => {
                if let Some(c) = self.conns.get_mut(conn) {
                    c.will = None;
                }
                return Err(CloseReason::Normal);
            }
            Packet::Connect(_) => {
                log::info!("{}: second CONNECT, closing [MQTT-3.1.0-2]", self.who(conn));
                self.metrics.protocol_errors += 1;
                return Err(CloseReason::ProtocolError);
            }
            other => {
                log::info!("{}: unexpected {other:?}, closing", self.who(conn));
                self.metrics.protocol_errors += 1;
                return Err(CloseReason::ProtocolError);
            }
        }
        Ok(())
    }
}

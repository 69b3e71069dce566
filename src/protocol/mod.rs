//! The MQTT protocol handlers: what a shard does with each packet.
//!
//! Plain synchronous code over `&mut Shard` (no I/O, no `.await`): the
//! connection task decodes packets and calls [`Shard::on_packet`]; the
//! handlers borrow the shard's parts (connections, sessions, router, mesh,
//! timers, journal), encode output into connection outboxes and mesh
//! queues, and make every durable change through the sessions part, which
//! emits its session event. One file per packet family: `connect.rs`
//! (CONNECT, takeover, the end of a connection, the will, session lifetime),
//! `auth.rs` (MQTT 5 enhanced authentication and re-authentication),
//! `login.rs` (logins: password file, JWT, client ids, the hook, and the
//! CONNECT held while one is checked),
//! `acl.rs` (the access-control checks of PUBLISH, SUBSCRIBE and wills),
//! `publish.rs` (inbound PUBLISH and the acknowledgements), `publish5.rs`
//! (the MQTT 5 checks before a PUBLISH is routed), `subscribe.rs`
//! (SUBSCRIBE/UNSUBSCRIBE, interest table, retained on subscribe),
//! `deliver.rs` (routing, fan-out, the window and queue, retry), `shared.rs`
//! (shared subscriptions: one member per group, redistribution), `acks.rs`
//! (acknowledgements held until every shard applied a change), `strict.rs`
//! (the `[strict]` rules and the MUSTs the codec cannot see, checked before
//! a handler acts) and `replay.rs` (session events applied back to an empty
//! shard). `tests/`
//! drives the handlers through the sans-IO harness (`crate::shard::harness`).

mod acks;
mod acl;
mod auth;
mod connect;
mod connect5;
pub mod deliver;
mod login;
mod publish;
mod publish5;
mod replay;
mod shared;
mod strict;
mod subscribe;
#[cfg(test)]
mod tests;

use crate::codec::Packet;
use crate::shard::{CloseReason, ConnKey, Phase, SessionKey, Shard};

impl Shard {
    /// Handle one packet from a connection, in whatever phase it is.
    /// `Err` closes the connection (after its outbox is flushed).
    pub fn on_packet(&mut self, conn: ConnKey, packet: Packet) -> Result<(), CloseReason> {
        self.packet_mark = self.journal.appended();
        self.mesh.take_touched();
        self.metrics.count_received(&packet);
        let Some(c) = self.conns.get(conn) else {
            return Err(CloseReason::SocketClosed);
        };
        match *c.phase() {
            Phase::Connected { session, .. } => self.on_session_packet(conn, session, packet),
            // Taken over or closing: ignore what is still in flight.
            Phase::Closing(reason) => Err(reason),
            Phase::Authenticating(_) => self.on_authenticating(conn, packet),
            Phase::Verifying(_) => self.on_verifying(conn, packet),
            Phase::AwaitingConnect => match packet {
                Packet::Connect(connect) => self.on_connect(conn, *connect),
                _ => {
                    log::info!(
                        "{}: first packet is not CONNECT, closing [MQTT-3.1.0-1]",
                        self.who(conn)
                    );
                    self.metrics.protocol_errors += 1;
                    Err(CloseReason::ProtocolError)
                }
            },
        }
    }

    /// A packet from a connected client.
    fn on_session_packet(
        &mut self,
        conn: ConnKey,
        sk: SessionKey,
        packet: Packet,
    ) -> Result<(), CloseReason> {
        match packet {
            Packet::Publish(p) => return self.on_publish(conn, sk, p),
            Packet::PubAck(ack) => self.on_puback(conn, sk, ack.pkid)?,
            Packet::PubRec(ack) => self.on_pubrec(conn, sk, ack.pkid)?,
            Packet::PubRel(ack) => self.on_pubrel(conn, sk, ack.pkid),
            Packet::PubComp(ack) => self.on_pubcomp(conn, sk, ack.pkid)?,
            Packet::Subscribe(s) => self.on_subscribe(conn, sk, s)?,
            Packet::Unsubscribe(u) => self.on_unsubscribe(conn, sk, u)?,
            Packet::PingReq => self.send_packet(conn, &Packet::PingResp),
            Packet::Auth(a) => self.on_auth(conn, a)?,
            Packet::Disconnect(d) => return self.on_disconnect(conn, sk, d),
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

    /// Append a packet to a connection's outbox and wake its task.
    pub fn send_packet(&mut self, conn: ConnKey, packet: &Packet) {
        if let Some(c) = self.conns.get_mut(conn) {
            c.send(packet);
            self.metrics.count_sent(packet);
        }
    }
}

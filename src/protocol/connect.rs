//! CONNECT, takeover, disconnect, the will, and session lifetime.
//!
//! Runs on the client's home shard, so takeover (the same client id
//! connecting again) is a single-threaded state change: the old connection
//! is told to close (its will fires), and the session passes to the new one.

use crate::codec::{ConnAck, Connect, ConnectReturnCode, LastWill, Packet};
use crate::hooks::ClientInfo;
use crate::session::Session;
use crate::shard::slab::Key;
use crate::shard::{CloseReason, Shard, TimerItem};
use std::rc::Rc;
use std::sync::Arc;

impl Shard {
    /// CONNECT from a new connection on its home shard.
    pub fn on_connect(&mut self, conn: Key, connect: Connect) -> Result<(), CloseReason> {
        if connect.client_id.len() > self.cfg.mqtt.max_client_id_len {
            log::info!(
                "{}: client id of {} bytes refused",
                self.who(conn),
                connect.client_id.len()
            );
            return self.refuse(conn, ConnectReturnCode::IdentifierRejected);
        }
        let client_id: Arc<str> = if connect.client_id.is_empty() {
            if !connect.clean_session {
                // [MQTT-3.1.3-8]
                log::info!(
                    "{}: empty client id with clean session 0 refused",
                    self.who(conn)
                );
                return self.refuse(conn, ConnectReturnCode::IdentifierRejected);
            }
            self.assign_client_id()
        } else {
            connect.client_id.as_str().into()
        };
        let (sk, present) = self.take_session(&client_id, connect.clean_session);
        let now = self.now_ms();
        let peer = self.conns.get(conn).map(|c| c.peer);
        let info = Rc::new(ClientInfo {
            client_id: client_id.clone(),
            username: connect.username.as_deref().map(Arc::from),
            peer,
            version: connect.version,
            shard: self.id,
        });
        if let Some(s) = self.sessions.get_mut(sk) {
            s.conn = Some(conn);
        }
        let keepalive_ms = u64::from(connect.keep_alive) * 1000;
        if let Some(c) = self.conns.get_mut(conn) {
            c.session = Some(sk);
            c.keepalive_ms = keepalive_ms;
            c.will = connect.will.map(Box::new);
            c.info = Some(info.clone());
            c.last_seen_ms = now;
        }
        let ack = ConnAck {
            session_present: present,
            code: ConnectReturnCode::Accepted,
        };
        self.send_packet(conn, &Packet::ConnAck(ack));
        if let Some(c) = self.conns.get(conn).filter(|c| c.keepalive_ms > 0) {
            self.wheel
                .insert(c.keepalive_deadline(), TimerItem::Keepalive(conn));
        }
        self.metrics.connects_accepted += 1;
        log::debug!(
            "{}: connected ({:?}, clean {}, present {present})",
            self.who(conn),
            connect.version,
            connect.clean_session
        );
        self.hooks.client_connected(&info);
        if present {
            self.resend_inflight(sk);
            self.drain(sk);
        }
        Ok(())
    }

    /// Send a refusing CONNACK; the connection closes after it is written.
    fn refuse(&mut self, conn: Key, code: ConnectReturnCode) -> Result<(), CloseReason> {
        self.metrics.connects_refused += 1;
        let ack = ConnAck {
            session_present: false,
            code,
        };
        self.send_packet(conn, &Packet::ConnAck(ack));
        Err(CloseReason::Refused)
    }

    /// A server-assigned id that hashes to this shard, so a later client
    /// reusing it lands here too.
    fn assign_client_id(&mut self) -> Arc<str> {
        loop {
            self.assigned += 1;
            let id = format!("coremq-{}-{}", self.id, self.assigned);
            if Shard::home_of(&id, self.shards) == self.id
                && !self.by_client.contains_key(id.as_str())
            {
                return id.into();
            }
        }
    }

    /// Find or make the session for a CONNECT; closes a connection that holds it
    /// (takeover). Returns the session and whether it was resumed.
    fn take_session(&mut self, client_id: &Arc<str>, clean: bool) -> (Key, bool) {
        if let Some(old) = self.by_client.get(client_id).copied() {
            let (old_conn, old_clean) = match self.sessions.get_mut(old) {
                Some(s) => (s.conn.take(), s.clean),
                None => (None, true),
            };
            if let Some(oc) = old_conn {
                log::info!("{}: taken over by a new connection", self.who(oc));
                self.metrics.takeovers += 1;
                if let Some(c) = self.conns.get_mut(oc) {
                    c.session = None;
                }
                self.close_conn(oc, CloseReason::Takeover);
            }
            if !clean && !old_clean {
                return (old, true);
            }
            self.discard_session(old);
        }
        let session = Session::new(client_id.clone(), clean, &self.cfg.session);
        let sk = self.sessions.insert(session);
        self.by_client.insert(client_id.clone(), sk);
        (sk, false)
    }

    /// The connection task ended: publish the will unless it was a clean
    /// DISCONNECT, run the hook, and detach or discard the session.
    pub fn conn_closed(&mut self, conn: Key, reason: CloseReason) {
        let Some(c) = self.conns.remove(conn) else {
            return;
        };
        if reason == CloseReason::HandedOff {
            return;
        }
        if let Some(sk) = c.session {
            self.detach_session(sk, conn);
        }
        let Some(info) = c.info else { return };
        log::debug!(
            "shard {} client {:?}: disconnected ({})",
            self.id,
            info.client_id,
            reason.as_str()
        );
        if let Some(will) = c.will.filter(|_| reason != CloseReason::Normal) {
            self.publish_will(&info, *will);
        }
        self.hooks.client_disconnected(&info, reason.as_str());
    }

    fn detach_session(&mut self, sk: Key, conn: Key) {
        let expiry_ms = self.cfg.session.expiry_s * 1000;
        let now = self.now_ms();
        let Some(s) = self.sessions.get_mut(sk) else {
            return;
        };
        if s.conn != Some(conn) {
            return;
        }
        s.conn = None;
        s.epoch = s.epoch.wrapping_add(1);
        if s.clean {
            self.discard_session(sk);
        } else {
            let epoch = s.epoch;
            self.wheel
                .insert(now + expiry_ms, TimerItem::Expire(sk, epoch));
        }
    }

    fn publish_will(&mut self, info: &ClientInfo, will: LastWill) {
        log::debug!(
            "shard {} client {:?}: publishing will on {:?}",
            self.id,
            info.client_id,
            will.topic
        );
        self.metrics.wills_published += 1;
        self.publish_message(info, will.topic, will.payload, will.qos, will.retain, None);
    }

    /// Remove a session: its subscriptions leave the trie (and the interest
    /// table when they were the shard's last), queued messages are dropped
    /// and counted.
    pub fn discard_session(&mut self, sk: Key) {
        let Some(s) = self.sessions.remove(sk) else {
            return;
        };
        if self.by_client.get(&s.client_id) == Some(&sk) {
            self.by_client.remove(&s.client_id);
        }
        let dropped = s.inflight.len() + s.mqueue.len();
        self.metrics.dropped_session_discarded += dropped as u64;
        if dropped > 0 {
            log::debug!(
                "shard {}: session {:?} discarded with {dropped} undelivered messages",
                self.id,
                s.client_id
            );
        }
        let mut changes = Vec::new();
        s.subs.for_each(|f, _| {
            if let Some(gone) = self.unsubscribe_local(sk, f) {
                changes.push((gone, false));
            }
        });
        self.announce_interest(changes, 0);
    }
}

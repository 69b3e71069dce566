//! CONNECT, takeover, the end of a connection, the will, and session lifetime.
//!
//! Runs on the client's home shard, so takeover (the same client id
//! connecting again) is a single-threaded state change: the old connection
//! is closed (its will fires), and the session passes to the new one. The
//! link between a connection and its session is made here ([`Shard::link`])
//! and broken here ([`Shard::close_conn`]), both sides in step. A CONNECT is
//! refused first for control characters (`strict.control_characters`: closed,
//! no CONNACK), then with CONNACK 0x02 for its client id (too long, empty
//! under MQTT 3.1 or with clean session 0, over 23 characters under 3.1 when
//! `strict.mqtt31_client_id_over_23` rejects it), then for a limit, then by
//! its credentials (`auth.rs` for an MQTT 5 Authentication Method,
//! `login.rs` for everything else).

use super::connect5::expiry_secs;
use crate::codec::{ConnAck, Connect, LastWill, Packet, Properties, ProtocolVersion, Reason};
use crate::config::Strictness;
use crate::hooks::ClientInfo;
use crate::session::store::Ending;
use crate::session::{Expiry, PendingWill};
use crate::shard::conns::ConnV5;
use crate::shard::{home_shard, CloseReason, ConnKey, Phase, SessionKey, Shard, TimerItem};
use std::rc::Rc;
use std::sync::Arc;

/// The longest client id MQTT 3.1 allows, in characters.
const MQTT31_MAX_CLIENT_ID_CHARS: usize = 23;

impl Shard {
    /// Register a new socket (`fd` -1 without one) that came in as `origin`
    /// says; arms its connect timeout.
    pub fn add_conn(
        &mut self,
        peer: std::net::SocketAddr,
        fd: std::os::fd::RawFd,
        origin: crate::transport::Origin,
    ) -> ConnKey {
        let now = self.timers.now_ms();
        let key = self.conns.add(peer, fd, origin, now);
        let deadline = now + self.cfg.mqtt.connect_timeout_s * 1000;
        self.timers.arm(deadline, TimerItem::ConnectTimeout(key));
        key
    }

    /// Start a connected connection's keepalive checks: with the connect
    /// timer (armed when it came, so due by now + connect_timeout_s) when
    /// that fires before the keepalive can be due, else with a timer of
    /// its own.
    fn arm_keepalive(&mut self, conn: ConnKey) {
        let connect_due = self.timers.now_ms() + self.cfg.mqtt.connect_timeout_s * 1000;
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        match c.keepalive_deadline() {
            Some(deadline) if deadline >= connect_due => c.defer_keepalive(),
            Some(deadline) => self.timers.arm(deadline, TimerItem::Keepalive(conn)),
            None => {}
        }
    }

    /// CONNECT from a new connection on its home shard.
    pub(super) fn on_connect(
        &mut self,
        conn: ConnKey,
        connect: Connect,
    ) -> Result<(), CloseReason> {
        if let Some(c) = self.conns.get_mut(conn) {
            // From here on the connection is encoded for its own version.
            c.set_version(connect.version);
        }
        let will_topic = connect.will.as_ref().map(|w| &*w.topic);
        self.refuse_control_chars(
            conn,
            [
                ("client id", Some(connect.client_id.as_str())),
                ("user name", connect.username.as_deref()),
                ("will topic", will_topic),
            ]
            .into_iter()
            .filter_map(|(what, text)| Some((what, text?))),
        )?;
        if connect.client_id.len() > self.cfg.mqtt.max_client_id_len {
            log::info!(
                "{}: client id of {} bytes refused",
                self.who(conn),
                connect.client_id.len()
            );
            return self.refuse(
                conn,
                Reason::CLIENT_IDENTIFIER_NOT_VALID,
                "client id too long",
            );
        }
        if connect.version == ProtocolVersion::V31 && !self.mqtt31_client_id_ok(conn, &connect) {
            return self.refuse(
                conn,
                Reason::CLIENT_IDENTIFIER_NOT_VALID,
                "MQTT 3.1 client id",
            );
        }
        if let Some((code, why)) = self.over_connect_limits(conn, &connect) {
            return self.refuse(conn, code, why);
        }
        if super::auth::has_method(&connect) {
            // MQTT 5 enhanced authentication first (`auth.rs`) [MQTT-4.12.0-1].
            return self.start_connect_auth(conn, connect);
        }
        // Logins and anonymous clients (`login.rs`).
        self.login(conn, connect)
    }

    /// The accepting half of CONNECT, for a CONNECT that passed the checks
    /// above and, with an Authentication Method, its exchange (`auth_data`:
    /// the authenticator's last data, for CONNACK).
    pub(super) fn accept_connect(
        &mut self,
        conn: ConnKey,
        connect: Connect,
        auth_data: Option<bytes::Bytes>,
    ) -> Result<(), CloseReason> {
        let v5 = connect.version.is_v5();
        let client_id: Arc<str> = if connect.client_id.is_empty() {
            if !connect.clean_session && !v5 {
                // [MQTT-3.1.3-8]
                log::info!(
                    "{}: empty client id with clean session 0 refused",
                    self.who(conn)
                );
                return self.refuse(conn, Reason::CLIENT_IDENTIFIER_NOT_VALID, "empty client id");
            }
            // [MQTT-3.1.3-6]
            let (id, shards) = (self.id, self.shards);
            self.sessions
                .assign_client_id(id, |c| home_shard(c, shards) == id)
        } else {
            connect.client_id.as_str().into()
        };
        let peer = v5.then(|| ConnV5::from_connect(connect.props.as_deref()));
        let expiry = self.expiry_for(connect.clean_session, peer.as_ref());
        if self.storage.is_full()
            && matches!(expiry, Expiry::AfterSecs(_))
            && (connect.clean_session || self.sessions.find(&client_id).is_none())
        {
            self.metrics.storage_refused_sessions += 1;
            log::warn!(
                "{}: the storage log cannot be written (disk full?): new persistent session refused",
                self.who(conn)
            );
            return self.refuse(conn, Reason::SERVER_UNAVAILABLE, "storage full");
        }
        let (sk, present) = self.take_session(&client_id, connect.clean_session, expiry);
        let info = Rc::new(ClientInfo {
            client_id: client_id.clone(),
            username: connect.username.as_deref().map(Arc::from),
            peer: self.conns.get(conn).map(|c| c.peer()),
            version: connect.version,
            shard: self.id,
        });
        let keepalive_s = self.keepalive_for(connect.keep_alive);
        self.link(conn, sk, info.clone(), keepalive_s);
        if present {
            self.acl_recheck_session(sk, &info);
        }
        let props = v5.then(|| {
            let granted = expiry_secs(expiry);
            let asked = connect
                .props
                .as_ref()
                .and_then(|p| p.session_expiry_interval);
            let lowered = (asked.unwrap_or(0) != granted).then_some(granted);
            let keepalive = (keepalive_s != connect.keep_alive).then_some(keepalive_s);
            let assigned = connect.client_id.is_empty();
            self.connack_props(&connect, &client_id, assigned, lowered, keepalive)
        });
        let props = props.map(|p| super::auth::with_method(p, &connect, auth_data));
        let window = peer.as_ref().map_or(u16::MAX, |p| p.receive_maximum);
        let window = self.cfg.session.inflight_window.min(usize::from(window));
        if let Some(s) = self.sessions.get_mut(sk) {
            s.set_window_max(window);
            s.set_will(connect.will.map(|mut w| {
                // Kept for the connection's life: never pin its read buffer.
                w.payload = crate::message::compact(w.payload);
                w
            }));
        }
        if let (Some(mut p), Some(c)) = (peer, self.conns.get_mut(conn)) {
            p.cap_aliases_out(self.cfg.mqtt.max_topic_aliases_out);
            c.set_v5(p);
        }
        let ack = ConnAck {
            session_present: present,
            code: Reason::SUCCESS,
            props,
        };
        self.send_packet(conn, &Packet::ConnAck(ack));
        self.arm_keepalive(conn);
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
            self.refill_window(sk);
        }
        Ok(())
    }

    /// MQTT 3.1 (§3.1, Client Identifier) allows 1 to 23 characters: an
    /// empty id is refused (there is no assigned id in 3.1), a longer one
    /// only when `strict.mqtt31_client_id_over_23` rejects it.
    fn mqtt31_client_id_ok(&self, conn: ConnKey, connect: &Connect) -> bool {
        let chars = connect.client_id.chars().count();
        let why = if chars == 0 {
            "empty MQTT 3.1 client id"
        } else if chars > MQTT31_MAX_CLIENT_ID_CHARS
            && self.cfg.strict.mqtt31_client_id_over_23 == Strictness::Reject
        {
            "MQTT 3.1 client id over 23 characters (strict.mqtt31_client_id_over_23)"
        } else {
            return true;
        };
        log::info!("{}: {why}, refused", self.who(conn));
        false
    }

    /// A CONNECT that would take the broker past a limit: the refusal code.
    /// A will over `max_will_bytes` is not authorized (0x05); a new session
    /// beyond this shard's share of `max_sessions` finds the server
    /// unavailable (0x03).
    fn over_connect_limits(
        &mut self,
        conn: ConnKey,
        connect: &Connect,
    ) -> Option<(Reason, &'static str)> {
        let limits = &self.cfg.limits;
        if let Some(w) = &connect.will {
            let props = crate::codec::held_properties_len(w.props.as_deref());
            let bytes = w.topic.len() + w.payload.len() + props;
            if bytes > limits.max_will_bytes {
                log::info!(
                    "{}: will of {bytes} bytes over max_will_bytes ({}), refused",
                    self.who(conn),
                    limits.max_will_bytes
                );
                self.metrics.wills_refused += 1;
                // 0x05 for 3.1.1 as before; MQTT 5 has a code for it.
                let code = match connect.version.is_v5() {
                    true => Reason::QUOTA_EXCEEDED,
                    false => Reason::NOT_AUTHORIZED,
                };
                return Some((code, "will over max_will_bytes"));
            }
            if let Some(refusal) = self.will_unavailable(w) {
                return Some(refusal);
            }
        }
        let share = limits.max_sessions.div_ceil(self.shards);
        let new_session =
            connect.client_id.is_empty() || self.sessions.find(&connect.client_id).is_none();
        if new_session && self.sessions.len() >= share {
            if let Some(held) = self.lines.sessions_full.allow() {
                log::warn!(
                    "{}: this shard holds {share} sessions (max_sessions {}), refused{held}",
                    self.who(conn),
                    self.cfg.limits.max_sessions
                );
            }
            self.metrics.sessions_refused_limit += 1;
            return Some((Reason::SERVER_UNAVAILABLE, "max_sessions reached"));
        }
        None
    }

    /// The keepalive a client is held to: its own, unless `max_keepalive`
    /// is set and it asked for none or a longer one.
    fn keepalive_for(&self, asked: u16) -> u16 {
        match self.cfg.limits.max_keepalive {
            0 => asked,
            max if asked == 0 || asked > max => max,
            _ => asked,
        }
    }

    /// Send a refusing CONNACK (with `why` as its reason string for an MQTT 5
    /// client); the connection closes after it is written.
    pub(super) fn refuse(
        &mut self,
        conn: ConnKey,
        code: Reason,
        why: &str,
    ) -> Result<(), CloseReason> {
        self.metrics.connects_refused += 1;
        let v5 = self.conns.get(conn).is_some_and(|c| c.version().is_v5());
        let props = v5.then(|| {
            Box::new(Properties {
                reason_string: Some(why.to_owned()),
                ..Properties::default()
            })
        });
        let ack = ConnAck {
            session_present: false,
            code,
            props,
        };
        self.send_packet(conn, &Packet::ConnAck(ack));
        Err(CloseReason::Refused)
    }

    /// Find or make the session for a CONNECT, closing a connection that
    /// holds it (takeover): a clean start (3.1.1: clean session) discards an
    /// existing one. Returns the session and whether it was resumed.
    fn take_session(
        &mut self,
        client_id: &Arc<str>,
        clean_start: bool,
        expiry: Expiry,
    ) -> (SessionKey, bool) {
        let old_conn = self
            .sessions
            .find(client_id)
            .and_then(|sk| self.sessions.get(sk))
            .and_then(|s| s.conn());
        if let Some(oc) = old_conn {
            log::info!("{}: taken over by a new connection", self.who(oc));
            self.metrics.takeovers += 1;
            self.close_conn(oc, CloseReason::Takeover);
        }
        // A clean session of the old connection ended with it.
        match self.sessions.find(client_id) {
            Some(sk) if !clean_start => {
                // Taken up again within the will delay: no will [MQTT-3.1.3-9].
                if let Some(p) = self
                    .sessions
                    .get_mut(sk)
                    .and_then(|s| s.take_delayed_will())
                {
                    log::debug!(
                        "shard {}: {:?} back within its will delay",
                        self.id,
                        p.info.client_id
                    );
                    self.metrics.wills_cancelled += 1;
                }
                self.sessions.resume(&mut self.journal, sk, expiry);
                return (sk, true);
            }
            Some(sk) => self.end_session(sk, Ending::Discarded),
            None => {}
        }
        let sk = self
            .sessions
            .create(&mut self.journal, client_id.clone(), expiry);
        (sk, false)
    }

    /// Link a connection and its session, both sides.
    fn link(&mut self, conn: ConnKey, sk: SessionKey, info: Rc<ClientInfo>, keepalive_s: u16) {
        let now = self.timers.now_ms();
        self.sessions.set_conn(sk, Some(conn));
        self.client_event(&info, None);
        self.conns.connected(conn, sk, info, keepalive_s, now);
    }

    /// Ask a connection's task to close it. The first time, the session side
    /// ends at once: the session is unlinked (and discarded, or its expiry
    /// armed), the will is published unless the client sent DISCONNECT, and
    /// the `client.disconnected` hook runs.
    pub fn close_conn(&mut self, conn: ConnKey, reason: CloseReason) {
        let Some(Phase::Connected { session, info }) = self.conns.close(conn, reason) else {
            return;
        };
        let will = self.sessions.get_mut(session).and_then(|s| s.take_will());
        let will = will.filter(|_| reason != CloseReason::Normal);
        let delay_s = will.as_deref().map_or(0, will_delay_s);
        match (will, self.sessions.get_mut(session)) {
            // Held until the delay or the session ends, whichever is first
            // (`unlink` may end it now) [MQTT-3.1.3-9].
            (Some(will), Some(s)) if delay_s > 0 => s.delay_will(PendingWill {
                will: *will,
                info: info.clone(),
            }),
            (Some(will), _) => self.publish_will(&info, *will),
            (None, _) => {}
        }
        self.unlink(session, conn);
        self.client_event(&info, Some(reason.as_str()));
        if let Some(s) = self.sessions.get(session).filter(|_| delay_s > 0) {
            let deadline = self.timers.now_ms() + u64::from(delay_s) * 1000;
            self.timers
                .arm(deadline, TimerItem::Will(session, s.epoch()));
        }
        log::debug!(
            "shard {} client {:?}: disconnected ({})",
            self.id,
            info.client_id,
            reason.as_str()
        );
        self.hooks.client_disconnected(&info, reason.as_str());
    }

    /// A delayed will's timer: publish it if the session is still offline
    /// since that disconnect.
    pub(crate) fn will_delay_over(&mut self, sk: SessionKey, epoch: u32) {
        let pending = self
            .sessions
            .get_mut(sk)
            .filter(|s| s.conn().is_none() && s.epoch() == epoch)
            .and_then(|s| s.take_delayed_will());
        if let Some(p) = pending {
            self.publish_will(&p.info, p.will);
        }
    }

    /// The connection task ended (its socket is closed or handed over).
    pub fn conn_closed(&mut self, conn: ConnKey, reason: CloseReason) {
        self.close_conn(conn, reason);
        self.conns.remove(conn);
    }

    /// The session lost its connection: discard it or arm its expiry.
    fn unlink(&mut self, sk: SessionKey, conn: ConnKey) {
        let Some(s) = self.sessions.get(sk).filter(|s| s.conn() == Some(conn)) else {
            return;
        };
        let expiry = s.expiry();
        let epoch = self.sessions.set_conn(sk, None);
        let at_ms = crate::message::wall_clock_us() / 1000;
        self.journal
            .emit_for(sk, || crate::session::event::SessionEvent::Offline {
                session: sk,
                at_ms,
            });
        match expiry {
            Expiry::OnDisconnect => self.end_session(sk, Ending::Discarded),
            Expiry::AfterSecs(secs) => {
                let deadline = self.timers.now_ms() + u64::from(secs) * 1000;
                self.timers.arm(deadline, TimerItem::Expire(sk, epoch));
            }
        }
    }

    fn publish_will(&mut self, info: &ClientInfo, will: LastWill) {
        log::debug!(
            "shard {} client {:?}: publishing will on {:?}",
            self.id,
            info.client_id,
            will.topic
        );
        if !self.acl_allows_will(info, &will.topic) {
            return;
        }
        self.metrics.wills_published += 1;
        let p = crate::codec::Publish {
            dup: false,
            qos: will.qos,
            retain: will.retain,
            topic: will.topic,
            pkid: 0,
            payload: will.payload,
            // Its properties but the Will Delay Interval travel with it.
            props: will.props,
        };
        self.publish_message(info, p, None);
    }

    /// Remove a session: its subscriptions leave the index (and the
    /// interest table when they were the shard's last), it leaves its shared
    /// groups, and what it held through a group goes to another member of
    /// it (`shared.rs`); other undelivered messages are dropped and counted.
    pub(crate) fn end_session(&mut self, sk: SessionKey, how: Ending) {
        self.end_session_as(sk, how, true);
    }

    /// As [`end_session`](Self::end_session); `live` false (a replay) hands
    /// nothing back to the groups and publishes no will: the live shard's
    /// events for that follow.
    pub(crate) fn end_session_as(&mut self, sk: SessionKey, how: Ending, live: bool) {
        // A will still waiting out its delay goes now [MQTT-3.1.3-9].
        let will = self
            .sessions
            .get_mut(sk)
            .and_then(|s| s.take_delayed_will())
            .filter(|_| live);
        if let Some(p) = will {
            self.publish_will(&p.info, p.will);
        }
        let Some(s) = self.sessions.end(&mut self.journal, sk, how) else {
            return;
        };
        let leftovers = if live {
            s.shared_leftovers()
        } else {
            Vec::new()
        };
        let dropped = s.undelivered() - leftovers.len();
        self.metrics.dropped_session_discarded += dropped as u64;
        if dropped > 0 {
            log::debug!(
                "shard {}: session {:?} ended with {dropped} undelivered messages",
                self.id,
                s.client_id()
            );
        }
        let mut changes = Vec::new();
        s.for_each_filter(|f| changes.extend(self.router.unsubscribe(sk, f)));
        self.announce(changes, 0);
        self.redistribute(leftovers);
    }
}

/// The will's delay in seconds (MQTT 5 Will Delay Interval; 0 for 3.1.1).
fn will_delay_s(will: &LastWill) -> u32 {
    will.props
        .as_ref()
        .and_then(|p| p.will_delay_interval)
        .unwrap_or(0)
}

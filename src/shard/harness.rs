//! The sans-IO harness: a shard driven without sockets or executors.
//!
//! [`H`] owns one [`Shard`] and plays the part of its connection tasks and of
//! its peers: it feeds decoded packets to [`Shard::on_packet`], mesh messages
//! to [`Shard::on_mesh`] and timer expiries to [`Shard::tick`] (after moving
//! the shard clock forward), and reads back the effects: packets written to
//! each connection's outbox, messages queued for each peer, timers armed and
//! session events emitted. Like a connection task it closes a connection
//! whose handler returned an error or that the shard asked to close, and
//! refills a session's window once its outbox was written. The handler tests
//! and the event-replay property test below use it.

use super::mesh::MeshMsg;
use super::{CloseReason, ConnKey, Shard, TimerItem};
use crate::codec::Ack;
use crate::codec::{self, Connect, LastWill, Packet, ProtocolVersion, Publish, QoS, Side};
use crate::codec::{ConnAck, Properties, Reason, SubAckCode, Subscribe, SubscribeFilter};
use crate::config::{Config, QueueDropPolicy};
use crate::hooks::Hooks;
use crate::metrics::MetricsBoard;
use crate::session::event::SessionEvent;
use crate::session::DurableView;
use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// A shard and the harness's view of its connections.
pub(crate) struct H {
    pub shard: Shard,
    /// Output of connections that closed before the test read it.
    closed_output: HashMap<ConnKey, Vec<u8>>,
    /// Why each closed connection closed.
    pub closed: HashMap<ConnKey, CloseReason>,
    /// The protocol version of each closed connection (to read its output).
    closed_versions: HashMap<ConnKey, ProtocolVersion>,
    /// Packets read from an outbox but not yet returned to the test (what
    /// followed a CONNACK).
    unread: HashMap<ConnKey, Vec<Packet>>,
    next_port: u16,
}

/// A subscription as the router holds it: filter and options.
type Granted = (String, Option<crate::router::SubOpts>);

/// Everything that must survive a restart, in a comparable form.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Durable {
    /// Per session: its durable view and its subscriptions with granted QoS.
    sessions: Vec<(DurableView, Vec<Granted>)>,
    /// Shared groups with members here, and their members.
    shared: Vec<(String, Vec<crate::router::shared::Member>)>,
    /// Retained messages: topic and message id.
    retained: Vec<(String, u128)>,
}

impl Durable {
    /// Only the sessions of these client ids, and no shared-group view
    /// (what the storage log keeps: durable sessions and retained messages).
    pub fn only_sessions(mut self, ids: &[String]) -> Durable {
        self.sessions.retain(|(v, _)| ids.contains(&v.client_id));
        self.shared.clear();
        self
    }
}

pub(crate) fn connect_packet(id: &str, clean: bool, will: Option<LastWill>) -> Packet {
    Packet::Connect(Box::new(Connect {
        version: ProtocolVersion::V311,
        client_id: id.into(),
        clean_session: clean,
        keep_alive: 60,
        will,
        username: None,
        password: None,
        props: None,
    }))
}

/// An MQTT 5 CONNECT with these properties (boxed when any is set).
pub(crate) fn connect5_packet(
    id: &str,
    clean: bool,
    props: Properties,
    will: Option<LastWill>,
) -> Packet {
    let Packet::Connect(mut c) = connect_packet(id, clean, will) else {
        unreachable!("connect_packet builds a CONNECT");
    };
    c.version = ProtocolVersion::V5;
    c.props = (props != Properties::default()).then(|| Box::new(props));
    Packet::Connect(c)
}

pub(crate) fn publish(
    topic: &str,
    payload: &'static [u8],
    qos: QoS,
    pkid: u16,
    retain: bool,
) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain,
        topic: topic.into(),
        pkid,
        payload: Bytes::from_static(payload),
        props: None,
    })
}

pub(crate) fn subscribe(pkid: u16, filters: &[(&str, QoS)]) -> Packet {
    Packet::Subscribe(Subscribe {
        pkid,
        filters: filters
            .iter()
            .map(|(f, q)| SubscribeFilter::new(*f, *q))
            .collect(),
        props: None,
    })
}

pub(crate) fn will(topic: &str) -> Option<LastWill> {
    Some(LastWill {
        topic: topic.into(),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        props: None,
    })
}

impl H {
    /// Shard 0 of `shards`, default configuration, journal recording.
    pub fn new(shards: usize) -> H {
        H::with(Config::default(), shards)
    }

    pub fn with(cfg: Config, shards: usize) -> H {
        H::with_hooks(cfg, shards, Hooks::new())
    }

    /// As [`H::with`], with these hooks (authenticators, ...).
    pub fn with_hooks(cfg: Config, shards: usize, hooks: Hooks) -> H {
        let mut shard = Shard::new(
            0,
            shards,
            Arc::new(cfg),
            Arc::new(hooks),
            MetricsBoard::new(shards),
            Arc::new(AtomicBool::new(false)),
        );
        shard.journal.record();
        H {
            shard,
            closed_output: HashMap::new(),
            closed_versions: HashMap::new(),
            closed: HashMap::new(),
            unread: HashMap::new(),
            next_port: 1,
        }
    }

    /// A new socket from 127.0.0.1 on the first listener, before CONNECT.
    pub fn socket(&mut self) -> ConnKey {
        self.socket_from([127, 0, 0, 1].into(), Default::default())
    }

    /// A new socket from `ip`, as `origin` says (listener, certificate identity).
    pub fn socket_from(
        &mut self,
        ip: std::net::IpAddr,
        origin: crate::transport::Origin,
    ) -> ConnKey {
        self.next_port += 1;
        self.shard
            .add_conn(SocketAddr::new(ip, self.next_port), -1, origin)
    }

    /// The CONNACK a socket got for `packet` (the connection may be closed).
    pub fn connack_for(&mut self, conn: ConnKey, packet: Packet) -> ConnAck {
        let _ = self.send(conn, packet);
        match self.out(conn).into_iter().next() {
            Some(Packet::ConnAck(ack)) => ack,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// A socket that sent CONNECT; returns it and its CONNACK.
    pub fn connect_with(&mut self, packet: Packet) -> (ConnKey, ConnAck) {
        let conn = self.socket();
        let _ = self.send(conn, packet);
        let mut out = self.out(conn).into_iter();
        match out.next() {
            Some(Packet::ConnAck(ack)) => {
                self.unread.insert(conn, out.collect());
                (conn, ack)
            }
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// The protocol version `conn` speaks (or spoke, once closed).
    fn version_of(&self, conn: ConnKey) -> ProtocolVersion {
        match self.shard.conns.get(conn) {
            Some(c) => c.version(),
            None => self
                .closed_versions
                .get(&conn)
                .copied()
                .unwrap_or(ProtocolVersion::V311),
        }
    }

    /// Connect `id` with MQTT 5 and these CONNECT properties (expecting
    /// acceptance); returns the connection and its CONNACK.
    pub fn connect5(&mut self, id: &str, clean: bool, props: Properties) -> (ConnKey, ConnAck) {
        let (conn, ack) = self.connect_with(connect5_packet(id, clean, props, None));
        assert_eq!(ack.code, Reason::SUCCESS, "{ack:?}");
        (conn, ack)
    }

    /// Connect `id` (expecting acceptance); returns the connection and session-present.
    pub fn connect(&mut self, id: &str, clean: bool) -> (ConnKey, bool) {
        let (conn, ack) = self.connect_with(connect_packet(id, clean, None));
        assert_eq!(ack.code, Reason::SUCCESS);
        (conn, ack.session_present)
    }

    /// Feed one packet, as the connection task would (the bytes arriving
    /// count for keepalive); an error closes it.
    pub fn send(&mut self, conn: ConnKey, packet: Packet) -> Result<(), CloseReason> {
        let now = self.shard.timers.now_ms();
        if let Some(c) = self.shard.conns.get_mut(conn) {
            c.touch(now);
        }
        let result = self.shard.on_packet(conn, packet);
        if let Err(reason) = result {
            self.end_task(conn, reason);
        }
        self.settle();
        result
    }

    /// Feed raw bytes as one read of the connection's socket, as the
    /// connection task does: decode every whole packet (keeping a partial
    /// one in `partial` for the next read) and handle it; malformed input or
    /// a handler's error closes the connection. Returns false once closed.
    pub fn feed(&mut self, conn: ConnKey, partial: &mut Vec<u8>, bytes: &[u8]) -> bool {
        if self.shard.conns.get(conn).is_none() {
            return false;
        }
        partial.extend_from_slice(bytes);
        let max = self.shard.cfg.mqtt.max_packet_size;
        let mut data = Bytes::from(std::mem::take(partial));
        loop {
            match codec::decode(&data, max, Side::Server, self.version_of(conn)) {
                Ok(Some((packet, used))) => {
                    data = data.slice(used..);
                    if self.send(conn, packet).is_err() {
                        return false;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    self.end_task(conn, CloseReason::ProtocolError);
                    self.settle();
                    return false;
                }
            }
        }
        partial.extend_from_slice(&data);
        true
    }

    /// Subscribe and return the SUBACK codes; every peer answers the
    /// barrier at once (what the peers were sent is consumed).
    pub fn subscribe(&mut self, conn: ConnKey, filters: &[(&str, QoS)]) -> Vec<SubAckCode> {
        self.subscribe_with(conn, subscribe(1, filters))
    }

    /// As [`subscribe`](Self::subscribe), with a SUBSCRIBE packet of the test's own.
    pub fn subscribe_with(&mut self, conn: ConnKey, packet: Packet) -> Vec<SubAckCode> {
        let _ = self.send(conn, packet);
        self.answer_barriers();
        let mut codes = None;
        let mut rest = Vec::new();
        for p in self.out(conn) {
            match p {
                Packet::SubAck(s) if codes.is_none() => codes = Some(s.codes),
                other => rest.push(other),
            }
        }
        // What followed the SUBACK (retained messages) is read later.
        self.unread.insert(conn, rest);
        codes.expect("SUBACK")
    }

    /// Hand a login check's answer to the shard, as the connection task
    /// does (an error closes the connection).
    pub fn login_checked(
        &mut self,
        conn: ConnKey,
        decision: crate::auth::AuthDecision,
    ) -> Result<(), CloseReason> {
        let result = self.shard.login_checked(conn, decision);
        if let Err(reason) = result {
            self.end_task(conn, reason);
        }
        self.settle();
        result
    }

    /// The peer closed the socket.
    pub fn drop_socket(&mut self, conn: ConnKey) {
        self.end_task(conn, CloseReason::SocketClosed);
        self.settle();
    }

    /// What the connection task does when it ends: keep the unsent output
    /// for the test, then tell the shard.
    fn end_task(&mut self, conn: ConnKey, reason: CloseReason) {
        // Closed first, as the task does: the close may send (a DISCONNECT).
        self.shard.close_conn(conn, reason);
        let Some(c) = self.shard.conns.get_mut(conn) else {
            return;
        };
        let out = c.take_unsent();
        self.closed_versions.insert(conn, c.version());
        self.closed_output.entry(conn).or_default().extend(out);
        self.closed.insert(conn, reason);
        self.shard.conn_closed(conn, reason);
    }

    /// End the tasks of connections the shard asked to close.
    fn settle(&mut self) {
        for k in self.shard.conns.keys() {
            if let Some(r) = self.shard.conns.get(k).and_then(|c| c.closing()) {
                self.end_task(k, r);
            }
        }
    }

    /// The packets written to `conn` since the last call; the outbox counts
    /// as written, so the session's window is refilled as a task would.
    pub fn out(&mut self, conn: ConnKey) -> Vec<Packet> {
        let mut bytes = self.closed_output.remove(&conn).unwrap_or_default();
        if let Some(c) = self.shard.conns.get_mut(conn) {
            bytes.extend(c.take_unsent());
            if let Some(sk) = c.session() {
                self.shard.after_write(sk);
            }
        }
        let mut buf = Bytes::from(bytes);
        let mut packets = self.unread.remove(&conn).unwrap_or_default();
        let version = self.version_of(conn);
        while let Some((p, used)) =
            codec::decode(&buf, 1 << 24, Side::Client, version).expect("valid output")
        {
            packets.push(p);
            buf = buf.slice(used..);
        }
        packets
    }

    /// The PUBLISH packets among `out(conn)`.
    pub fn publishes(&mut self, conn: ConnKey) -> Vec<Publish> {
        self.out(conn)
            .into_iter()
            .filter_map(|p| match p {
                Packet::Publish(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    /// Read `conn`'s PUBLISHes until none come (acking each QoS 1 one with
    /// PUBACK, as a client reading at full speed would), at most 100,000 reads.
    pub fn read_all_publishes(&mut self, conn: ConnKey) -> Vec<Publish> {
        let mut all = Vec::new();
        for _ in 0..100_000 {
            let batch = self.publishes(conn);
            if batch.is_empty() {
                break;
            }
            for p in &batch {
                if p.qos == QoS::AtLeastOnce {
                    let _ = self.send(conn, Packet::PubAck(Ack::new(p.pkid)));
                }
            }
            all.extend(batch);
        }
        all
    }

    /// Messages queued for `peer`.
    pub fn mesh_out(&mut self, peer: usize) -> Vec<MeshMsg> {
        self.shard.mesh.take_for_test(peer)
    }

    /// Every peer applies what it was sent and answers its barriers.
    pub fn answer_barriers(&mut self) {
        let (me, shards) = (self.shard.id, self.shard.shards);
        for peer in (0..shards).filter(|&p| p != me) {
            for msg in self.mesh_out(peer) {
                if let MeshMsg::Interest { barrier, .. }
                | MeshMsg::Retain { barrier, .. }
                | MeshMsg::Members { barrier, .. } = msg
                {
                    if barrier != 0 {
                        self.peer_sends(peer, MeshMsg::Ack { barrier });
                    }
                }
            }
        }
    }

    /// A message from `peer`.
    pub fn peer_sends(&mut self, peer: usize, msg: MeshMsg) {
        self.shard.on_mesh(peer, msg);
        self.settle();
    }

    /// Move the clock forward and fire what is due, as the tick task does.
    pub fn advance(&mut self, ms: u64) {
        self.shard.timers.skip(ms);
        // The wall clock (message expiry) moves with it.
        crate::message::test_clock::advance_ms(ms);
        self.shard.tick(&mut Vec::new());
        self.settle();
    }

    /// Timers armed, without their deadlines.
    pub fn armed(&self) -> Vec<TimerItem> {
        self.shard
            .timers
            .armed()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    /// Session events emitted since the last call.
    pub fn events(&mut self) -> Vec<SessionEvent> {
        self.shard.journal.take()
    }

    /// The durable state, sorted so two shards can be compared.
    pub fn durable(&self) -> Durable {
        let mut sessions: Vec<_> = self
            .shard
            .sessions
            .iter()
            .map(|(sk, s)| {
                let view = s.durable_view();
                let subs = view
                    .filters
                    .iter()
                    .map(|f| (f.clone(), self.shard.router.granted(f, sk)))
                    .collect();
                (view, subs)
            })
            .collect();
        sessions.sort_by(|a, b| a.0.client_id.cmp(&b.0.client_id));
        let mut retained: Vec<_> = self
            .shard
            .router
            .retained_all()
            .iter()
            .map(|m| (m.topic.to_string(), m.id.0))
            .collect();
        retained.sort();
        let shared = self.shard.router.shared_snapshot();
        Durable {
            sessions,
            shared,
            retained,
        }
    }
}

/// A configuration with a small window and queue, to reach their limits.
pub(crate) fn small_config(window: usize, queue: usize, drop: QueueDropPolicy) -> Config {
    let mut cfg = Config::default();
    cfg.session.inflight_window = window;
    cfg.session.max_mqueue_len = queue;
    cfg.session.mqueue_drop = drop;
    cfg
}

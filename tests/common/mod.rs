//! Test support: start a broker in-process on a free port, and a small
//! blocking MQTT client over a real socket that speaks through coremq's codec.
#![allow(dead_code)]

pub mod bench;
pub mod binary;
pub mod chromium;
pub mod http;
pub mod mosquitto;
pub mod mosquitto_server;
pub mod tls;
pub mod ws;

use bytes::{Bytes, BytesMut};
use coremq::codec::{
    self, ConnAck, Connect, LastWill, Packet, ProtocolVersion, Publish, QoS, Side, SubAckCode,
    Subscribe, SubscribeFilter, Unsubscribe,
};
use coremq::codec::{Ack, Disconnect, UnsubAck};

use coremq::{Broker, BrokerHandle, Config, Hooks};
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(5);

/// A broker on 127.0.0.1:0, stopped when dropped.
pub struct TestBroker {
    pub handle: Option<BrokerHandle>,
    pub addr: SocketAddr,
    pub shards: usize,
}

impl TestBroker {
    pub fn metrics(&self) -> coremq::metrics::Metrics {
        self.handle
            .as_ref()
            .map(|h| h.metrics())
            .unwrap_or_default()
    }

    /// Wait (up to WAIT) until the posted counters satisfy `f`.
    pub fn wait_metrics(
        &self,
        f: impl Fn(&coremq::metrics::Metrics) -> bool,
    ) -> coremq::metrics::Metrics {
        let end = Instant::now() + WAIT;
        loop {
            let m = self.metrics();
            if f(&m) || Instant::now() > end {
                return m;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A client id whose home is `shard`.
    pub fn id_on(&self, prefix: &str, shard: usize) -> String {
        id_on(prefix, shard, self.shards)
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.stop();
            let _ = h.join();
        }
    }
}

pub fn id_on(prefix: &str, shard: usize, shards: usize) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|id| coremq::home_shard(id, shards) == shard)
        .unwrap()
}

pub fn config(cores: usize) -> Config {
    let mut cfg = Config::default();
    cfg.listener[0].bind = "127.0.0.1:0".into();
    cfg.runtime.cores = coremq::config::Cores::Count(cores);
    // In-process brokers test the protocol; the durable log has its own
    // tests (tests/durability.rs and others start the binary on a temporary
    // directory, as tests/common/binary.rs does for every broker process).
    cfg.storage.enabled = false;
    cfg
}

pub fn start(cores: usize) -> TestBroker {
    start_with(config(cores), Hooks::new())
}

pub fn start_with(cfg: Config, hooks: Hooks) -> TestBroker {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut b = Broker::new(cfg);
    *b.hooks_mut() = hooks;
    let handle = b.start().expect("broker starts");
    let addr = handle.local_addr();
    let shards = handle.shards();
    TestBroker {
        handle: Some(handle),
        addr,
        shards,
    }
}

/// Shard counts every integration test runs with: one, two, and four (four
/// shards share this machine's two CPUs, so barriers wait for several peers
/// and the whole N×N mesh is exercised).
pub const SHARD_COUNTS: [usize; 3] = [1, 2, 4];

/// Run a test body once for each of [`SHARD_COUNTS`].
pub fn each_cores(f: impl Fn(usize)) {
    for cores in SHARD_COUNTS {
        f(cores);
    }
}

/// A blocking MQTT client for tests, over a TCP socket by default or any
/// byte stream with a read timeout (a WebSocket in `ws`).
pub struct Client<S = TcpStream> {
    pub stream: S,
    buf: BytesMut,
    pending: VecDeque<Packet>,
    next_pkid: u16,
    /// The version packets are encoded and decoded for (from its CONNECT).
    pub version: ProtocolVersion,
}

pub fn connect_packet(id: &str, clean: bool) -> Connect {
    Connect {
        version: ProtocolVersion::V311,
        client_id: id.into(),
        clean_session: clean,
        keep_alive: 60,
        will: None,
        username: None,
        password: None,
        props: None,
    }
}

/// A SUBSCRIBE filter with its MQTT 5 options: No Local, Retain As
/// Published, Retain Handling.
pub fn sub_opts(filter: &str, qos: QoS, no_local: bool, rap: bool, rh: u8) -> SubscribeFilter {
    SubscribeFilter {
        filter: filter.into(),
        qos,
        no_local,
        retain_as_published: rap,
        retain_handling: rh,
    }
}

/// An MQTT 5 CONNECT (keepalive 60) with these properties.
pub fn connect5_packet(id: &str, clean: bool, props: codec::Properties) -> Connect {
    Connect {
        version: ProtocolVersion::V5,
        props: (props != codec::Properties::default()).then(|| Box::new(props)),
        ..connect_packet(id, clean)
    }
}

pub fn will(topic: &str, payload: &str, qos: QoS, retain: bool) -> LastWill {
    LastWill {
        topic: topic.into(),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        qos,
        retain,
        props: None,
    }
}

impl Client {
    /// A connected socket that has sent nothing yet.
    pub fn raw(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("tcp connect");
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Client::over(stream)
    }

    /// Connect and return the CONNACK.
    pub fn connect_with(addr: SocketAddr, connect: Connect) -> (Client, ConnAck) {
        Client::raw(addr).handshake(connect)
    }

    /// Connect (3.1.1, keepalive 60) expecting acceptance.
    pub fn connect(addr: SocketAddr, id: &str, clean: bool) -> (Client, bool) {
        let (c, ack) = Client::connect_with(addr, connect_packet(id, clean));
        assert_eq!(ack.code, codec::Reason::SUCCESS, "CONNACK for {id}");
        (c, ack.session_present)
    }

    /// Connect with MQTT 5 and these CONNECT properties, expecting acceptance.
    pub fn connect5(
        addr: SocketAddr,
        id: &str,
        clean: bool,
        props: codec::Properties,
    ) -> (Client, ConnAck) {
        let (c, ack) = Client::connect_with(addr, connect5_packet(id, clean, props));
        assert_eq!(
            ack.code,
            codec::Reason::SUCCESS,
            "CONNACK for {id}: {ack:?}"
        );
        (c, ack)
    }
}

impl<S: Read + Write> Client<S> {
    /// A client over `stream`, which has sent nothing yet; reads on it
    /// must time out (100 ms) rather than block.
    pub fn over(stream: S) -> Client<S> {
        Client {
            stream,
            buf: BytesMut::new(),
            pending: VecDeque::new(),
            next_pkid: 0,
            version: ProtocolVersion::V311,
        }
    }

    /// Send CONNECT over this stream and return the CONNACK.
    pub fn handshake(mut self, connect: Connect) -> (Client<S>, ConnAck) {
        self.version = connect.version;
        self.send(&Packet::Connect(Box::new(connect)));
        match self.recv() {
            Some(Packet::ConnAck(ack)) => (self, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    pub fn send(&mut self, p: &Packet) {
        let mut out = Vec::new();
        codec::encode(p, self.version, &mut out);
        self.send_raw(&out);
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
        let _ = self.stream.flush();
    }

    fn pkid(&mut self) -> u16 {
        self.next_pkid = self.next_pkid.wrapping_add(1).max(1);
        self.next_pkid
    }

    /// The next packet, or None after `within` (or on close).
    pub fn recv_within(&mut self, within: Duration) -> Option<Packet> {
        if let Some(p) = self.pending.pop_front() {
            return Some(p);
        }
        let end = Instant::now() + within;
        loop {
            let frozen = self.buf.clone().freeze();
            if let Some((p, used)) = codec::decode(&frozen, 1 << 28, Side::Client, self.version)
                .expect("broker sent valid bytes")
            {
                let _ = self.buf.split_to(used);
                return Some(p);
            }
            if Instant::now() > end {
                return None;
            }
            let mut tmp = [0u8; 65536];
            match self.stream.read(&mut tmp) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(_) => return None,
            }
        }
    }

    pub fn recv(&mut self) -> Option<Packet> {
        self.recv_within(WAIT)
    }

    /// Wait for a packet matching `f`, keeping others for later.
    pub fn recv_match(&mut self, f: impl Fn(&Packet) -> bool) -> Option<Packet> {
        let mut skipped = VecDeque::new();
        let end = Instant::now() + WAIT;
        let found = loop {
            match self.recv_within(end.saturating_duration_since(Instant::now())) {
                Some(p) if f(&p) => break Some(p),
                Some(p) => skipped.push_back(p),
                None => break None,
            }
        };
        skipped.extend(self.pending.drain(..));
        self.pending = skipped;
        found
    }

    /// The next PUBLISH (other packets are kept).
    pub fn recv_publish(&mut self) -> Option<Publish> {
        match self.recv_match(|p| matches!(p, Packet::Publish(_))) {
            Some(Packet::Publish(p)) => Some(p),
            _ => None,
        }
    }

    /// Assert nothing arrives for `d`.
    pub fn expect_silence(&mut self, d: Duration) {
        if let Some(p) = self.recv_within(d) {
            panic!("expected nothing, got {p:?}");
        }
    }

    /// Whether the broker closes the socket within WAIT.
    pub fn closed(&mut self) -> bool {
        let end = Instant::now() + WAIT;
        let mut tmp = [0u8; 4096];
        while Instant::now() < end {
            match self.stream.read(&mut tmp) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(_) => return true,
            }
        }
        false
    }

    pub fn subscribe(&mut self, filter: &str, qos: QoS) -> SubAckCode {
        self.subscribe_many(&[(filter, qos)])[0]
    }

    pub fn subscribe_many(&mut self, filters: &[(&str, QoS)]) -> Vec<SubAckCode> {
        let filters = filters
            .iter()
            .map(|(f, q)| SubscribeFilter::new(f.to_string(), *q))
            .collect();
        self.subscribe5(filters, None)
    }

    /// SUBSCRIBE these filters (with their MQTT 5 options) and, if `id` is
    /// set, that subscription identifier; returns the SUBACK's codes.
    pub fn subscribe5(
        &mut self,
        filters: Vec<SubscribeFilter>,
        id: Option<u32>,
    ) -> Vec<SubAckCode> {
        let pkid = self.pkid();
        let props = id.map(|id| {
            Box::new(codec::Properties {
                subscription_identifiers: vec![id],
                ..Default::default()
            })
        });
        self.send(&Packet::Subscribe(Subscribe {
            pkid,
            filters,
            props,
        }));
        match self.recv_match(|p| matches!(p, Packet::SubAck(s) if s.pkid == pkid)) {
            Some(Packet::SubAck(s)) => s.codes,
            other => panic!("expected SUBACK {pkid}, got {other:?}"),
        }
    }

    pub fn unsubscribe(&mut self, filter: &str) {
        let ack = self.unsubscribe_all(&[filter]);
        assert_eq!(ack, UnsubAck::new(ack.pkid), "UNSUBACK");
    }

    /// UNSUBSCRIBE these filters; returns the UNSUBACK.
    pub fn unsubscribe_all(&mut self, filters: &[&str]) -> UnsubAck {
        let pkid = self.pkid();
        self.send(&Packet::Unsubscribe(Unsubscribe {
            pkid,
            filters: filters.iter().map(|f| f.to_string()).collect(),
            props: None,
        }));
        match self.recv_match(|p| matches!(p, Packet::UnsubAck(u) if u.pkid == pkid)) {
            Some(Packet::UnsubAck(u)) => u,
            other => panic!("expected UNSUBACK {pkid}, got {other:?}"),
        }
    }

    /// Publish and complete the QoS flow.
    pub fn publish(&mut self, topic: &str, payload: &[u8], qos: QoS, retain: bool) {
        let pkid = if qos == QoS::AtMostOnce {
            0
        } else {
            self.pkid()
        };
        let p = Publish {
            dup: false,
            qos,
            retain,
            topic: topic.into(),
            pkid,
            payload: Bytes::copy_from_slice(payload),
            props: None,
        };
        self.send(&Packet::Publish(p));
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                assert!(
                    // Any reason: an MQTT 5 PUBACK may say 0x10 (no subscribers).
                    self.recv_match(|p| matches!(p, Packet::PubAck(a) if a.pkid == pkid))
                        .is_some(),
                    "PUBACK {pkid}"
                );
            }
            QoS::ExactlyOnce => {
                assert!(
                    self.recv_match(|p| matches!(p, Packet::PubRec(a) if a.pkid == pkid))
                        .is_some(),
                    "PUBREC {pkid}"
                );
                self.send(&Packet::PubRel(Ack::new(pkid)));
                assert!(
                    self.recv_match(|p| *p == Packet::PubComp(Ack::new(pkid)))
                        .is_some(),
                    "PUBCOMP {pkid}"
                );
            }
        }
    }

    /// Publish at QoS 1 and wait for its PUBACK: false if none came within
    /// [`WAIT`] (the broker died, or the connection closed), where
    /// [`publish`](Self::publish) would panic. Chaos tests count on it.
    pub fn publish_acked(&mut self, topic: &str, payload: &[u8]) -> bool {
        let pkid = self.pkid();
        let p = publish_packet(topic, payload, QoS::AtLeastOnce, pkid, false, false);
        let mut out = Vec::new();
        codec::encode(&Packet::Publish(p), self.version, &mut out);
        if self.stream.write_all(&out).is_err() {
            return false;
        }
        self.recv_match(|q| matches!(q, Packet::PubAck(a) if a.pkid == pkid))
            .is_some()
    }

    /// Send `p` (any version, properties as given) and finish its QoS flow;
    /// returns the reason of its PUBACK or PUBREC (SUCCESS for QoS 0).
    pub fn publish_for_reason(&mut self, p: Publish) -> codec::Reason {
        let (pkid, qos) = (p.pkid, p.qos);
        self.send(&Packet::Publish(p));
        let ack = match qos {
            QoS::AtMostOnce => return codec::Reason::SUCCESS,
            QoS::AtLeastOnce => {
                self.recv_match(|q| matches!(q, Packet::PubAck(a) if a.pkid == pkid))
            }
            QoS::ExactlyOnce => {
                self.recv_match(|q| matches!(q, Packet::PubRec(a) if a.pkid == pkid))
            }
        };
        let reason = match ack {
            Some(Packet::PubAck(a) | Packet::PubRec(a)) => a.reason,
            other => panic!("expected the ack of {pkid}, got {other:?}"),
        };
        if qos == QoS::ExactlyOnce && !reason.is_error() {
            self.send(&Packet::PubRel(Ack::new(pkid)));
            let done = self.recv_match(|q| matches!(q, Packet::PubComp(a) if a.pkid == pkid));
            assert!(done.is_some(), "PUBCOMP {pkid}");
        }
        reason
    }

    /// Acknowledge a received PUBLISH per its QoS (QoS 2: PUBREC, then PUBCOMP after PUBREL).
    pub fn ack(&mut self, p: &Publish) {
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.send(&Packet::PubAck(Ack::new(p.pkid))),
            QoS::ExactlyOnce => {
                self.send(&Packet::PubRec(Ack::new(p.pkid)));
                let id = p.pkid;
                assert!(
                    self.recv_match(|q| *q == Packet::PubRel(Ack::new(id)))
                        .is_some(),
                    "PUBREL {id}"
                );
                self.send(&Packet::PubComp(Ack::new(id)));
            }
        }
    }

    pub fn disconnect(mut self) {
        self.send(&Packet::Disconnect(Disconnect::normal()));
    }

    pub fn ping(&mut self) {
        self.send(&Packet::PingReq);
        assert!(
            self.recv_match(|p| *p == Packet::PingResp).is_some(),
            "PINGRESP"
        );
    }
}

// ---- Helpers for the qos / sessions / retained tests ----

/// A PUBLISH packet as a client sends it (for DUP and packet-id control).
pub fn publish_packet(
    topic: &str,
    payload: &[u8],
    qos: QoS,
    pkid: u16,
    dup: bool,
    retain: bool,
) -> Publish {
    Publish {
        dup,
        qos,
        retain,
        topic: topic.into(),
        pkid,
        payload: Bytes::copy_from_slice(payload),
        props: None,
    }
}

/// A PUBLISH payload as text.
pub fn text(p: &Publish) -> String {
    String::from_utf8_lossy(&p.payload).into_owned()
}

impl<S: Read + Write> Client<S> {
    /// Send DISCONNECT and wait until the broker closes the socket: by then
    /// the broker has detached (or discarded) the session.
    pub fn disconnect_wait(mut self) {
        self.send(&Packet::Disconnect(Disconnect::normal()));
        assert!(self.closed(), "broker closes the socket after DISCONNECT");
    }

    /// Receive `n` PUBLISH packets, acknowledging each; panics if one is missing.
    pub fn recv_acked(&mut self, n: usize) -> Vec<Publish> {
        (0..n)
            .map(|i| {
                let p = self
                    .recv_publish()
                    .unwrap_or_else(|| panic!("PUBLISH {} of {n}", i + 1));
                self.ack(&p);
                p
            })
            .collect()
    }
}

/// The wire bytes of one packet (to mutate into malformed input).
pub fn packet_bytes(p: &Packet) -> Vec<u8> {
    let mut out = Vec::new();
    codec::encode(p, coremq::codec::ProtocolVersion::V311, &mut out);
    out
}

/// Poll `f` every 20 ms until it holds or WAIT passes; returns whether it held.
pub fn wait_until(f: impl Fn() -> bool) -> bool {
    let end = Instant::now() + WAIT;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The reason of the next DISCONNECT the broker sends `c` (other packets are
/// kept for later), or None if none comes.
pub fn server_disconnect<S: Read + Write>(c: &mut Client<S>) -> Option<codec::Reason> {
    match c.recv_match(|p| matches!(p, Packet::Disconnect(_))) {
        Some(Packet::Disconnect(d)) => Some(d.reason),
        _ => None,
    }
}

/// The environment variable `name` parsed, or `default` (unset or bad).
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A step of xorshift64: the seeded random numbers of chaos tests.
pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

//! One benchmark client: connect from a chosen source address, CONNECT,
//! SUBSCRIBE, then read and answer until the run ends.
//!
//! Owns [`Client`] (socket fd, outbox, publisher window, subscriber
//! [`Tracker`]). Each client is one glommio task ([`run_client`], spawned by
//! `engine.rs`) that only reads; writes go straight to the socket with a
//! non-blocking `send` from whichever task has something to say (the read
//! task for acks, the executor's tick task for publishes and PINGREQs), and
//! what the kernel does not take waits in the outbox for the next tick.
//! Packets are decoded and encoded with `coremq::codec`, nothing else.
//! Over TLS or WebSocket the client also holds its `transport::Layers`:
//! reads go through [`Layers::open`], and the outbox is sealed into
//! [`Layers::wire`] just before it is sent; a plain client has none.

use crate::engine::{Exec, Phase};
use crate::payload::{self, Stamp};
use crate::scenario::ClientSpec;
use crate::stats::{bump, record_latency};
use crate::transport::{Conn, Layers};
use crate::verify::Tracker;
use bytes::{Bytes, BytesMut};
use coremq::codec::Ack;
use coremq::codec::{
    self, Connect, Packet, Properties, ProtocolVersion, PublishV5, QoS, Side, SubAckCode,
    Subscribe, SubscribeFilter,
};
use futures_lite::AsyncReadExt;
use glommio::net::TcpStream;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::cell::RefCell;
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;

/// Largest packet accepted from the broker.
const MAX_PACKET: usize = 1 << 20;
/// Stop adding publishes while this much is waiting in the outbox.
const OUTBOX_HIGH: usize = 256 << 10;

/// State of one connected client, shared by its read task and the tick task.
pub struct Client {
    pub spec: ClientSpec,
    fd: RawFd,
    pub open: bool,
    /// MQTT bytes the socket has not taken yet (with layers: not sealed yet).
    outbox: Vec<u8>,
    /// TLS and/or WebSocket state; `None` on plain TCP.
    layers: Option<Box<Layers>>,
    /// Payload template, restamped for each publish.
    payload: Vec<u8>,
    qos: QoS,
    /// The protocol version every packet is encoded and decoded for.
    version: ProtocolVersion,
    /// Last sequence number published (sequences start at 1).
    pub seq: u64,
    /// Publishes acknowledged (QoS 0: counted when written).
    pub acked: u64,
    /// Unacknowledged QoS 1/2 publishes.
    pub inflight: u32,
    /// At most this many unacknowledged: `--inflight`, or less when an
    /// MQTT 5 broker's Receive Maximum says so [MQTT-3.3.4-7].
    window: u32,
    next_pkid: u16,
    pub tracker: Tracker,
    /// Messages scheduled so far by the rate pacer.
    pub scheduled: u64,
}

impl Client {
    /// Write as much of the outbox as the socket takes now. False if the
    /// socket is broken.
    pub fn flush(&mut self) -> bool {
        let Some(l) = self.layers.as_deref_mut() else {
            return send_now(self.fd, &mut self.outbox);
        };
        if !self.outbox.is_empty() {
            if l.seal(&self.outbox).is_err() {
                return false;
            }
            self.outbox.clear();
        }
        send_now(self.fd, &mut l.wire)
    }

    /// Bytes waiting for the socket (MQTT bytes and sealed ones).
    fn pending(&self) -> usize {
        self.outbox.len() + self.layers.as_ref().map_or(0, |l| l.wire.len())
    }

    pub fn has_backlog(&self) -> bool {
        self.pending() > 0
    }

    pub fn push_packet(&mut self, p: &Packet) {
        codec::encode(p, self.version, &mut self.outbox);
    }

    /// Whether another publish may be written now.
    pub fn can_publish(&self) -> bool {
        self.open
            && self.pending() < OUTBOX_HIGH
            && (self.qos == QoS::AtMostOnce || self.inflight < self.window)
    }

    /// Append one stamped PUBLISH to its topic to the outbox (not flushed).
    pub fn publish(&mut self, exec: &Exec) {
        self.seq += 1;
        let stamp = Stamp {
            publisher: self.spec.index,
            seq: self.seq,
            sent_ns: payload::now_ns(),
        };
        payload::write(&mut self.payload, stamp);
        let pkid = if self.qos == QoS::AtMostOnce {
            self.acked += 1;
            bump(&exec.counters.acked);
            0
        } else {
            self.inflight += 1;
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            self.next_pkid
        };
        let topic = self.spec.publish.as_deref().unwrap_or("bench");
        let (out, body, retain) = (&mut self.outbox, &self.payload, exec.args.retain);
        if self.version.is_v5() {
            let none = PublishV5::default();
            codec::encode_publish_v5(out, topic, body, self.qos, pkid, retain, false, &none);
        } else {
            codec::encode_publish(out, topic, body, self.qos, pkid, retain, false);
        }
        bump(&exec.counters.sent);
    }
}

/// Write as much of `buf` as the socket takes now. False if it is broken.
fn send_now(fd: RawFd, buf: &mut Vec<u8>) -> bool {
    while !buf.is_empty() {
        // SAFETY: fd is open while the client is; the buffer is valid for len bytes.
        let n = unsafe {
            libc::send(
                fd,
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n > 0 {
            buf.drain(..n as usize);
            continue;
        }
        let err = std::io::Error::last_os_error().kind();
        return err == std::io::ErrorKind::WouldBlock || err == std::io::ErrorKind::Interrupted;
    }
    true
}

/// Build a non-blocking socket bound to `src:0` and start connecting to `dst`.
fn start_connect(src: std::net::Ipv4Addr, dst: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    sock.set_nonblocking(true)?;
    sock.set_nodelay(true)?;
    sock.bind(&SockAddr::from(SocketAddrV4::new(src, 0)))?;
    match sock.connect(&SockAddr::from(dst)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    // SAFETY: we own the fd and hand it over; glommio closes it on drop.
    Ok(unsafe { TcpStream::from_raw_fd(sock.into_raw_fd()) })
}

/// Read until one whole packet is decoded (handshake only).
async fn read_packet(
    conn: &mut Conn,
    acc: &mut BytesMut,
    version: ProtocolVersion,
) -> std::io::Result<Packet> {
    loop {
        let chunk = acc.clone().freeze();
        match codec::decode(&chunk, MAX_PACKET, Side::Client, version) {
            Ok(Some((p, used))) => {
                let _ = acc.split_to(used);
                return Ok(p);
            }
            Ok(None) => {}
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
        conn.recv(acc).await?;
    }
}

fn protocol_err(m: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string())
}

/// The client's CONNECT, at `--protocol`: clean unless `--persistent`, no
/// will, `--username` and `--password` if given; MQTT 5 with Receive
/// Maximum = `--inflight` (what it takes unacknowledged) and, persistent,
/// a Session Expiry Interval.
fn connect_packet(exec: &Exec, spec: &ClientSpec) -> Packet {
    let version = exec.args.version();
    let props = version.is_v5().then(|| {
        Box::new(Properties {
            receive_maximum: u16::try_from(exec.args.inflight).ok(),
            session_expiry_interval: exec.args.persistent.then_some(300),
            ..Properties::default()
        })
    });
    Packet::Connect(Box::new(Connect {
        version,
        client_id: spec.client_id.clone(),
        clean_session: !exec.args.persistent,
        keep_alive: exec.args.keepalive,
        will: None,
        username: exec.args.username.clone(),
        password: exec
            .args
            .password
            .as_deref()
            .map(|p| p.as_bytes().to_vec().into()),
        props,
    }))
}

/// CONNECT/CONNACK then, if the spec says so, SUBSCRIBE/SUBACK. Returns
/// the publish window: `--inflight`, capped by the broker's Receive Maximum.
async fn handshake(
    exec: &Exec,
    spec: &ClientSpec,
    conn: &mut Conn,
    acc: &mut BytesMut,
) -> std::io::Result<u32> {
    let version = exec.args.version();
    let mut window = exec.args.inflight;
    let mut out = Vec::new();
    codec::encode(&connect_packet(exec, spec), version, &mut out);
    conn.send(&out).await?;
    match read_packet(conn, acc, version).await? {
        Packet::ConnAck(ack) if ack.code == codec::Reason::SUCCESS => {
            let theirs = ack.props.and_then(|p| p.receive_maximum);
            window = theirs.map_or(window, |m| window.min(u32::from(m)));
        }
        _ => return Err(protocol_err("CONNECT refused")),
    }
    let Some(filter) = &spec.subscribe else {
        return Ok(window);
    };
    out.clear();
    let sub = Subscribe {
        pkid: 1,
        filters: vec![SubscribeFilter::new(filter.clone(), exec.plan.qos)],
        props: None,
    };
    codec::encode(&Packet::Subscribe(sub), version, &mut out);
    conn.send(&out).await?;
    loop {
        match read_packet(conn, acc, version).await? {
            Packet::SubAck(s) if s.codes.iter().all(|c| matches!(c, SubAckCode::Granted(_))) => {
                return Ok(window)
            }
            Packet::SubAck(_) => return Err(protocol_err("SUBSCRIBE refused")),
            // Retained messages may arrive before the SUBACK; ignore them.
            Packet::Publish(_) | Packet::PingResp => {}
            _ => return Err(protocol_err("unexpected packet before SUBACK")),
        }
    }
}

/// The whole life of client `spec`: connect, register with the executor,
/// then read until the connection closes or the run ends.
pub async fn run_client(exec: Rc<Exec>, spec: ClientSpec) {
    let src = exec.args.src_addrs[(spec.index % exec.args.src_addrs.len() as u64) as usize];
    let mut acc = BytesMut::with_capacity(1024);
    let connected = match start_connect(src, exec.target) {
        Ok(s) => connect(&exec, &spec, s, &mut acc).await,
        Err(e) => Err(e),
    };
    let (Conn { mut stream, layers }, window) = match connected {
        Ok(s) if exec.phase() == Phase::Connecting => s,
        Ok(_) => return, // too late: already counted as a connect timeout
        Err(e) => {
            if exec.phase() == Phase::Connecting {
                bump(&exec.counters.connect_fail);
                exec.note_error(&e);
            }
            return;
        }
    };
    let client = Rc::new(RefCell::new(Client {
        fd: stream.as_raw_fd(),
        open: true,
        outbox: Vec::new(),
        layers,
        payload: payload::build(
            exec.args.size,
            Stamp {
                publisher: spec.index,
                seq: 0,
                sent_ns: 0,
            },
        ),
        qos: exec.plan.qos,
        version: exec.args.version(),
        seq: 0,
        acked: 0,
        inflight: 0,
        window,
        next_pkid: 0,
        tracker: Tracker::default(),
        scheduled: 0,
        spec,
    }));
    exec.register(client.clone());
    exec.clock.mark();
    bump(&exec.counters.connect_ok);
    exec.counters.connected.fetch_add(1, Relaxed);
    let res = read_loop(&exec, &client, &mut stream, acc).await;
    client.borrow_mut().open = false;
    exec.counters.connected.fetch_sub(1, Relaxed);
    if exec.phase() != Phase::Done {
        bump(&exec.counters.closed);
        if let Err(e) = res {
            exec.note_error(&e);
        }
    }
}

/// TLS and WebSocket handshakes (when asked for), then the MQTT one.
async fn connect(
    exec: &Exec,
    spec: &ClientSpec,
    stream: TcpStream,
    acc: &mut BytesMut,
) -> std::io::Result<(Conn, u32)> {
    let mut conn = Conn::open(stream, exec.transport.as_deref()).await?;
    let window = handshake(exec, spec, &mut conn, acc).await?;
    Ok((conn, window))
}

async fn read_loop(
    exec: &Exec,
    client: &Rc<RefCell<Client>>,
    stream: &mut TcpStream,
    mut acc: BytesMut,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 16 << 10];
    // Size of a partly received packet: wait for all of it before decoding
    // again, so a large one is not copied back on every read.
    let mut need = 0;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let mut c = client.borrow_mut();
        match c.layers.as_deref_mut() {
            None => acc.extend_from_slice(&buf[..n]),
            // A pong or a TLS alert it queues goes out with the next flush.
            Some(l) => l.open(&buf[..n], &mut acc)?,
        }
        if acc.len() < need {
            if c.has_backlog() {
                if !c.flush() {
                    return Err(std::io::ErrorKind::BrokenPipe.into());
                }
                if c.has_backlog() {
                    exec.mark_dirty(client);
                }
            }
            continue;
        }
        let chunk = acc.split().freeze();
        let mut off = 0;
        let version = c.version;
        while off < chunk.len() {
            let rest: Bytes = chunk.slice(off..);
            match codec::decode(&rest, MAX_PACKET, Side::Client, version) {
                Ok(Some((p, used))) => {
                    off += used;
                    on_packet(exec, &mut c, p);
                }
                Ok(None) => break,
                Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            }
        }
        acc.extend_from_slice(&chunk[off..]);
        need = codec::frame_len(&acc, MAX_PACKET, Side::Client, version)
            .ok()
            .flatten()
            .unwrap_or(0);
        if !c.flush() {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        if c.has_backlog() {
            exec.mark_dirty(client);
        }
    }
}

/// React to one packet from the broker.
fn on_packet(exec: &Exec, c: &mut Client, p: Packet) {
    match p {
        Packet::Publish(p) => {
            on_delivery(exec, c, &p.payload);
            match p.qos {
                QoS::AtMostOnce => {}
                QoS::AtLeastOnce => c.push_packet(&Packet::PubAck(Ack::new(p.pkid))),
                QoS::ExactlyOnce => c.push_packet(&Packet::PubRec(Ack::new(p.pkid))),
            }
        }
        Packet::PubRel(Ack { pkid: id, .. }) => c.push_packet(&Packet::PubComp(Ack::new(id))),
        Packet::PubRec(Ack { pkid: id, .. }) => c.push_packet(&Packet::PubRel(Ack::new(id))),
        Packet::PubAck(_) | Packet::PubComp(_) => {
            c.inflight = c.inflight.saturating_sub(1);
            c.acked += 1;
            bump(&exec.counters.acked);
            exec.refill(c);
        }
        _ => {}
    }
}

fn on_delivery(exec: &Exec, c: &mut Client, body: &[u8]) {
    bump(&exec.counters.received);
    let Some(stamp) = payload::read(body) else {
        exec.bad_payload.set(exec.bad_payload.get() + 1);
        return;
    };
    c.tracker.record(stamp.publisher, stamp.seq);
    let now = payload::now_ns();
    record_latency(
        &mut exec.hist.borrow_mut(),
        now.saturating_sub(stamp.sent_ns),
    );
}

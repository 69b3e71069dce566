//! TCP listeners: one SO_REUSEPORT socket per shard on the same port, the
//! claim that keeps that port to one broker, and the accept loop each shard
//! runs on its own.
//!
//! The sockets are built before the shards start (socket2: reuse_port and
//! our own backlog; glommio's `bind` fixes the backlog at 1024), so port 0
//! resolves once and every shard listens on the same port.
//!
//! SO_REUSEPORT would also let a second broker (same user) join the port and
//! take half the clients, so [`claim`] comes first: an abstract UNIX socket
//! named after the address is the lock (the kernel frees it when the process
//! dies), then a probe bind without SO_REUSEPORT waits until no listener is
//! left on the port — a killed broker's sockets outlive it for a few tens of
//! milliseconds while io_uring lets go of them, and connections the kernel
//! hands them are reset.
//!
//! The accept loop enforces the node-wide connection limit, backs off when
//! the process is out of file descriptors instead of spinning or dying, sets
//! TCP_NODELAY and TCP keepalive on each socket ([`SocketTuning`]) and logs
//! its warnings through [`crate::ratelog`].
//!
//! Every accepted socket becomes a [`Transport`](crate::transport::Transport)
//! handed to [`crate::conn::spawn_accepted`]; plain TCP passes the stream as
//! it is. A TLS or WebSocket listener reuses this loop (limit, backoff,
//! slot) and differs only in wrapping the stream before that call; for
//! WebSocket that is [`spawn_ws_accepted`], which runs the upgrade first.

use crate::config::ListenerConfig;
use crate::conn_limit::ConnCount;
use crate::ratelog::RateLimit;
use crate::shard::ShardRef;
use glommio::net::TcpListener;
use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long [`claim`] waits for other listeners to leave the port.
pub const CLAIM_WAIT: Duration = Duration::from_secs(2);
/// How often it looks again meanwhile.
const CLAIM_RETRY: Duration = Duration::from_millis(20);

/// This process's hold on a listen address; other coremq processes cannot
/// claim the same address until it is dropped (or the process dies).
#[derive(Debug)]
pub struct AddressClaim {
    _lock: UnixDatagram,
}

/// Why an address could not be claimed.
#[derive(Debug)]
pub enum ClaimError {
    /// Another coremq holds the address, or a listener (another program)
    /// still held the port after [`CLAIM_WAIT`]; says which.
    InUse(&'static str),
    /// Binding failed otherwise (no such local address, a privileged port).
    Io(io::Error),
}

/// The lock for `addr` alone: bind the abstract UNIX socket named after
/// it. [`claim`] starts with it; after binding port 0, the resolved address
/// (already ours) is locked with this.
pub fn lock(addr: SocketAddr) -> Result<AddressClaim, ClaimError> {
    let name = format!("coremq-listen-{addr}");
    let bound = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .and_then(|a| UnixDatagram::bind_addr(&a));
    match bound {
        Ok(sock) => Ok(AddressClaim { _lock: sock }),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            Err(ClaimError::InUse("another coremq is serving it"))
        }
        Err(e) => Err(ClaimError::Io(e)),
    }
}

/// Can a socket without SO_REUSEPORT bind `addr`? False while anything
/// listens on the port there (for the wildcard address: on any address).
fn port_is_free(addr: SocketAddr) -> io::Result<bool> {
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Sockets of closed connections (TIME_WAIT) do not count; listeners do.
    probe.set_reuse_address(true)?;
    match probe.bind(&addr.into()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Ok(false),
        Err(e) => Err(e),
    }
}

/// Claim `addr` (port not 0) for this process before [`bind_all`]: take its
/// lock, then wait (up to `wait`) until no listener is left on the port.
pub fn claim(addr: SocketAddr, wait: Duration) -> Result<AddressClaim, ClaimError> {
    let held = lock(addr)?;
    let end = Instant::now() + wait;
    loop {
        if port_is_free(addr).map_err(ClaimError::Io)? {
            return Ok(held);
        }
        if Instant::now() >= end {
            return Err(ClaimError::InUse("another program listens on the port"));
        }
        std::thread::sleep(CLAIM_RETRY);
    }
}

/// The options every accepted socket gets, from `[listener]`; built once
/// per shard.
#[derive(Debug, Clone)]
pub struct SocketTuning {
    /// None: TCP keepalive off (`tcp_keepalive_s = 0`).
    keepalive: Option<TcpKeepalive>,
}

impl SocketTuning {
    pub fn new(cfg: &ListenerConfig) -> SocketTuning {
        let keepalive = (cfg.tcp_keepalive_s > 0).then(|| {
            TcpKeepalive::new()
                .with_time(Duration::from_secs(cfg.tcp_keepalive_s))
                .with_interval(Duration::from_secs(cfg.tcp_keepalive_interval_s))
                .with_retries(cfg.tcp_keepalive_probes)
        });
        SocketTuning { keepalive }
    }

    /// TCP_NODELAY, and TCP keepalive on (with its timings) or off.
    pub fn apply(&self, sock: BorrowedFd<'_>) -> io::Result<()> {
        let sock = SockRef::from(&sock);
        sock.set_nodelay(true)?;
        match &self.keepalive {
            Some(k) => sock.set_tcp_keepalive(k),
            None => sock.set_keepalive(false),
        }
    }
}

/// Bind `count` listening sockets to `addr`; returns them and the address
/// actually bound (port 0 resolved).
pub fn bind_all(
    addr: SocketAddr,
    count: usize,
    backlog: u32,
) -> io::Result<(Vec<OwnedFd>, SocketAddr)> {
    let mut fds = Vec::with_capacity(count);
    let mut bound = addr;
    for _ in 0..count {
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        sock.set_reuse_address(true)?;
        sock.set_reuse_port(true)?;
        sock.set_nonblocking(true)?;
        sock.bind(&bound.into())?;
        sock.listen(backlog.min(i32::MAX as u32) as i32)?;
        if let Some(a) = sock.local_addr()?.as_socket() {
            bound = a;
        }
        // SAFETY: into_raw_fd hands us sole ownership of the open socket.
        fds.push(unsafe { OwnedFd::from_raw_fd(sock.into_raw_fd()) });
    }
    Ok((fds, bound))
}

/// Accept connections on this shard until cancelled.
pub async fn accept_loop(shard: ShardRef, listener: TcpListener, count: Arc<ConnCount>) {
    let (id, max, tuning) = {
        let sh = shard.borrow();
        let l = &sh.cfg.listener[0];
        (sh.id, l.max_connections, SocketTuning::new(l))
    };
    // One warning line a second at most per kind: a connection storm or a
    // long fd shortage must not flood the log.
    let mut fd_warn = RateLimit::per_second();
    let mut accept_warn = RateLimit::per_second();
    let mut limit_warn = RateLimit::per_second();
    let mut tune_warn = RateLimit::per_second();
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                let os = match &e {
                    glommio::GlommioError::IoError(io) => io.raw_os_error(),
                    _ => None,
                };
                if matches!(os, Some(libc::EMFILE) | Some(libc::ENFILE)) {
                    shard.borrow_mut().metrics.accept_fd_exhausted += 1;
                    if let Some(s) = fd_warn.allow() {
                        log::warn!(
                            "shard {id}: out of file descriptors, pausing accepts for 100 ms{s}"
                        );
                    }
                } else if let Some(s) = accept_warn.allow() {
                    log::warn!("shard {id}: accept failed: {e}{s}");
                }
                glommio::timer::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        shard.borrow_mut().metrics.connections_accepted += 1;
        let Some(slot) = count.try_acquire(max) else {
            let refused = {
                let mut sh = shard.borrow_mut();
                sh.metrics.connections_refused_limit += 1;
                sh.metrics.connections_refused_limit
            };
            if let Some(s) = limit_warn.allow() {
                log::warn!("shard {id}: max_connections ({max}) reached, closing new sockets ({refused} so far){s}");
            }
            drop(stream);
            continue;
        };
        // SAFETY: the stream owns this fd and outlives the borrow.
        let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
        if let Err(e) = tuning.apply(fd) {
            if let Some(s) = tune_warn.allow() {
                log::warn!("shard {id}: cannot set socket options on an accepted socket: {e}{s}");
            }
        }
        let peer = stream
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        crate::conn::spawn_accepted(&shard, stream, peer, slot, Default::default());
    }
}

/// Upgrade a stream accepted on a WebSocket listener (`ws`: a `TcpStream`;
/// `wss`: the TLS stream, with the identity its certificate gave in
/// `origin`) serving `path`, then serve it as a connection.
/// The upgrade gets `mqtt.connect_timeout_s` (counted in `connect_timeouts`
/// when it runs out; CONNECT then gets its own timeout); refusals are
/// counted in `ws_handshakes_refused` and logged rate-limited. Runs in a
/// task of its own, so the accept loop goes on at once.
// Called by the accept loop of `ws` / `wss` listeners, which the
// `[[listener]]` list brings; until then only tests call it.
#[cfg_attr(not(test), allow(dead_code))]
pub fn spawn_ws_accepted<T: crate::transport::Transport>(
    shard: &ShardRef,
    stream: T,
    (peer, origin): (SocketAddr, crate::transport::Origin),
    slot: crate::conn_limit::Slot,
    path: std::rc::Rc<str>,
) {
    use crate::transport::ws::{accept_ws, UpgradeError, MAX_REQUEST_BYTES};
    let shard = shard.clone();
    let (limit, max_frame) = {
        let sh = shard.borrow();
        let m = &sh.cfg.mqtt;
        (Duration::from_secs(m.connect_timeout_s), m.max_packet_size)
    };
    glommio::spawn_local(async move {
        let upgrade = accept_ws(stream, &path, MAX_REQUEST_BYTES, max_frame);
        let expiry = async {
            glommio::timer::sleep(limit).await;
            Err(UpgradeError::Io(io::ErrorKind::TimedOut.into()))
        };
        let ws = match futures_lite::future::or(upgrade, expiry).await {
            Ok(ws) => ws,
            Err(e) => return upgrade_failed(&shard, peer, &e),
        };
        crate::conn::spawn_accepted(&shard, ws, peer, slot, origin);
    })
    .detach();
}

/// Count and log a WebSocket upgrade that did not happen (`slot` was
/// released with the stream).
fn upgrade_failed(shard: &ShardRef, peer: SocketAddr, e: &crate::transport::ws::UpgradeError) {
    use crate::transport::ws::UpgradeError;
    let mut sh = shard.borrow_mut();
    match e {
        UpgradeError::Refused(..) => {
            sh.metrics.ws_handshakes_refused += 1;
            if let Some(held) = sh.lines.ws_handshake.allow() {
                log::info!("websocket upgrade from {peer} {e}{held}");
            }
        }
        UpgradeError::Io(io) if io.kind() == io::ErrorKind::TimedOut => {
            sh.metrics.connect_timeouts += 1;
        }
        UpgradeError::Io(io) => log::debug!("websocket upgrade from {peer} failed: {io}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener as StdListener, TcpStream};
    use std::os::fd::AsFd;

    /// A connected pair over loopback: (client end, accepted end).
    fn pair() -> (TcpStream, TcpStream) {
        let l = StdListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (a, _) = l.accept().unwrap();
        (c, a)
    }

    #[test]
    fn accepted_sockets_get_nodelay_and_the_configured_keepalive() {
        let mut cfg = ListenerConfig {
            tcp_keepalive_s: 77,
            tcp_keepalive_interval_s: 9,
            tcp_keepalive_probes: 5,
            ..ListenerConfig::default()
        };
        let (_c, a) = pair();
        SocketTuning::new(&cfg).apply(a.as_fd()).unwrap();
        let s = SockRef::from(&a);
        assert!(s.nodelay().unwrap());
        assert!(s.keepalive().unwrap(), "SO_KEEPALIVE");
        assert_eq!(s.keepalive_time().unwrap(), Duration::from_secs(77));
        assert_eq!(s.keepalive_interval().unwrap(), Duration::from_secs(9));
        assert_eq!(s.keepalive_retries().unwrap(), 5);
        // 0 turns it off, also on a socket that had it on.
        cfg.tcp_keepalive_s = 0;
        SockRef::from(&a).set_keepalive(true).unwrap();
        SocketTuning::new(&cfg).apply(a.as_fd()).unwrap();
        assert!(!SockRef::from(&a).keepalive().unwrap());
        assert!(SockRef::from(&a).nodelay().unwrap());
    }

    /// The glue for WebSocket listeners against a real shard: a refused
    /// upgrade is answered and counted, and a client that upgrades gets its
    /// CONNACK in a binary frame [MQTT-6.0.0-1].
    #[test]
    fn spawn_ws_accepted_upgrades_then_serves_mqtt() {
        use crate::codec::{self, Packet, ProtocolVersion, Side};
        use crate::shard::Shard;
        use std::io::{Read, Write};
        use tungstenite::client::IntoClientRequest;
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .make()
            .unwrap();
        ex.run(async {
            let shard: ShardRef = std::rc::Rc::new(std::cell::RefCell::new(Shard::new(
                0,
                1,
                Arc::new(crate::config::Config::default()),
                Arc::new(crate::hooks::Hooks::new()),
                crate::metrics::MetricsBoard::new(1),
                Arc::new(std::sync::atomic::AtomicBool::new(false)),
            )));
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let client = std::thread::spawn(move || {
                let mut refused = TcpStream::connect(addr).unwrap();
                refused
                    .write_all(b"GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n")
                    .unwrap();
                let mut answer = String::new();
                refused.read_to_string(&mut answer).unwrap();
                assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");

                let mut req = format!("ws://{addr}/mqtt").into_client_request().unwrap();
                req.headers_mut()
                    .insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
                let stream = TcpStream::connect(addr).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(20)))
                    .unwrap();
                let (mut ws, _) = tungstenite::client(req, stream).unwrap();
                let connect = crate::shard::harness::connect_packet("over-ws", true, None);
                let mut bytes = Vec::new();
                codec::encode(&connect, ProtocolVersion::V311, &mut bytes);
                ws.send(tungstenite::Message::binary(bytes)).unwrap();
                let reply = ws.read().unwrap().into_data();
                let decoded = codec::decode(&reply, 1 << 20, Side::Client, ProtocolVersion::V311);
                match decoded {
                    Ok(Some((Packet::ConnAck(ack), n))) if n == reply.len() => ack,
                    other => panic!("expected one CONNACK: {other:?}"),
                }
            });
            let count = ConnCount::new();
            for _ in 0..2 {
                let stream = listener.accept().await.unwrap();
                let peer = stream.peer_addr().unwrap();
                let slot = count.try_acquire(10).unwrap();
                let origin = (peer, Default::default());
                spawn_ws_accepted(&shard, stream, origin, slot, "/mqtt".into());
            }
            for _ in 0..2000 {
                if client.is_finished() {
                    break;
                }
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
            let ack = client.join().expect("client");
            assert_eq!(ack.code, crate::codec::Reason::SUCCESS);
            let sh = shard.borrow();
            assert_eq!(sh.metrics.ws_handshakes_refused, 1);
            assert_eq!(sh.metrics.connects_accepted, 1);
        });
    }

    #[test]
    fn the_default_config_turns_keepalive_on() {
        let (_c, a) = pair();
        SocketTuning::new(&ListenerConfig::default())
            .apply(a.as_fd())
            .unwrap();
        let s = SockRef::from(&a);
        assert!(s.keepalive().unwrap());
        assert_eq!(s.keepalive_time().unwrap(), Duration::from_secs(120));
    }

    /// A loopback port nobody uses right now.
    fn free_addr() -> SocketAddr {
        StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    #[test]
    fn a_claimed_address_cannot_be_claimed_again_until_released() {
        let addr = free_addr();
        let first = claim(addr, Duration::ZERO).expect("free address claimed");
        match claim(addr, Duration::ZERO) {
            Err(ClaimError::InUse(why)) => assert!(why.contains("coremq"), "{why}"),
            other => panic!("second claim: {other:?}"),
        }
        drop(first);
        claim(addr, Duration::ZERO).expect("claimed again once released");
    }

    #[test]
    fn a_foreign_listener_holds_the_claim_off_until_it_closes() {
        // A listener with SO_REUSEPORT, as a killed broker's lingering one.
        let addr = free_addr();
        let other = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        other.set_reuse_port(true).unwrap();
        other.bind(&addr.into()).unwrap();
        other.listen(8).unwrap();
        let t = Instant::now();
        match claim(addr, Duration::from_millis(100)) {
            Err(ClaimError::InUse(why)) => assert!(why.contains("listens"), "{why}"),
            other => panic!("claim beside a listener: {other:?}"),
        }
        assert!(t.elapsed() >= Duration::from_millis(100), "did not wait");
        // The wildcard address on the same port is refused too.
        let wild = SocketAddr::from(([0, 0, 0, 0], addr.port()));
        assert!(matches!(
            claim(wild, Duration::ZERO),
            Err(ClaimError::InUse(_))
        ));
        // Closed within the wait: the claim succeeds.
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(60));
            drop(other);
        });
        claim(addr, Duration::from_secs(2)).expect("claimed once the listener closed");
        closer.join().unwrap();
    }
}

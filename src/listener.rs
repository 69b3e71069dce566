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
//! Every shard runs one accept loop per configured listener ([`Endpoint`]:
//! its index, its own connection count, its TLS configuration). The loop
//! enforces the listener's connection rate (this shard's share of
//! `max_connection_rate`) and `max_connections`, backs off when the process
//! is out of file descriptors instead of spinning or dying, sets TCP_NODELAY
//! and TCP keepalive on each socket ([`SocketTuning`]) and logs its warnings
//! through [`crate::ratelog`].
//!
//! Every accepted socket becomes a [`Transport`](crate::transport::Transport)
//! handed to [`crate::conn::spawn_accepted`] with its [`Origin`]: plain TCP
//! as it is; on a `proxy_protocol` listener after its PROXY header
//! ([`crate::proxy`]) gave the client's address; on a `tls` listener after the
//! handshake ([`crate::tls`]), both bounded by `mqtt.connect_timeout_s`
//! ([`accepted`] is the one place that wraps a stream per kind); on a `ws`
//! or `wss` listener after the WebSocket upgrade ([`spawn_ws_accepted`]).

use crate::config::{IdentitySource, ListenerConfig, ListenerKind};
use crate::conn_limit::{ConnCount, Slot};
use crate::proxy;
use crate::rate::TokenBucket;
use crate::ratelog::RateLimit;
use crate::reload::{Local, Reloadable};
use crate::shard::ShardRef;
use crate::transport::tcp::{Acceptor, Tcp};
use crate::transport::ws::{accept_ws, UpgradeError, MAX_REQUEST_BYTES};
use crate::transport::Origin;
use glommio::net::TcpStream;
use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixDatagram;
use std::rc::Rc;
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

/// What every shard shares about one listener.
#[derive(Debug)]
pub struct Endpoint {
    /// Its index in `cfg.listener`.
    pub index: u16,
    /// Its open connections (`max_connections` is per listener).
    pub count: Arc<ConnCount>,
    /// A `tls` listener's server configuration, replaced on reload.
    pub tls: Option<Arc<Reloadable<rustls::ServerConfig>>>,
}

/// Accept connections of one listener on this shard until cancelled.
pub async fn accept_loop(shard: ShardRef, listener: OwnedFd, ep: Arc<Endpoint>) {
    let listener = match Acceptor::new(listener) {
        Ok(a) => a,
        Err(e) => {
            let id = shard.borrow().id;
            log::error!(
                "shard {id}, listener {}: cannot wait for connections: {e}",
                ep.index
            );
            return;
        }
    };
    let (id, cfg, mut rate) = {
        let mut sh = shard.borrow_mut();
        let cfg = sh.cfg.listener[usize::from(ep.index)].clone();
        let rate = connection_rate(&cfg, sh.shards, sh.timers.now_ms());
        (sh.id, cfg, rate)
    };
    let (max, tuning) = (cfg.max_connections, SocketTuning::new(&cfg));
    let mut tls = ep.tls.clone().map(Local::new);
    let ws_path: Option<Rc<str>> =
        matches!(cfg.kind, ListenerKind::Ws | ListenerKind::Wss).then(|| cfg.path.as_str().into());
    let at = format!("shard {id}, listener {} ({})", ep.index, cfg.bind);
    // One warning line a second at most per kind: a connection storm or a
    // long fd shortage must not flood the log.
    let mut fd_warn = RateLimit::per_second();
    let mut accept_warn = RateLimit::per_second();
    let mut limit_warn = RateLimit::per_second();
    let mut rate_warn = RateLimit::per_second();
    let mut tune_warn = RateLimit::per_second();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) {
                    shard.borrow_mut().metrics.accept_fd_exhausted += 1;
                    if let Some(s) = fd_warn.allow() {
                        log::warn!("{at}: out of file descriptors, pausing accepts for 100 ms{s}");
                    }
                } else if let Some(s) = accept_warn.allow() {
                    log::warn!("{at}: accept failed: {e}{s}");
                }
                glommio::timer::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let now = {
            let mut sh = shard.borrow_mut();
            sh.metrics.connections_accepted += 1;
            sh.timers.now_ms()
        };
        if rate.as_mut().is_some_and(|b| !b.try_take(1.0, now)) {
            let refused = {
                let mut sh = shard.borrow_mut();
                sh.metrics.connections_refused_rate += 1;
                sh.metrics.connections_refused_rate
            };
            if let Some(s) = rate_warn.allow() {
                log::warn!("{at}: max_connection_rate ({}/s) exceeded, closing new sockets ({refused} so far on this shard){s}", cfg.max_connection_rate);
            }
            continue;
        }
        let Some(slot) = ep.count.try_acquire(max) else {
            let refused = {
                let mut sh = shard.borrow_mut();
                sh.metrics.connections_refused_limit += 1;
                sh.metrics.connections_refused_limit
            };
            if let Some(s) = limit_warn.allow() {
                log::warn!("{at}: max_connections ({max}) reached, closing new sockets ({refused} so far on this shard){s}");
            }
            continue;
        };
        if let Err(e) = tuning.apply(stream.as_fd()) {
            if let Some(s) = tune_warn.allow() {
                log::warn!("{at}: cannot set socket options on an accepted socket: {e}{s}");
            }
        }
        let setup = Setup {
            listener: ep.index,
            proxy: cfg.proxy_protocol,
            tls: tls.as_mut().map(|t| t.get().clone()),
            identity: cfg
                .tls
                .as_ref()
                .map_or(IdentitySource::None, |t| t.identity_as_username),
            ws: ws_path.clone(),
        };
        accepted(&shard, stream, peer, slot, setup);
    }
}

/// This shard's share of a listener's `max_connection_rate`, if it has one.
fn connection_rate(cfg: &ListenerConfig, shards: usize, now_ms: u64) -> Option<TokenBucket> {
    (cfg.max_connection_rate > 0).then(|| {
        let n = shards.max(1) as f64;
        let burst = (f64::from(cfg.connection_rate_burst) / n).ceil();
        TokenBucket::new(f64::from(cfg.max_connection_rate) / n, burst, now_ms)
    })
}

/// What an accepted socket goes through before its connection task starts.
struct Setup {
    listener: u16,
    /// Read a PROXY protocol header first.
    proxy: bool,
    /// Run a TLS handshake with this configuration.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// Which certificate name becomes the identity.
    identity: IdentitySource,
    /// Upgrade to WebSocket on this path (after TLS, for `wss`).
    ws: Option<Rc<str>>,
}

/// The one place a socket is wrapped for its listener's kind: plain TCP
/// without a PROXY header starts its connection at once, waiting in the
/// shard's readiness set ([`Tcp`]); otherwise, as glommio's `TcpStream`, a
/// short task reads the header, runs the TLS handshake and/or the WebSocket
/// upgrade first, in that order.
fn accepted(shard: &ShardRef, sock: OwnedFd, peer: SocketAddr, slot: Slot, setup: Setup) {
    if !setup.proxy && setup.tls.is_none() && setup.ws.is_none() {
        let origin = Origin {
            listener: setup.listener,
            identity: None,
        };
        match Tcp::new(sock) {
            Ok(tcp) => crate::conn::spawn_accepted(shard, tcp, peer, slot, origin),
            Err(e) => log::warn!("{peer}: cannot wait on the socket, closing: {e}"),
        }
        return;
    }
    // SAFETY: a connected socket we own, moved into glommio's stream.
    let stream = unsafe { TcpStream::from_raw_fd(sock.into_raw_fd()) };
    glommio::spawn_local(prepare(shard.clone(), stream, peer, slot, setup)).detach();
}

/// Where [`prepare`] failed.
enum Failed {
    Proxy(String),
    Tls(String),
    Ws(UpgradeError),
}

/// How far [`prepare`] got, for what a timeout is counted as.
#[derive(Clone, Copy, PartialEq)]
enum Stage {
    Proxy,
    Tls,
    Ws,
}

/// Read the PROXY header, then handshake (TLS, then WebSocket), all within
/// `mqtt.connect_timeout_s`; start the connection or count and log why not
/// (the socket closes on drop).
async fn prepare(
    shard: ShardRef,
    mut stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    setup: Setup,
) {
    let timeout = Duration::from_secs(shard.borrow().cfg.mqtt.connect_timeout_s);
    let Setup {
        listener,
        proxy: use_proxy,
        tls,
        identity,
        ws,
    } = setup;
    let stage = std::cell::Cell::new(Stage::Proxy);
    let peer = std::cell::Cell::new(peer);
    let work = async {
        if use_proxy {
            let h = proxy::read_header(&mut stream)
                .await
                .map_err(|e| Failed::Proxy(e.to_string()))?;
            peer.set(h.source.unwrap_or(peer.get()));
        }
        stage.set(Stage::Tls);
        let Some(config) = tls else {
            let origin = Origin {
                listener,
                identity: None,
            };
            return start(&shard, stream, (peer.get(), origin), slot, ws, &stage).await;
        };
        let (tls, identity) = crate::tls::handshake(stream, config, identity)
            .await
            .map_err(|e| Failed::Tls(e.to_string()))?;
        shard.borrow_mut().metrics.tls_handshakes += 1;
        let origin = Origin { listener, identity };
        start(&shard, tls, (peer.get(), origin), slot, ws, &stage).await
    };
    let deadline = async {
        glommio::timer::sleep(timeout).await;
        let why = format!("not done within {} s", timeout.as_secs());
        Err(match stage.get() {
            Stage::Proxy => Failed::Proxy(why),
            Stage::Tls => Failed::Tls(why),
            Stage::Ws => Failed::Ws(UpgradeError::Io(io::ErrorKind::TimedOut.into())),
        })
    };
    let Err(failed) = futures_lite::future::or(work, deadline).await else {
        return;
    };
    prepare_failed(&shard, listener, peer.get(), failed);
}

/// The last step of [`prepare`]: the WebSocket upgrade where the listener
/// has one, then the connection task.
async fn start<T: crate::transport::Transport>(
    shard: &ShardRef,
    stream: T,
    (peer, origin): (SocketAddr, Origin),
    slot: Slot,
    ws: Option<Rc<str>>,
    stage: &std::cell::Cell<Stage>,
) -> Result<(), Failed> {
    let Some(path) = ws else {
        crate::conn::spawn_accepted(shard, stream, peer, slot, origin);
        return Ok(());
    };
    stage.set(Stage::Ws);
    let max_frame = shard.borrow().cfg.mqtt.max_packet_size;
    let ws = accept_ws(stream, &path, MAX_REQUEST_BYTES, max_frame)
        .await
        .map_err(Failed::Ws)?;
    crate::conn::spawn_accepted(shard, ws, peer, slot, origin);
    Ok(())
}

/// Count and log why [`prepare`] gave up on a socket.
fn prepare_failed(shard: &ShardRef, listener: u16, peer: SocketAddr, failed: Failed) {
    let mut sh = shard.borrow_mut();
    match failed {
        Failed::Proxy(why) => {
            sh.metrics.proxy_header_failures += 1;
            if let Some(s) = sh.lines.proxy_failed.allow() {
                log::info!(
                    "listener {listener}: {peer}: no valid PROXY header ({why}), closing{s}"
                );
            }
        }
        Failed::Tls(why) => {
            sh.metrics.tls_handshake_failures += 1;
            if let Some(s) = sh.lines.tls_failed.allow() {
                log::info!("listener {listener}: {peer}: TLS handshake failed ({why}), closing{s}");
            }
        }
        Failed::Ws(e @ UpgradeError::Refused(..)) => {
            sh.metrics.ws_handshakes_refused += 1;
            if let Some(held) = sh.lines.ws_handshake.allow() {
                log::info!("listener {listener}: {peer}: websocket upgrade {e}{held}");
            }
        }
        Failed::Ws(UpgradeError::Io(io)) if io.kind() == io::ErrorKind::TimedOut => {
            sh.metrics.connect_timeouts += 1;
        }
        Failed::Ws(UpgradeError::Io(io)) => {
            log::debug!("listener {listener}: {peer}: websocket upgrade failed: {io}");
        }
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

    /// A `ws` listener's setup against a real shard: a refused
    /// upgrade is answered and counted, and a client that upgrades gets its
    /// CONNACK in a binary frame [MQTT-6.0.0-1].
    #[test]
    fn a_ws_setup_upgrades_then_serves_mqtt() {
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
            let (fds, addr) = bind_all("127.0.0.1:0".parse().unwrap(), 1, 16).unwrap();
            let listener = Acceptor::new(fds.into_iter().next().unwrap()).unwrap();
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
                let (stream, peer) = listener.accept().await.unwrap();
                let slot = count.try_acquire(10).unwrap();
                let setup = Setup {
                    listener: 0,
                    proxy: false,
                    tls: None,
                    identity: IdentitySource::None,
                    ws: Some("/mqtt".into()),
                };
                accepted(&shard, stream, peer, slot, setup);
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

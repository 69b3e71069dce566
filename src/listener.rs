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
//! slot) and differs only in wrapping the stream before that call.

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
